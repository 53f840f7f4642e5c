"""The per-cart reconciliation engine: a short facade over the modules that do the work.

Pure and deterministic: no clock, no I/O. `step(input)` applies one decoded input and returns
what changed; `advance(mono_ms)` lets event time pass; `to_dict()` / `from_dict()` (and the
JSON forms) round-trip the whole state through state.py. The work is done by:

  evidence.py  weight windows and vision paired into movements (settles of one action merged)
  provisional.py  a provisional weight event replaced by its final; a hand's +x/-x pair cancelled
  decide.py    the policy: accept / ask / review, prompts, reviews, the decision log
  basket.py    the ledger: lines, personal items, effects, learning; the §10 payload
  answers.py   shopper answers and reviewer verdicts
  camera.py    what the camera saw, checked against the weight
  readings.py  k units asked in one prompt with the readings as pictures
  retake.py    a burst that missed frames: the camera asked to look again before the shopper is
  state.py     the state's records and enums, checks and upgrades of stored states
(docs/reconciliation.md)
"""
from __future__ import annotations

import copy

from .. import protocol as P
from .answers import AnswersMixin
from .basket import BasketMixin
from .config import ReconcileConfig
from .decide import DecideMixin
from .evidence import EvidenceMixin
from .inputs import Answer, Unsettled, Vision, WeightChange, check_input
from .produce import produce_book_for
from .provisional import ProvisionalMixin
from .readings import ReadingsMixin
from .retake import RetakeMixin
from .scoring import CatalogueIndex, MovementScores
from .state import Dirty, MoveState, ReconcileError, check_state, dumps, fresh_state, loads, move_order
from .weightbook import WeightBook

__all__ = ["CartReconciler", "ReconcileError"]


