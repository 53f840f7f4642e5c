"""`Gateway`: start-up (state loaded from the database, outputs an older version dropped
repaired), the entry points the MQTT adapter and replay call (`handle`, `handle_batch`, `tick`,
`apply_vision`, `republish`, the catalogue swap), and the dispatch of a message to its handler.
The handlers and what they cause are the parts it is made of (see the package docstring)."""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .. import protocol as P
from ..catalogue import Catalogue
from ..config import GatewayConfig
from ..fleet import FleetOut, out_topic
from ..frames import Assemblies, FrameFiles, frame_id
from ..logs import event
from ..metrics import Metrics
from ..reconcile import CartReconciler, CatalogueIndex, ReconcileError, Vision, WeightBook
from ..reconcile import fitkernel
from ..reconcile.produce import produce_book_for
from ..rollout import catalogue_path
from ..store import Store
from ..vision import is_still_result
from .board_inputs import BoardInputs
from .cart_runtime import CartRt
from .effects import Effects
from .frames_bursts import FramesAndBursts
from .publishes import Publish, dumps
from .retention import Retention
from .shopper_staff import ShopperAndStaff


VERSION = "0.1.0"
INFO, WARN = logging.INFO, logging.WARNING


class BatchFailed(RuntimeError):
    """A message in a batch failed beyond a decoding error: redo the batch one message at a time."""


@dataclass
class CatalogueSwap:
    """A catalogue rollout's new catalogue with its index and weight book (priors), built off the core thread."""
    catalogue: Catalogue
    index: CatalogueIndex
    book: WeightBook


