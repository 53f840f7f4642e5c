"""The per-cart reconciliation state machine: events in, basket / prompts / reviews out.

Pure and deterministic: no clock, no I/O. `step(input)` applies one decoded
input and returns what changed; `advance(mono_ms)` lets event time pass (a
decision waits up to `evidence_window_ms` for its vision evidence).
`to_dict()` / `from_dict()` round-trip the whole state through JSON types.
"""
from __future__ import annotations

import copy
import json
import math
from collections import Counter

from .config import ReconcileConfig
from .inputs import Answer, Unsettled, Verdict, Vision, VisionSummary, WeightChange
from .multi import family_smoothed, fit_skus, score_multi, skus_of
from .scoring import CatalogueIndex, Scored, best_with_sku
from .weightbook import WeightBook

STATE_VERSION = 1
_SETTLED_KEEP = 64  # recent settled unsettled-ids, to ignore a late `unsettled`


class ReconcileError(ValueError):
    """An input the engine cannot apply; the message names the field."""


class CartReconciler:
    def __init__(self, cart: str, catalogue, config: ReconcileConfig | None = None,
                 book: WeightBook | None = None, *, index: CatalogueIndex | None = None):
        self.cart = cart
        self.cfg = config or ReconcileConfig()
        self.cat = index or CatalogueIndex(catalogue)
        self.book = book or WeightBook.for_catalogue(
            (self.cat.items[s] for s in self.cat.skus), self.cfg.learn_prior_strength, self.cfg.min_sd_g)
        if self.book.skus != self.cat.skus:
            raise ReconcileError("WeightBook and catalogue list different SKUs (build the book from the catalogue)")
        self.s = self._fresh()

    def _fresh(self) -> dict:
        return {"v": STATE_VERSION, "cart": self.cart, "version": 0, "now_ms": 0,
                "n": {"line": 0, "prompt": 0, "review": 0, "move": 0, "decision": 0, "personal": 0},
                "lines": [], "personal": [], "unsettled": {}, "settled_refs": [], "nochange_refs": [], "moves": {},
                "visions": [], "prompts": {}, "reviews": {}, "answers_seen": [], "verdicts_seen": [],
                "log": [], "receipt": None}

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict:
        return copy.deepcopy(self.s)

    def to_json(self) -> str:
        """The state as compact JSON (no deep copy: cheaper to persist after every step)."""
        return json.dumps(self.s, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str, catalogue, config: ReconcileConfig | None = None,
                  book: WeightBook | None = None, *, index: CatalogueIndex | None = None) -> "CartReconciler":
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ReconcileError(f"reconciler state: not JSON ({e})") from e
        return cls.from_dict(d, catalogue, config, book, index=index)

    @classmethod
    def from_dict(cls, d: dict, catalogue, config: ReconcileConfig | None = None,
                  book: WeightBook | None = None, *, index: CatalogueIndex | None = None) -> "CartReconciler":
        if not isinstance(d, dict) or d.get("v") != STATE_VERSION:
            raise ReconcileError(f"reconciler state: expected v={STATE_VERSION}, got {d.get('v') if isinstance(d, dict) else d!r}")
        eng = cls(d["cart"], catalogue, config, book, index=index)
        missing = set(eng.s) - set(d)
        if missing:
            raise ReconcileError(f"reconciler state: missing keys {sorted(missing)}")
        eng.s = copy.deepcopy(d)
        return eng

    # ------------------------------------------------------------------ inputs
    def step(self, item) -> dict:
        fx = {"basket_changed": False, "prompts_opened": [], "prompts_closed": [],
              "reviews_opened": [], "reviews_closed": [], "decisions": []}
        self._fx = fx
        vs = self._validate(item)      # before any change: bad input loses nothing
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
              "reviews_opened": [], "reviews_closed": [], "decisions": []}
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

    def _validate(self, item) -> VisionSummary | None:
        """Reject a malformed input with a message naming the field; returns a Vision's summary."""
        name = type(item).__name__
        if not isinstance(item, (Unsettled, WeightChange, Vision, Answer, Verdict)):
            raise ReconcileError(f"step: unsupported input type {name}")
        m = item.mono_ms
        if not isinstance(m, int) or isinstance(m, bool) or m < 0:
            raise ReconcileError(f"{name}.mono_ms must be an int >= 0, got {m!r}")
        if isinstance(item, WeightChange):
            for f in ("delta_g", "total_g", "noise_g"):
                x = getattr(item, f)
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                    raise ReconcileError(f"WeightChange.{f} must be a finite number, got {x!r}")
            if item.noise_g < 0:
                raise ReconcileError(f"WeightChange.noise_g must be >= 0, got {item.noise_g!r}")
        elif isinstance(item, Vision):
            return self._summary(item)
        elif isinstance(item, Answer):
            chosen = [item.sku is not None, item.skus is not None, item.barcode is not None,
                      bool(item.personal), bool(item.none)]
            if sum(chosen) != 1:
                raise ReconcileError("Answer: exactly one of sku, skus, barcode, personal, none must be set")
            if item.skus is not None and (not item.skus or not all(isinstance(x, str) and x for x in item.skus)):
                raise ReconcileError(f"Answer.skus must be a non-empty list of SKU strings, got {item.skus!r}")
        elif isinstance(item, Verdict):
            if isinstance(item.qty, bool) or not isinstance(item.qty, int) or item.qty < 0:
                raise ReconcileError(f"Verdict.qty must be an int >= 0, got {item.qty!r}")
            if item.sku is not None and item.sku not in self.cat.idx:
                raise ReconcileError(f"Verdict.sku {item.sku!r} is not in the catalogue")
            for f in ("adds", "removes"):
                for it in getattr(item, f) or ():
                    if not (isinstance(it, (tuple, list)) and len(it) == 2):
                        raise ReconcileError(f"Verdict.{f}: each entry must be (sku, qty), got {it!r}")
                    sk, q = it
                    if isinstance(q, bool) or not isinstance(q, int) or q < 1:
                        raise ReconcileError(f"Verdict.{f}: qty must be an int >= 1, got {q!r}")
                    if sk is not None and sk not in self.cat.idx:
                        raise ReconcileError(f"Verdict.{f}: sku {sk!r} is not in the catalogue")
        return None

    @staticmethod
    def _summary(v: Vision) -> VisionSummary:
        try:
            return VisionSummary.of(v)
        except (ValueError, AttributeError, TypeError) as e:
            raise ReconcileError(f"Vision: {e}") from e

    # ------------------------------------------------------------------ scale
    def _on_unsettled(self, u: Unsettled) -> None:
        key = f"{u.epoch}/{u.seq}"
        if key in self.s["settled_refs"]:
            return  # its weight event came first
        self.s["unsettled"][key] = {"mono_ms": u.mono_ms, "total_g": float(u.total_g)}

    def _on_weight(self, w: WeightChange) -> None:
        s = self.s
        ukey = f"{w.epoch}/{w.unsettled_seq}" if w.unsettled_seq is not None else None
        start = w.mono_ms
        if ukey:
            u = s["unsettled"].pop(ukey, None)
            if u:
                start = u["mono_ms"]
            s["settled_refs"] = (s["settled_refs"] + [ukey])[-_SETTLED_KEEP:]
        if abs(w.delta_g) < self.cfg.min_delta_g:
            if ukey:
                s["nochange_refs"] = (s["nochange_refs"] + [ukey])[-_SETTLED_KEEP:]
            vis = self._take_visions(w.epoch, w.unsettled_seq, start, w.mono_ms)
            if vis:
                merged = vis[0]
                for v in vis[1:]:
                    merged.merge(v)
                if self._same_weight_swap(merged, w.epoch, w.seq, w.unsettled_seq, w.delta_g, w.total_g, w.noise_g):
                    return
            why = ("vision without a weight change: item lifted and put back" if vis
                   else "weight change below min_delta_g")
            self._log("no_change", why, evidence=["weight", "vision"] if vis else ["weight"],
                      extra={"delta_g": w.delta_g, "frames": [f for v in vis for f in v.frame_ids]})
            return
        s["n"]["move"] += 1
        mid = f"m{s['n']['move']}"
        s["moves"][mid] = {"id": mid, "epoch": w.epoch, "seq": w.seq, "unsettled_seq": w.unsettled_seq,
                           "start_ms": start, "mono_ms": w.mono_ms, "delta_g": float(w.delta_g),
                           "total_g": float(w.total_g), "noise_g": float(w.noise_g),
                           "deadline_ms": w.mono_ms + self.cfg.evidence_window_ms,
                           "vision": None, "state": "waiting", "prompt_id": None, "review_id": None}
        vis = self._take_visions(w.epoch, w.unsettled_seq, start, w.mono_ms)
        for v in vis:
            self._attach(s["moves"][mid], v)
        self._fx["basket_changed"] = w.delta_g > 0   # a pending line shows until decided

    def _take_visions(self, epoch, useq, start_ms, end_ms) -> list[VisionSummary]:
        """Buffered vision for this movement: by ref, else by time proximity."""
        win = self.cfg.evidence_window_ms
        keep, took = [], []
        for d in self.s["visions"]:
            v = VisionSummary.from_dict(d)
            if v.ref is not None:
                hit = useq is not None and v.ref == [epoch, useq]
            else:
                hit = start_ms - win <= v.mono_ms <= end_ms + win
            (took if hit else keep).append(d if not hit else v)
        self.s["visions"] = keep
        return took

    def _attach(self, mv: dict, v: VisionSummary) -> None:
        if mv["vision"] is None:
            mv["vision"] = v.to_dict()
        else:
            cur = VisionSummary.from_dict(mv["vision"])
            cur.merge(v)
            mv["vision"] = cur.to_dict()

    # ------------------------------------------------------------------ vision
    def _on_vision(self, v: VisionSummary) -> None:
        s, win = self.s, self.cfg.evidence_window_ms
        target = None
        if v.ref is not None:
            for mv in s["moves"].values():
                if mv["unsettled_seq"] is not None and [mv["epoch"], mv["unsettled_seq"]] == v.ref:
                    target = mv
                    break
        else:
            best = None
            for mv in s["moves"].values():
                if mv["start_ms"] - win <= v.mono_ms <= mv["mono_ms"] + win:
                    d = abs(v.mono_ms - mv["mono_ms"])
                    if mv["state"] == "waiting" and (best is None or d < best[0]):
                        best = (d, mv)
            target = best[1] if best else None
        if target is None:
            key = f"{v.ref[0]}/{v.ref[1]}" if v.ref is not None else None
            if key in s["nochange_refs"]:
                self._log("no_change", "vision without a weight change: item lifted and put back",
                          evidence=["vision"], extra={"frames": v.frame_ids})
                return
            if key in s["settled_refs"]:
                self._log("late_vision", "vision for a movement decided long ago; kept for the record",
                          evidence=["vision"], extra={"frames": v.frame_ids})
                return
            s["visions"].append(v.to_dict())
            return
        if target["state"] == "waiting":
            self._attach(target, v)
        else:
            self._log("late_vision", "vision arrived after the decision; kept for the record",
                      move=target["id"], evidence=["vision"], extra={"frames": v.frame_ids})

    # ------------------------------------------------------------------ flush
    def _flush(self) -> None:
        s, now = self.s, self.s["now_ms"]
        waiting = sorted((m for m in s["moves"].values() if m["state"] == "waiting"),
                         key=lambda m: (m["mono_ms"], m["id"]))
        for mv in waiting:
            missing = mv["vision"] is None or (self.cfg.wait_for_still and mv["delta_g"] > 0
                                               and not mv["vision"].get("stills"))
            if missing and now < mv["deadline_ms"]:
                break  # later movements wait for this one: removals need the adds before them
            self._decide(mv)
        # a decided movement is kept only while late vision may still arrive for it
        for mid in [m["id"] for m in s["moves"].values()
                    if m["state"] == "done" and now - m["mono_ms"] > self.cfg.vision_max_wait_ms]:
            del s["moves"][mid]
        keep = []
        for d in s["visions"]:
            age = now - d["mono_ms"]
            open_ref = d["ref"] is not None and f"{d['ref'][0]}/{d['ref'][1]}" in s["unsettled"]
            if age > self.cfg.vision_max_wait_ms or (age > self.cfg.evidence_window_ms and not open_ref):
                v = VisionSummary.from_dict(d)
                ref = v.ref or [None, None]
                if self._same_weight_swap(v, ref[0], None, ref[1], 0.0, 0.0, 0.0):
                    continue
                self._log("no_change", "vision without a weight change: item lifted and put back",
                          evidence=["vision"], extra={"frames": d["frame_ids"], "scores": d["scores"]})
            else:
                keep.append(d)
        s["visions"] = keep
        for mv in sorted((m for m in s["moves"].values() if m["state"] == "waiting" and m.get("same_weight")),
                         key=lambda m: (m["mono_ms"], m["id"])):
            self._decide(mv)     # opened just now from vision alone: nothing more to wait for

    def _same_weight_swap(self, v: VisionSummary, epoch, seq, useq, delta_g: float, total_g: float,
                          noise_g: float) -> bool:
        """The camera saw a product that is not in the basket but the weight did not change: a swap
        for a product of the same weight (the scale cannot see it). Opens a movement for it, so the
        swap hypotheses (and, if unsure, the shopper) decide; returns True if it did."""
        cfg = self.cfg
        if cfg.same_weight_swap_min_score <= 0 or not v.scores:
            return False
        lines = [ln for ln in self.s["lines"] if ln["status"] == "accepted" and not ln["by_weight"]]
        have = {ln["sku"] for ln in lines}
        # frames of a swap show both products; the one that matters is the one not in the basket
        new = [k for k in v.scores if k not in have and k in self.cat.idx and not self.cat.items[k].sold_by_weight]
        if not new:
            return False     # only products already in the basket: lifted and put back
        sku = max(new, key=lambda k: (v.scores[k], k))
        if v.scores[sku] < cfg.same_weight_swap_min_score:
            return False
        mb, sb = self.book.params(sku)
        near = [ln for ln in lines if abs(self.book.params(ln["sku"])[0] - mb)
                <= 3.0 * math.hypot(self.book.params(ln["sku"])[1], sb) + cfg.min_delta_g]
        if not near:
            return False
        s = self.s
        s["n"]["move"] += 1
        mid = f"m{s['n']['move']}"
        s["moves"][mid] = {"id": mid, "epoch": epoch, "seq": seq, "unsettled_seq": useq,
                           "start_ms": v.mono_ms, "mono_ms": s["now_ms"], "delta_g": float(delta_g),
                           "total_g": float(total_g), "noise_g": float(noise_g), "deadline_ms": s["now_ms"],
                           "vision": v.to_dict(), "state": "waiting", "prompt_id": None, "review_id": None,
                           "same_weight": True}
        self._log("same_weight_swap", f"camera saw {sku} (not in the basket) with no weight change",
                  move=mid, evidence=["vision", "weight", "context"], extra={"frames": v.frame_ids})
        return True

    # ------------------------------------------------------------------ decide
    def _score(self, mv: dict) -> Scored:
        vis = VisionSummary.from_dict(mv["vision"]) if mv["vision"] else None
        vis = family_smoothed(vis, self.cat, self.cfg.family_confusion)
        recent = [r["sku"] for r in self.s.get("recent_out", [])
                  if mv["mono_ms"] - r["mono_ms"] <= self.cfg.readd_window_ms]
        return score_multi(mv["delta_g"], mv["noise_g"], self.cat, self.book, self.s["lines"],
                           self.s["personal"], vis, self.cfg, recent_out=recent)

    def _decide(self, mv: dict) -> None:
        cfg = self.cfg
        sc = self._score(mv)
        hyps = sc.hyps
        extra = {"delta_g": mv["delta_g"], "unknown_barcodes": sc.unknown_barcodes} if sc.unknown_barcodes else None
        if not hyps:
            self._open_review(mv, sc, "no hypothesis explains this weight change")
            return
        top = hyps[0]
        p2 = hyps[1]["posterior"] if len(hyps) > 1 else 0.0
        weight_only = "vision" not in sc.evidence and "barcode" not in sc.evidence
        need = cfg.accept_weight_only_posterior if weight_only else cfg.accept_posterior
        personal = top["kind"] == "personal"
        if top["kind"] == "remove_part" and not cfg.accept_partial_produce:
            need = 2.0   # some of a produce line out: the shopper confirms (a swap looks the same)
        if mv.get("same_weight"):
            need = 2.0   # only the camera saw it (often a look-alike of what was lifted): the shopper confirms
        if (top["posterior"] >= need and top["posterior"] - p2 >= cfg.accept_margin
                and abs(top["z"]) <= cfg.accept_max_z and (not personal or cfg.accept_personal)):
            self._apply(mv, top)
            mv["state"] = "done"
            self._log("accept", "weight-only posterior above threshold" if weight_only else "posterior above threshold",
                      move=mv["id"], sc=sc, extra=extra)
            if top["posterior"] >= cfg.learn_min_posterior:
                self._learn(mv, top)
            return
        if abs(top["z"]) > cfg.accept_max_z and not personal:
            self._open_review(mv, sc, "weight change fits no item")
            return
        top_k = hyps[: cfg.ask_top_k]
        cover = sum(h["posterior"] for h in top_k)
        if mv.get("same_weight"):
            # only the camera saw it: the shopper says whether anything was swapped
            self._open_prompt(mv, sc, "pick", [h for h in hyps if h["kind"] == "swap"][: cfg.ask_top_k] or top_k)
            return
        if cover >= cfg.ask_cover or personal:
            kind = "personal" if personal else ("removal" if mv["delta_g"] < 0 else "pick")
            self._open_prompt(mv, sc, kind, top_k)
            return
        if mv["delta_g"] > 0 and cfg.ask_scan and sc.best_fit_z <= cfg.accept_max_z:
            self._open_prompt(mv, sc, "scan", hyps[: max(cfg.ask_top_k, 5)])
            return
        if mv["delta_g"] <= 0 and cfg.ask_open_removal and abs(top["z"]) <= cfg.accept_max_z:
            # something in the basket fits but nothing stands out (often a swap): the shopper names
            # what they took out (and put in); an answer that does not fit goes to review
            self._open_prompt(mv, sc, "removal", hyps[: max(cfg.ask_top_k, 5)])
            return
        self._open_review(mv, sc, "evidence does not single out an item"
                          if sc.best_fit_z <= cfg.accept_max_z else "weight change fits no item")

    # ------------------------------------------------------------------ apply
    def _line_by_id(self, line_id):
        for ln in self.s["lines"]:
            if ln["line_id"] == line_id:
                return ln
        return None

    def _add_units(self, sku: str, qty: int, weight_g: float, move_id: str) -> None:
        item = self.cat.items[sku]
        if item.sold_by_weight:
            self._new_line(sku, 1, weight_g, move_id)
            return
        for ln in self.s["lines"]:
            if ln["sku"] == sku and ln["status"] == "accepted" and not ln["by_weight"]:
                ln["qty"] += qty
                ln["weight_g"] = round(ln["weight_g"] + weight_g, 1)
                ln["price_cents"] = ln["qty"] * ln["unit_price_cents"]
                return
        self._new_line(sku, qty, weight_g, move_id)

    def _new_line(self, sku: str, qty: int, weight_g: float, move_id: str) -> None:
        item = self.cat.items[sku]
        self.s["n"]["line"] += 1
        price = (round(weight_g * item.price_cents / 1000.0) if item.sold_by_weight
                 else qty * item.price_cents)
        self.s["lines"].append({"line_id": f"L{self.s['n']['line']}", "sku": sku, "name": item.name,
                                "qty": qty, "weight_g": round(float(weight_g), 1),
                                "unit_price_cents": int(item.price_cents), "price_cents": int(price),
                                "status": "accepted", "by_weight": bool(item.sold_by_weight),
                                "move_id": move_id})

    def _remove_units(self, ln: dict, qty: int, weight_g: float) -> None:
        if ln["by_weight"] or qty >= ln["qty"]:
            self.s["lines"].remove(ln)
            return
        ln["qty"] -= qty
        ln["weight_g"] = round(max(0.0, ln["weight_g"] - abs(weight_g)), 1)
        ln["price_cents"] = ln["qty"] * ln["unit_price_cents"]

    def _remove_produce(self, ln: dict, weight_g: float) -> None:
        """Some of a loose-produce line came out: its weight and price go down; all of it: the line goes."""
        left = ln["weight_g"] - abs(weight_g)
        if left < self.cfg.partial_min_left_g:
            self.s["lines"].remove(ln)
            return
        ln["weight_g"] = round(left, 1)
        ln["price_cents"] = int(round(left * ln["unit_price_cents"] / 1000.0))

    def _counts(self) -> tuple[dict, int]:
        """What the basket charges for, per SKU (units, or grams for produce), and personal items."""
        c: dict = {}
        for ln in self.s["lines"]:
            if ln["status"] == "accepted" and ln["sku"]:
                c[ln["sku"]] = round(c.get(ln["sku"], 0) + (ln["weight_g"] if ln["by_weight"] else ln["qty"]), 1)
        return c, len(self.s["personal"])

    def _effect(self, before: tuple[dict, int]) -> dict:
        """The basket change since `before` (recorded with the decision: what was charged or credited)."""
        (b, bp), (a, ap) = before, self._counts()
        d = {k: round(a.get(k, 0) - b.get(k, 0), 1) for k in sorted(set(a) | set(b))}
        out = {k: v for k, v in d.items() if v}
        if ap != bp:
            out["personal"] = ap - bp
        return out

    def _apply(self, mv: dict, h: dict) -> None:
        """Apply an accepted hypothesis to the basket."""
        before = self._counts()
        self._apply_h(mv, h)
        mv["effect"] = self._effect(before)
        self._note_removals(mv)

    def _note_removals(self, mv: dict) -> None:
        """Packaged units just taken out: context for a put-back (`readd`)."""
        out = [k for k, v in mv.get("effect", {}).items()
               if v < 0 and k != "personal" and not self.cat.items[k].sold_by_weight]
        if out or "recent_out" in self.s:
            keep = [r for r in self.s.get("recent_out", [])
                    if self.s["now_ms"] - r["mono_ms"] <= self.cfg.readd_window_ms]
            self.s["recent_out"] = (keep + [{"sku": k, "mono_ms": mv["mono_ms"]} for k in out])[-16:]

    def _split(self, skus_qty: list[tuple[str, int]], total_g: float) -> list[float]:
        """Share a movement's weight among products in proportion to their expected weights."""
        exp = [q * self.book.params(s)[0] for s, q in skus_qty]
        t = sum(exp)
        return [abs(total_g) * e / t if t > 0 else abs(total_g) / len(exp) for e in exp]

    def _apply_h(self, mv: dict, h: dict) -> None:
        d, kind = mv["delta_g"], h["kind"]
        if kind in ("add2", "remove2", "add_multi", "remove_multi", "swap_multi"):
            self._apply_multi(mv, h)
        elif kind == "readd":
            self._add_units(h["sku"], 1, d, mv["id"])
        elif kind == "remove_part":
            ln = self._line_by_id(h["target"])
            if ln is None:
                raise ReconcileError(f"remove_part: line {h['target']} is gone")
            self._remove_produce(ln, d)
        elif kind == "add":
            self._add_units(h["sku"], h["k"], d, mv["id"])
        elif kind == "remove":
            ln = self._line_by_id(h["target"])
            if ln is None:
                raise ReconcileError(f"remove: line {h['target']} is gone")
            self._remove_units(ln, h["k"], d)
        elif kind == "swap":
            ln = self._line_by_id(h["target"])
            if ln is None:
                raise ReconcileError(f"swap: line {h['target']} is gone")
            out_w = self.book.params(h["remove_sku"])[0]
            self._remove_units(ln, 1, out_w)
            self._add_units(h["sku"], 1, d + out_w, mv["id"])
        elif kind == "personal":
            self.s["n"]["personal"] += 1
            self.s["personal"].append({"pid": f"P{self.s['n']['personal']}", "weight_g": round(d, 1),
                                       "move_id": mv["id"]})
        elif kind == "personal_remove":
            self.s["personal"] = [p for p in self.s["personal"] if p["pid"] != h["target"]]
        self._fx["basket_changed"] = True
        mv["applied"] = {k: h[k] for k in ("kind", "sku", "k", "target", "skus") if k in h}

    def _apply_multi(self, mv: dict, h: dict) -> None:
        """Several products in one movement: in together, out together, or some out and others in."""
        kind = h["kind"]
        if kind == "add2":
            ins, outs = Counter(h["skus"]), Counter()
        elif kind == "remove2":
            ins, outs = Counter(), Counter(h["skus"])
        else:
            ins, outs = Counter(h.get("in", {})), Counter(h.get("out", {}))
        self._move_units(mv, list(ins.items()), list(outs.items()))

    def _move_units(self, mv: dict, ins: list, outs: list) -> None:
        """Apply (sku|None, qty) lists: packaged units by count, produce and personal items by weight.

        The weight not explained by packaged units is what produce or a personal item weighed."""
        d = mv["delta_g"]
        packaged_in = [(s, q) for s, q in ins if s is not None and not self.cat.items[s].sold_by_weight]
        packaged_out = [(s, q) for s, q in outs if s is not None and not self.cat.items[s].sold_by_weight]
        exp_in = sum(q * self.book.params(s)[0] for s, q in packaged_in)
        exp_out = sum(q * self.book.params(s)[0] for s, q in packaged_out)
        loose_in = [(s, q) for s, q in ins if s is None or self.cat.items[s].sold_by_weight]
        loose_out = [(s, q) for s, q in outs if s is None or self.cat.items[s].sold_by_weight]
        rest = d - exp_in + exp_out          # what the loose items (produce, personal) account for
        if not loose_in and not loose_out:
            scale = (d + exp_out) / exp_in if exp_in > 0 and d + exp_out > 0 else 1.0
        else:
            scale = 1.0
        for s, q in packaged_out:
            for _ in range(q):
                ln = next((x for x in self.s["lines"] if x["sku"] == s and x["status"] == "accepted"), None)
                if ln is not None:
                    self._remove_units(ln, 1, self.book.params(s)[0])
        for (s, q), w in zip(packaged_in, self._split(packaged_in, exp_in * scale) if packaged_in else []):
            self._add_units(s, q, w, mv["id"])
        if loose_in:
            share = max(0.0, rest) / len(loose_in)
            for s, _ in loose_in:
                if s is None:
                    self.s["n"]["personal"] += 1
                    self.s["personal"].append({"pid": f"P{self.s['n']['personal']}", "weight_g": round(share, 1),
                                               "move_id": mv["id"]})
                else:
                    self._new_line(s, 1, share, mv["id"])
        if loose_out:
            share = max(0.0, -rest) / len(loose_out)
            for s, _ in loose_out:
                if s is None:
                    cands = sorted(self.s["personal"], key=lambda p: abs(p["weight_g"] - share))
                    if cands:
                        self.s["personal"].remove(cands[0])
                else:
                    lns = sorted((x for x in self.s["lines"] if x["sku"] == s and x["status"] == "accepted"),
                                 key=lambda x: abs(x["weight_g"] - share))
                    if lns:
                        self._remove_produce(lns[0], share)
        self._fx["basket_changed"] = True

    def _learn(self, mv: dict, h: dict) -> None:
        """A confirmed single unit refines that SKU's weight distribution."""
        if h["kind"] not in ("add", "remove") or h["k"] != 1 or h["sku"] is None:
            return
        if self.cat.items[h["sku"]].sold_by_weight or abs(h["z"]) > self.cfg.learn_max_z:
            return
        self.book.observe(h["sku"], abs(mv["delta_g"]))

    # ------------------------------------------------------------------ prompts
    def _open_prompt(self, mv: dict, sc: Scored, kind: str, hyps: list[dict]) -> None:
        s = self.s
        s["n"]["prompt"] += 1
        pid = f"{self.cart}-p{s['n']['prompt']}"
        opts, seen = [], set()
        for h in hyps:
            names = (skus_of(h) if h["kind"] in ("add2", "remove2")
                     else [h["sku"], h["remove_sku"]] if h["kind"] == "swap"
                     else [h["sku"]] if h["sku"] else [])
            key = tuple(sorted(names))
            if not names or key in seen:
                continue
            seen.add(key)
            if len(names) == 1:
                opts.append({"sku": names[0], "name": self.cat.items[names[0]].name})
            elif h["kind"] == "swap":
                opts.append({"sku": names[0], "skus": list(names),
                             "name": f"{self.cat.items[names[0]].name} instead of {self.cat.items[names[1]].name}"})
            else:
                cnt = Counter(names)
                label = " + ".join((f"{q} x " if q > 1 else "") + self.cat.items[k].name for k, q in cnt.items())
                opts.append({"sku": names[0], "name": label, "skus": list(names)})
        text = {"pick": "Which item did you just put in the cart?",
                "scan": "Please scan the barcode of the item you just put in the cart.",
                "personal": "Is this a personal item (bag, phone...)?",
                "removal": "Which item did you just take out of the cart?"}[kind]
        prompt = {"v": 1, "prompt_id": pid, "kind": kind, "text": text, "options": opts,
                  "created_ms": s["now_ms"]}
        s["prompts"][pid] = {"prompt": prompt, "move_id": mv["id"]}
        mv["state"], mv["prompt_id"] = "prompt", pid
        self._fx["prompts_opened"].append(prompt)
        self._fx["basket_changed"] = True   # a pending line appears
        self._log("ask", f"ask the shopper ({kind})", move=mv["id"], sc=sc, extra={"prompt_id": pid})

    def _close_prompt(self, pid: str) -> None:
        self.s["prompts"].pop(pid, None)
        self._fx["prompts_closed"].append(pid)

    def _on_answer(self, a: Answer) -> None:
        s = self.s
        if a.answer_id in s["answers_seen"]:
            self._log("ignored", "duplicate answer_id", extra={"answer_id": a.answer_id})
            return
        if a.prompt_id not in s["prompts"]:
            self._log("ignored", "answer to a closed or unknown prompt",
                      extra={"answer_id": a.answer_id, "prompt_id": a.prompt_id})
            return
        s["answers_seen"] = (s["answers_seen"] + [a.answer_id])[-256:]
        mv = s["moves"][s["prompts"][a.prompt_id]["move_id"]]
        self._prompt_options = {a.prompt_id: s["prompts"][a.prompt_id]["prompt"]["options"]}
        self._close_prompt(a.prompt_id)
        mv["state"], mv["prompt_id"] = "answered", None
        self._fx["basket_changed"] = True
        sc = self._score(mv)
        ev = ["answer", "weight"]
        info = {"answer_id": a.answer_id, "prompt_id": a.prompt_id}
        if a.none and mv.get("same_weight"):
            mv["state"] = "done"     # the weight did not change and the shopper swapped nothing
            self._log("answer", "shopper: nothing was swapped (no weight change)", move=mv["id"], evidence=ev,
                      extra=info)
            return
        if a.none:
            self._open_review(mv, sc, "shopper chose none of the options", ev)
            return
        if a.personal:
            if mv["delta_g"] > 0:
                strong = [h for h in sc.hyps if h["kind"] != "personal" and abs(h["z"]) <= self.cfg.accept_max_z
                          and h["posterior"] >= 0.5 and ("vision" in sc.evidence or "barcode" in sc.evidence)]
                if strong or mv["delta_g"] > self.cfg.personal_max_g:
                    self._open_review(mv, sc, "shopper says personal item but the evidence says product", ev)
                    return
                h = {"kind": "personal", "sku": None, "k": 1, "target": None, "posterior": 1.0, "z": 0.0}
            else:
                cands = [h for h in sc.hyps if h["kind"] == "personal_remove" and abs(h["z"]) <= self.cfg.contradict_z]
                if not cands:
                    self._open_review(mv, sc, "no personal item of this weight in the cart", ev)
                    return
                h = cands[0]
            self._apply(mv, h)
            mv["state"] = "done"
            self._log("answer", "shopper confirmed a personal item", move=mv["id"], evidence=ev,
                      extra=dict(info, hypothesis=h))
            return
        if a.skus is not None:
            self._answer_skus(mv, sc, a, ev, info)
            return
        sku = a.sku
        if a.barcode is not None:
            sku = self.cat.sku_of_barcode(a.barcode)
            ev = ["answer", "barcode", "weight"]
            if sku is None:
                self._open_review(mv, sc, f"scanned barcode {a.barcode} is not in the catalogue", ev)
                return
        if sku not in self.cat.idx:
            self._open_review(mv, sc, f"shopper chose unknown sku {sku!r}", ev)
            return
        h = best_with_sku(sc, self.cat, sku, removal=mv["delta_g"] < 0, max_z=self.cfg.contradict_z)
        if mv["delta_g"] < 0 and self.cat.items[sku].sold_by_weight:
            h = self._produce_out(sku, mv["delta_g"]) or h
        if h is None or abs(h["z"]) > self.cfg.contradict_z:
            self._open_review(mv, sc, f"shopper's choice {sku} does not fit the weight change"
                              f" (z={h['z'] if h else 'n/a'})", ev)
            return
        if a.barcode is None and self._doubtful(sc, sku, a.prompt_id):
            self._open_review(mv, sc, f"shopper's choice {sku} is unlikely given the camera and the weight", ev)
            return
        self._apply(mv, h)
        mv["state"] = "done"
        self._learn(mv, h)
        self._log("answer", "shopper's choice fits the weight", move=mv["id"], evidence=ev,
                  extra=dict(info, hypothesis=h))

    def _doubtful(self, sc: Scored, sku: str, prompt_id: str) -> bool:
        """A tap can be a slip: combine the answer (right with 1 - answer_error_rate) with the
        evidence; a choice the evidence makes unlikely goes to a human instead of the receipt."""
        e = self.cfg.answer_error_rate
        if e <= 0 or not sc.hyps or "vision" not in sc.evidence:
            return False    # weight alone: the priors, not evidence, rank the options
        opts = self._prompt_options.get(prompt_id, ())
        if not any(o["sku"] == sku and not o.get("skus") for o in opts):
            return False    # not on the screen: chosen on purpose (search, label), not a slip
        p = sum(h["posterior"] for h in sc.hyps if h["sku"] == sku)
        m = max(2, len(opts))
        post = p * (1 - e) / (p * (1 - e) + (1 - p) * e / (m - 1)) if p > 0 else 0.0
        return post < self.cfg.answer_min_posterior

    def _produce_out(self, sku: str, delta_g: float) -> dict | None:
        """Some or all of a loose-produce line of `sku` came out: the line that holds enough."""
        tol = 3 * self.cfg.sensor_noise_g * math.sqrt(2.0)
        lines = [ln for ln in self.s["lines"] if ln["sku"] == sku and ln["status"] == "accepted"
                 and ln["weight_g"] + tol >= -delta_g]
        if not lines:
            return None
        ln = min(lines, key=lambda x: x["weight_g"])
        return {"kind": "remove_part", "sku": sku, "k": 1, "target": ln["line_id"], "posterior": 1.0,
                "mu_g": round(delta_g, 3), "sd_g": 0.0, "z": 0.0}

    def _answer_skus(self, mv: dict, sc: Scored, a, ev: list, info: dict) -> None:
        """The shopper named several products (one entry per unit): in, out, or swapped, by the weight."""
        unknown = [x for x in a.skus if x not in self.cat.idx]
        if unknown:
            self._open_review(mv, sc, f"shopper chose unknown sku {unknown[0]!r}", ev)
            return
        if len(a.skus) == 1:
            h = best_with_sku(sc, self.cat, a.skus[0], removal=mv["delta_g"] < 0, max_z=self.cfg.contradict_z)
        else:
            fits = fit_skus(list(a.skus), mv["delta_g"], mv["noise_g"], self.cat, self.book, self.s["lines"],
                            self.cfg)
            h = fits[0] if fits else None
        if h is None or abs(h["z"]) > self.cfg.contradict_z:
            self._open_review(mv, sc, f"shopper's choice {list(a.skus)} does not fit the weight change"
                              f" (z={h['z'] if h else 'n/a'})", ev)
            return
        self._apply(mv, h)
        mv["state"] = "done"
        self._learn(mv, h)
        self._log("answer", "shopper's choice fits the weight", move=mv["id"], evidence=ev,
                  extra=dict(info, hypothesis=h))

    # ------------------------------------------------------------------ reviews
    def _open_review(self, mv: dict, sc: Scored, reason: str, evidence: list[str] | None = None) -> None:
        s = self.s
        s["n"]["review"] += 1
        rid = f"{self.cart}-r{s['n']['review']}"
        vis = mv["vision"] or {}
        req = {"v": 1, "review_id": rid, "cart": self.cart, "created_ms": s["now_ms"],
               "candidates": [dict({"sku": h["sku"], "score": round(h["posterior"], 6), "kind": h["kind"]},
                                   **({"skus": h["skus"]} if "skus" in h else {}))
                              for h in sc.hyps if h["sku"]],
               "weight": {"delta_g": mv["delta_g"], "total_g": mv["total_g"], "noise_g": mv["noise_g"],
                          "unsettled_seq": mv["unsettled_seq"], "seq": mv["seq"], "epoch": mv["epoch"]},
               "frames": list(vis.get("frame_ids", [])), "barcodes": list(vis.get("barcodes", [])),
               "reason": reason}
        s["reviews"][rid] = {"request": req, "move_id": mv["id"]}
        mv["state"], mv["review_id"] = "review", rid
        self._fx["reviews_opened"].append(req)
        self._fx["basket_changed"] = True
        self._log("review", reason, move=mv["id"], sc=sc, evidence=evidence, extra={"review_id": rid})

    def _on_verdict(self, v: Verdict) -> None:
        s = self.s
        if v.verdict_id in s["verdicts_seen"]:
            self._log("ignored", "duplicate verdict_id", extra={"verdict_id": v.verdict_id})
            return
        if v.review_id not in s["reviews"]:
            self._log("ignored", "verdict for a closed or unknown review",
                      extra={"verdict_id": v.verdict_id, "review_id": v.review_id})
            return
        s["verdicts_seen"] = (s["verdicts_seen"] + [v.verdict_id])[-256:]
        mv = s["moves"][s["reviews"].pop(v.review_id)["move_id"]]
        self._fx["reviews_closed"].append(v.review_id)
        self._fx["basket_changed"] = True
        mv["state"], mv["review_id"] = "done", None
        d = mv["delta_g"]
        info = {"verdict_id": v.verdict_id, "review_id": v.review_id, "sku": v.sku, "qty": v.qty}
        if v.adds is not None or v.removes is not None:
            ins, outs = list(v.adds or ()), list(v.removes or ())
            info.update(adds=[list(x) for x in ins], removes=[list(x) for x in outs])
            before = self._counts()
            self._move_units(mv, ins, outs)
            mv["effect"] = self._effect(before)
            self._note_removals(mv)
            mv["applied"] = {"kind": "verdict", "in": ins, "out": outs}
            if len(ins) == 1 and not outs and ins[0][0] is not None and ins[0][1] == 1 \
                    and not self.cat.items[ins[0][0]].sold_by_weight:
                self._learn_verdict(mv, ins[0][0])
            self._log("verdict", "reviewer decided (items)", move=mv["id"], evidence=["verdict"], extra=info)
            return
        before = self._counts()
        if v.qty == 0:
            self._log("verdict", "reviewer: no basket change", move=mv["id"], evidence=["verdict"], extra=info)
            return
        if v.sku is None:
            if d > 0:
                self._apply(mv, {"kind": "personal", "sku": None, "k": 1, "target": None})
            else:
                cands = sorted(s["personal"], key=lambda p: abs(p["weight_g"] + d))
                if cands:
                    self._apply(mv, {"kind": "personal_remove", "sku": None, "k": 1, "target": cands[0]["pid"]})
            self._log("verdict", "reviewer: not a product", move=mv["id"], evidence=["verdict"], extra=info)
            return
        if d > 0:
            self._add_units(v.sku, v.qty, d, mv["id"])
        else:
            lines = [ln for ln in s["lines"] if ln["sku"] == v.sku and ln["status"] == "accepted"]
            if not lines:
                self._log("verdict", f"reviewer removed {v.sku} but it is not in the basket",
                          move=mv["id"], evidence=["verdict"], extra=info)
                return
            if lines[0]["by_weight"]:
                self._remove_produce(min(lines, key=lambda x: abs(x["weight_g"] + d)), d)
            else:
                self._remove_units(lines[0], v.qty, d)
        mv["applied"] = {"kind": "add" if d > 0 else "remove", "sku": v.sku, "k": v.qty}
        mv["effect"] = self._effect(before)
        self._note_removals(mv)
        if v.qty == 1 and not self.cat.items[v.sku].sold_by_weight:
            self._learn_verdict(mv, v.sku)
        self._log("verdict", "reviewer decided", move=mv["id"], evidence=["verdict"], extra=info)

    def _learn_verdict(self, mv: dict, sku: str) -> None:
        mean, sd = self.book.params(sku)
        z = (abs(mv["delta_g"]) - mean) / math.sqrt(sd * sd + self.cfg.sensor_noise_g ** 2)
        self._learn(mv, {"kind": "add", "sku": sku, "k": 1, "z": z})

    # ------------------------------------------------------------------ log
    def _log(self, outcome: str, reason: str, move: str | None = None, sc: Scored | None = None,
             evidence: list[str] | None = None, extra: dict | None = None) -> None:
        s = self.s
        s["n"]["decision"] += 1
        rec = {"id": f"d{s['n']['decision']}", "mono_ms": s["now_ms"], "move_id": move,
               "outcome": outcome, "reason": reason}
        if sc is not None:
            rec["evidence"] = evidence or list(sc.evidence)
            if sc.hyps:
                rec["hypothesis"] = sc.hyps[0]
                rec["posterior"] = sc.hyps[0]["posterior"]
                rec["runner_up"] = sc.hyps[1] if len(sc.hyps) > 1 else None
                rec["candidates"] = sc.hyps[:3]
        elif evidence is not None:
            rec["evidence"] = evidence
        if extra:
            rec.update(extra)
        mv = s["moves"].get(move) if move else None
        if mv is not None and outcome in ("accept", "answer", "verdict"):
            rec["effect"] = mv.get("effect", {})   # what the basket charged or credited for this movement
        s["log"] = (s["log"] + [rec])[-self.cfg.log_limit:]
        self._fx["decisions"].append(rec)

    # ------------------------------------------------------------------ outputs
    def basket(self) -> dict:
        """§10 basket payload (without transport fields the service adds)."""
        s = self.s
        lines = [{k: ln[k] for k in ("line_id", "sku", "name", "qty", "weight_g", "unit_price_cents",
                                     "price_cents", "status")} for ln in s["lines"]]
        for mv in sorted(s["moves"].values(), key=lambda m: m["id"]):
            if mv["state"] in ("prompt", "review", "answered", "waiting") and mv["delta_g"] > 0:
                lines.append({"line_id": f"P-{mv['id']}", "sku": None, "name": "Unconfirmed item", "qty": 1,
                              "weight_g": round(mv["delta_g"], 1), "unit_price_cents": 0, "price_cents": 0,
                              "status": "review" if mv["state"] == "review" else "pending"})
        return {"v": 1, "cart": self.cart, "version": s["version"], "updated_ms": s["now_ms"], "lines": lines,
                "total_cents": sum(ln["price_cents"] for ln in lines if ln["status"] == "accepted"),
                "open_prompts": len(s["prompts"]), "open_reviews": len(s["reviews"])}

    def open_prompts(self) -> list[dict]:
        return [self.s["prompts"][k]["prompt"] for k in sorted(self.s["prompts"], key=_natural)]

    def open_reviews(self) -> list[dict]:
        return [self.s["reviews"][k]["request"] for k in sorted(self.s["reviews"], key=_natural)]

    def decisions(self) -> list[dict]:
        return list(self.s["log"])

    def checkout(self, req_id: str, mono_ms: int | None = None) -> dict:
        """§12 receipt, or a refusal with the reason."""
        s = self.s
        if mono_ms is not None:
            self.advance(mono_ms)
        if s["unsettled"] or any(m["state"] == "waiting" for m in s["moves"].values()):
            return {"v": 1, "req_id": req_id, "ok": False, "reason": "unsettled"}
        if s["prompts"]:
            return {"v": 1, "req_id": req_id, "ok": False, "reason": "open_prompts"}
        if s["reviews"]:
            return {"v": 1, "req_id": req_id, "ok": False, "reason": "open_reviews"}
        b = self.basket()
        receipt = {"v": 1, "req_id": req_id, "ok": True, "receipt_id": f"{self.cart}-{s['version']}",
                   "lines": b["lines"], "total_cents": b["total_cents"], "issued_ms": s["now_ms"]}
        s["receipt"] = receipt
        return receipt


def _natural(key: str):
    """`c1-p10` after `c1-p9`."""
    digits = len(key) - len(key.rstrip("0123456789"))
    return (key[: len(key) - digits], int(key[len(key) - digits:] or 0))