class CartReconciler(EvidenceMixin, ProvisionalMixin, DecideMixin, ReadingsMixin, RetakeMixin, BasketMixin,
                     AnswersMixin):
    def __init__(self, cart: str, catalogue, config: ReconcileConfig | None = None,
                 book: WeightBook | None = None, *, index: CatalogueIndex | None = None):
        self.cart = cart
        self.cfg = config or ReconcileConfig()
        self.cat = index or CatalogueIndex(catalogue)
        self.book = book or WeightBook.for_catalogue(
            (self.cat.items[s] for s in self.cat.skus), self.cfg.learn_prior_strength, self.cfg.min_sd_g)
        if self.book.skus != self.cat.skus:
            raise ReconcileError("WeightBook and catalogue list different SKUs (build the book from the catalogue)")
        self.produce = produce_book_for(self.cat, self.cfg)
        self.s = self._fresh()
        self._log_mem: list[dict] = []             # the last log_limit decisions (not in the state)
        self._scores = MovementScores(self.book)   # transient: a movement's score, reused for its answer
        self.dirty = Dirty()                       # what changed since the gateway stored the state
        self._line_payloads: dict[str, dict] = {}  # line id -> its §10 payload (basket.py)
        self._lines_view: tuple | None = None      # (lines list, its length, their payloads, total): basket.py
        self._pending_payloads: dict[str, tuple] = {}   # movement id -> (its state, delta, its pending line)
        self._done_oldest: int | None = None       # a lower bound of mono_ms in `done` (None: not known)

    def _fresh(self) -> dict:
        return fresh_state(self.cart)

    # ------------------------------------------------------------------ state (state.py)
    def to_dict(self) -> dict:
        return copy.deepcopy(self.s)

    def to_json(self) -> str:
        return dumps(self.s)

    @classmethod
    def from_json(cls, text: str, catalogue, config: ReconcileConfig | None = None,
                  book: WeightBook | None = None, *, index: CatalogueIndex | None = None) -> "CartReconciler":
        return cls._resume(loads(text), catalogue, config, book, index)

    @classmethod
    def from_dict(cls, d: dict, catalogue, config: ReconcileConfig | None = None,
                  book: WeightBook | None = None, *, index: CatalogueIndex | None = None) -> "CartReconciler":
        return cls._resume(check_state(d), catalogue, config, book, index)

    @classmethod
    def _resume(cls, s: dict, catalogue, config, book, index) -> "CartReconciler":
        eng = cls(s["cart"], catalogue, config, book, index=index)
        # a state written before the log left it (issue 12) still holds its last records
        eng._log_mem, s["log"] = list(s["log"])[-eng.cfg.log_limit:], []
        eng.s = s       # (a fresh Dirty: the store compares every part at the first save)
        return eng

    # ------------------------------------------------------------------ inputs
    def step(self, item) -> dict:
        fx = {"basket_changed": False, "prompts_opened": [], "prompts_closed": [],
              "reviews_opened": [], "reviews_closed": [], "decisions": [], "commands": []}
        self._fx = fx
        vs = check_input(item, self.cat)      # before any change: bad input loses nothing
        if isinstance(item, WeightChange):
            self._check_provisional(item)
        self._tick(item.mono_ms)
        if isinstance(item, Unsettled):
            self._on_unsettled(item)
        elif isinstance(item, WeightChange):
            self._on_weight(item)
        elif isinstance(item, Vision):
            self._on_vision(vs)
        elif isinstance(item, Answer):
            self._on_answer(item)
        else:
            self._on_verdict(item)
        self._flush()
        if fx["basket_changed"]:
            self.s["version"] += 1
        return fx

    def advance(self, mono_ms: int) -> dict:
        """Event time has reached `mono_ms` (e.g. a later event of this cart)."""
        fx = {"basket_changed": False, "prompts_opened": [], "prompts_closed": [],
              "reviews_opened": [], "reviews_closed": [], "decisions": [], "commands": []}
        self._fx = fx
        self._tick(mono_ms)
        self._flush()
        if fx["basket_changed"]:
            self.s["version"] += 1
        return fx

    def _tick(self, mono_ms) -> None:
        if not isinstance(mono_ms, int) or isinstance(mono_ms, bool) or mono_ms < 0:
            raise ReconcileError(f"mono_ms must be an int >= 0, got {mono_ms!r}")
        self.s["now_ms"] = max(self.s["now_ms"], mono_ms)
        # A disturbance that settled back where it was sends no `weight` event;
        # without this its window would hold the checkout for ever.
        u = self.s["unsettled"]
        for key in [k for k, v in u.items() if self.s["now_ms"] - v["mono_ms"] > self.cfg.unsettled_expire_ms]:
            del u[key]
            self.s["stale_unsettled"] = self.s.get("stale_unsettled", 0) + 1




    # ------------------------------------------------------------------ movements: open and decided
    # `moves` holds the movements not yet decided (the policy's per-step passes read only those);
    # a decided one moves to `done` at the end of the step that decided it (_retire_decided) and
    # is kept there only while late vision may still arrive for it.
    def movement(self, mid: str | None) -> dict | None:
        """A movement by id, open or decided (None if gone or never made)."""
        if mid is None:
            return None
        s = self.s
        return s["moves"].get(mid) or s["done"].get(mid)

    def _open_move(self, mid: str) -> dict:
        """The movement a prompt or review is about, back among the open ones if it had left them
        (it is changed again; the end of the step retires it once more when decided)."""
        s = self.s
        if mid in s["done"]:
            s["moves"][mid] = s["done"].pop(mid)
            self.dirty.reopened.add(mid)     # its stored `done` part is no longer final
        return s["moves"][mid]

    def _all_moves(self) -> list[dict]:
        """Open and decided movements in the order they were made (the order `moves` once had)."""
        s = self.s
        if not s["done"]:
            return list(s["moves"].values())
        return sorted((*s["done"].values(), *s["moves"].values()), key=lambda m: move_order(m["id"]))

    def _retire_decided(self) -> None:
        moves, done = self.s["moves"], self.s["done"]
        for mid in [k for k, m in moves.items() if m["state"] == MoveState.DONE]:
            mv = done[mid] = moves.pop(mid)
            if self._done_oldest is not None:
                self._done_oldest = min(self._done_oldest, mv["mono_ms"])





































    def open_prompts(self) -> list[dict]:
        return [self.s["prompts"][k]["prompt"] for k in sorted(self.s["prompts"], key=_natural)]

    def open_reviews(self) -> list[dict]:
        return [self.s["reviews"][k]["request"] for k in sorted(self.s["reviews"], key=_natural)]

    def decisions(self) -> list[dict]:
        """The last log_limit decisions of this engine's life (since it was made or resumed);
        the gateway's decisions table holds them all."""
        return list(self._log_mem)

    def checkout(self, req_id: str, mono_ms: int | None = None) -> dict:
        """§12 receipt, or a refusal with the reason."""
        s = self.s
        if mono_ms is not None:
            self.advance(mono_ms)
        refuse = ("unsettled" if s["unsettled"] or any(m["state"] == MoveState.WAITING for m in s["moves"].values())
                  else "open_prompts" if s["prompts"] else "open_reviews" if s["reviews"] else None)
        if refuse:
            return P.Receipt(v=1, req_id=req_id, ok=False, reason=refuse).model_dump(exclude_none=True)
        b = self.basket()
        receipt = P.Receipt(v=1, req_id=req_id, ok=True, receipt_id=f"{self.cart}-{s['version']}", lines=b["lines"],
                            total_cents=b["total_cents"], issued_ms=s["now_ms"]).model_dump()
        receipt.pop("reason")
        s["receipt"] = receipt
        return receipt


def _natural(key: str):
    """`c1-p10` after `c1-p9`."""
    digits = len(key) - len(key.rstrip("0123456789"))
    return (key[: len(key) - digits], int(key[len(key) - digits:] or 0))