class Gateway(BoardInputs, FramesAndBursts, Retention, ShopperAndStaff, Effects):
    def __init__(self, cfg: GatewayConfig, store: Store | None = None, metrics: Metrics | None = None,
                 catalogue: Catalogue | None = None, submit_burst=None):
        self.cfg = cfg
        self.gw = cfg.gateway_id
        state = Path(cfg.state_dir)
        self.store = store or Store(state / "gateway.sqlite3", cfg.sqlite_synchronous)
        self.metrics = metrics or Metrics()
        self.catalogue = catalogue or Catalogue.load(catalogue_path(cfg))   # rolled out, else configured
        self.index = CatalogueIndex(self.catalogue)
        fitkernel.warm_in_background()      # the compiled weight-fit search (numpy until it is ready)
        rc = cfg.reconcile
        self.book = WeightBook.for_catalogue(self.catalogue, rc.learn_prior_strength, rc.min_sd_g)
        saved = self.store.load_book()
        if saved:
            self.book.load_dict(saved)
        self._book_stored()
        self.files = FrameFiles(state / "frames")
        self.asm = Assemblies(cfg.frames.max_in_progress, int(cfg.frames.assembly_timeout_s * 1000),
                              cfg.frames.max_per_cart, cfg.frames.still_max_bytes)
        # submit_burst(burst_id, jpegs) -> bool; None = no detector (bursts carry barcodes only if any)
        self.submit_burst = submit_burst
        self.carts: dict[str, CartRt] = {}
        for cart, session, vbase, st, clock in self.store.load_carts():
            eng = CartReconciler.from_dict(st, self.catalogue, rc, self.book, index=self.index)
            self.carts[cart] = CartRt(cart, session, vbase, eng, clock)
        # carts that may wait on time (a superset): every engine step adds its cart, a tick that
        # finds it waiting on nothing drops it, so a tick costs the waiting carts, not all of them
        self._timed: set[str] = set(self.carts)
        self._next_frame_sweep_ms = 0
        # bursts queued for inference when we stopped: the queue is gone, run them again
        for b in self.store.bursts("queued"):
            self.store.set_burst_state(b["burst_id"], "waiting")
        self._out: list[Publish] = []
        self._children: dict = {}               # (metric, label value) -> child (_label)
        self._dirty: set[str] = set()
        self._counted: list[str] = []           # event types stored by the current message / batch
        self._insts: dict[tuple[str, str], str] = {}   # (cart, board) -> instance written to `boards`
        self.keep_decisions = False             # replay: keep every decision (all sessions) and its time
        self.decision_times: list[dict] = []
        self.decision_log: list[dict] = []
        self._t0 = 0.0
        self._batch = False
        self._next_prune_ms = 0
        self.fleet = FleetOut(self.store.db, self.gw, cfg.fleet.timezone, cfg.fleet.figures_interval_s,
                              cfg.fleet.resend_s)
        self._repair_outputs()

    # ================================================================ entry points
    def handle_batch(self, items: list[tuple]) -> list[Publish]:
        """The live adapter's fast path: the same handlers for many messages in one transaction.

        Items: ("msg", topic, payload, t_ms) | ("vision", burst_id, frames, codes, t_ms) | ("tick", t_ms).
        Cart states are written and retained topics coalesced once per batch (group commit).
        A message rejected by its decoder is dropped as in handle(); any other failure raises
        BatchFailed: the caller rolls the transaction back, calls reload(), then handles the
        items one by one with handle() / apply_vision() / tick(), which isolate the bad one.
        """
        self._batch = True
        outs: list[Publish] = []
        try:
            for it in items:
                if it[0] == "msg":
                    outs += self.handle(it[1], it[2], it[3])
                elif it[0] == "vision":
                    outs += self.apply_vision(it[1], it[2], it[3], it[4])
                else:
                    outs += self.tick(it[1])
        except BaseException:
            self._counted = []        # rolled back by the caller: not stored
            raise
        finally:
            self._batch = False
        self._persist()
        self._count_events()
        last = {p.topic: i for i, p in enumerate(outs) if p.retain}
        outs = [p for i, p in enumerate(outs) if not p.retain or last[p.topic] == i]
        ids = self.store.outbox_add_many([(p.topic, p.encoded(), p.qos, p.retain) for p in outs])
        for p, oid in zip(outs, ids):
            p.outbox_id = oid
        self.store.flush_held()     # in this transaction, with the events they came from
        return outs

    def reload(self) -> None:
        """Forget in-memory state and load it again from the database (after a rolled-back batch)."""
        self._out, self._dirty, self._counted, self._insts = [], set(), [], {}
        self.carts = {}
        for cart, session, vbase, st, clock in self.store.load_carts():
            eng = CartReconciler.from_dict(st, self.catalogue, self.cfg.reconcile, self.book, index=self.index)
            self.carts[cart] = CartRt(cart, session, vbase, eng, clock)
        self._timed = set(self.carts)
        saved = self.store.load_book()
        self.book.load_dict(saved or {"v": 1, "stats": {}})
        self._book_stored()

    def prepare_catalogue(self, catalogue: Catalogue) -> "CatalogueSwap":
        """Rollout, off the core thread: what grows with the catalogue is built here, not in the swap."""
        rc = self.cfg.reconcile
        index = CatalogueIndex(catalogue)
        produce_book_for(index, rc)     # cached per index
        return CatalogueSwap(catalogue, index, WeightBook.for_catalogue(catalogue, rc.learn_prior_strength, rc.min_sd_g))

    def swap_catalogue(self, new: "CatalogueSwap") -> str | None:
        """Rollout's hot reload, between batches (state committed): every cart resumes on the
        new catalogue. None when swapped; else why it must wait (an open basket holds a SKU
        the new one drops: its receipt would name an unknown SKU), and nothing changed."""
        catalogue, index, book, rc = new.catalogue, new.index, new.book, self.cfg.reconcile
        for cart, rt in self.carts.items():
            gone = sorted({ln["sku"] for ln in rt.engine.s["lines"] if ln["sku"] and ln["sku"] not in catalogue})
            if gone:
                return f"the open basket of cart {cart} holds {gone[:3]}, which the new catalogue drops"
        book.load_dict(self.book.to_dict())          # what it learned goes on (SKUs by name)
        carts = {cart: CartRt(cart, rt.session, rt.version_base,
                              CartReconciler.from_dict(rt.engine.s, catalogue, rc, book, index=index), rt.clock)
                 for cart, rt in self.carts.items()}
        self.catalogue, self.index, self.book, self.carts = catalogue, index, book, carts
        # a new book: written whole at its first change (its `changed` counts from its own start)
        self._book_seen, self._book_mark = self.book.version, None
        return None

    def handle(self, topic: str, payload: bytes, t_ms: int) -> list[Publish]:
        """One MQTT message. Runs inside the caller's transaction; returns publishes (already in the outbox)."""
        self._t0 = time.perf_counter()
        kind = "unknown"
        # A batch needs no savepoint per message: decoders raise before any write, and any
        # other failure aborts the whole batch (BatchFailed), which is then redone one
        # message per savepoint. SAVEPOINT + RELEASE cost ~7 % of a batch's time.
        guard = contextlib.nullcontext() if self._batch else self.store.savepoint()
        try:
            with guard:
                kind = self._dispatch(topic, payload, t_ms)
                self._persist()
        except P.ProtocolError as e:
            # decoders and the frame assembler run before any state changes
            self._reject("malformed", topic, str(e))
            self._out = []
            if not self._batch:
                self._reset()
        except ReconcileError as e:
            if self._batch:
                raise BatchFailed(str(e)) from e
            self._reject("rejected_by_engine", topic, str(e))
            self._reset()
        except Exception as e:   # a bug must not turn one message into a crash loop (it would be redelivered)
            if self._batch:
                raise BatchFailed(str(e)) from e
            logging.getLogger("cart_gateway").exception("handler failed")
            self._reject("internal_error", topic, f"{type(e).__name__}: {e}")
            self._reset()
        else:
            if not self._batch:
                self._count_events()
        self._label(self.metrics.messages, kind).inc()
        self._label(self.metrics.handle_latency, kind).observe(time.perf_counter() - self._t0)
        return self._flush_out()

    def tick(self, t_ms: int) -> list[Publish]:
        """Time passes: decide movements whose vision wait expired, expire frames, enforce retention."""
        self._t0 = time.perf_counter()
        with self.store.savepoint():
            for cart, epoch, frame in self.asm.expire(t_ms):
                self.metrics.frames.labels("incomplete").inc()
                self.metrics.frames_dropped.labels(cart, "incomplete").inc()
                event(WARN, "frame_incomplete", "frame dropped: incomplete after the §7 timeout",
                      cart=cart, epoch=epoch, frame=frame)
            self._burst_timeouts(t_ms)
            for cart, rt in self.carts.items():    # in cart order, as every other pass
                if cart not in self._timed:
                    continue
                if not self._timer_waits(rt):
                    self._timed.discard(cart)
                elif t_ms > rt.engine.s["now_ms"]:
                    self._advance(rt, t_ms, t_ms)
            self._retention(t_ms)
            again = self.fleet.resends(t_ms)      # lost on the way to the ledger: again
            for rec in again:
                self._emit(out_topic(self.gw, "receipt"), rec)
            if again:
                event(INFO, "fleet_resend", f"{len(again)} receipt records sent again: the ledger has not "
                      "acknowledged them", records=len(again))
            if self.fleet.due(t_ms):   # docs/fleet.md: bridged out to head office
                self._emit(out_topic(self.gw, "figures"), self.fleet.figures(t_ms))
                self._emit(out_topic(self.gw, "health"), self.fleet.health(
                    t_ms, VERSION, len(self.carts), len(self.store.open_reviews())))
            self._persist()
        self.metrics.frames_in_progress.set(len(self.asm))
        return self._flush_out()

    def timer_pending(self) -> bool:
        """Whether a tick now could change anything but retention: a cart waiting on time (an
        open window, a vision wait), a frame being assembled or a burst waiting for its frames.
        Replay and the fast simulator skip the ticks in between when it is False (same result)."""
        return bool(len(self.asm) or self.store.bursts()
                    or any(self._timer_waits(self.carts[c]) for c in self._timed if c in self.carts))

    @staticmethod
    def _timer_waits(rt: CartRt) -> bool:
        s = rt.engine.s
        return bool(s["unsettled"] or s["visions"] or any(m["state"] == "waiting" for m in s["moves"].values()))

    def apply_vision(self, burst_id: str, frames: list[list], barcodes: list[str], t_ms: int) -> list[Publish]:
        """A burst's detections are ready: feed them to the cart's reconciler."""
        self._t0 = time.perf_counter()
        try:
            with self.store.savepoint():
                b = next((x for x in self.store.bursts() if x["burst_id"] == burst_id), None)
                if b is None:
                    return []
                self.store.delete_burst(burst_id)
                rt = self._cart(b["cart"])
                ids = [frame_id(b["cart"], b["epoch"], n) for n in b["frames"]]
                present = [i for i in ids if self.store.frame_path(i)]
                v = Vision(mono_ms=b["engine_ms"], frames=frames, barcodes=barcodes, ref=b["ref"],
                           frame_ids=present, still=is_still_result(frames))
                self._step(rt, v, t_ms)
                self._persist()
        except ReconcileError as e:
            if self._batch:
                raise BatchFailed(str(e)) from e
            self._reject("rejected_by_engine", f"burst {burst_id}", str(e))
            self._reset()
        return self._flush_out()

    def _repair_outputs(self) -> None:
        """At start: a cart whose engine holds a prompt or review the screen or the review
        queue never got (an effect an older version dropped, issue 11.1) gets them now, so its
        checkout is not refused for ever. Costs one pass over the carts at start only."""
        retained = dict(self.store.retained())
        stored = {r["review_id"] for r in self.store.open_reviews()}
        queued = False
        for cart, rt in self.carts.items():
            state = {"v": 1, "prompts": rt.engine.open_prompts()}
            topic = f"carts/{cart}/screen/state"
            if state["prompts"] and retained.get(topic) != dumps(state):
                for p in state["prompts"]:
                    self._emit(f"carts/{cart}/screen/prompt", p)
                self._emit(topic, state, retain=True)
            for r in rt.engine.open_reviews():
                if r["review_id"] not in stored:
                    self.store.add_review(r, r["created_ms"])
                    self._emit(f"gateway/{self.gw}/review/new", r)
                    queued = True
        if queued:
            self._emit_queue()
        if self._out:
            self.store.begin()
            self._flush_out()
            self.store.commit()

    def republish(self) -> list[Publish]:
        """On every (re)connect: retained state (the broker may have lost it) and undelivered publishes."""
        out = [Publish(t, p, 1, True) for t, p in self.store.retained()]
        out += [Publish(t, p, q, r, i) for i, t, p, q, r in self.store.outbox() if not r]
        return out

    # ================================================================ dispatch
    def _dispatch(self, topic: str, payload: bytes, t_ms: int) -> str:
        if topic == self.fleet.ack_topic:       # the ledger stored these receipts (docs/fleet.md)
            self.fleet.on_ack(payload, t_ms)
            return "fleet_ack"
        tp = P.parse_topic(topic)
        if tp.cart is not None and not self.cfg.carts.accepts(tp.cart):
            self._reject("unknown_cart", topic, f"cart {tp.cart!r} is not in carts.known / carts.pattern")
            return "unknown_cart"
        if tp.kind == "evt":
            self._on_event(tp, payload, t_ms)
        elif tp.kind == "frame":
            self._on_chunk(tp, payload, t_ms)
        elif tp.kind == "screen/answer":
            self._on_answer(tp, payload, t_ms)
        elif tp.kind == "checkout":
            self._on_checkout(tp, payload, t_ms)
        elif tp.kind == "review/verdict":
            if tp.gw != self.gw:
                self._reject("other_gateway", topic, f"verdict for gateway {tp.gw!r}")
            else:
                self._on_verdict(payload, t_ms)
        elif tp.kind == "status" and tp.cart:
            st = P.decode_status(tp, payload)
            if st.state == "online":     # a birth names the instance now in the slot (a late will may not)
                self._note_board(tp.cart, tp.board, st.inst or "")
                self.store.stream(tp.cart, tp.board, st.inst or "", st.epoch)   # its frames come next
            event(INFO, "board_status", f"{tp.cart}/{tp.board} is {st.state}", cart=tp.cart, board=tp.board,
                  state=st.state, mode=st.mode, epoch=st.epoch, reason=st.reason or "")
        elif tp.kind == "tele":
            P.decode_telemetry(tp, payload)
        else:
            return "ignored"   # our own outputs, commands, results: not ours to handle
        return tp.kind

    # ================================================================ results (replay, tests)
    def snapshot(self) -> dict:
        baskets = {}
        for cart, rt in sorted(self.carts.items()):
            b = rt.engine.basket()
            b["version"] = rt.version()
            baskets[cart] = b
        return {"baskets": baskets, "receipts": self.store.receipts(),
                "prompts": {c: rt.engine.open_prompts() for c, rt in sorted(self.carts.items())},
                "reviews": self.store.all_reviews(), "gaps": self.store.open_gaps()}
