"""Pairing a cart's weight windows with its vision: movements, not settles.

`unsettled` opens a window, `weight` settles it into a movement; a capture burst is matched to
its movement by `ref` (or by time); settles of one physical action (a second settle opening
while the first is undecided, `merge_gap_ms`) are merged into one movement; vision of a window
with no weight change may still be a swap for a product of the same weight.
(docs/reconciliation.md §1.)
"""
from __future__ import annotations

import math

from .inputs import Unsettled, VisionSummary, WeightChange
from .state import SETTLED_KEEP, MoveState


class EvidenceMixin:
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
            s["settled_refs"] = (s["settled_refs"] + [ukey])[-SETTLED_KEEP:]
        if self._replace_provisional(w, start):    # provisional.py: a final replaces, never adds
            return
        if abs(w.delta_g) < self.cfg.min_delta_g:
            if ukey:
                s["nochange_refs"] = (s["nochange_refs"] + [ukey])[-SETTLED_KEEP:]
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
        host = self._merge_host(w.epoch, start)
        if host is not None:
            self._merge(host, w, start)
            self._note_provisional(host, w)
            return
        if self._cancel_hand_pair(w, start):      # provisional.py: a hand pressed and lifted
            return
        self._note_provisional(self._new_movement(w, start, float(w.delta_g)), w)

    def _new_movement(self, w: WeightChange, start: int, delta_g: float) -> dict:
        s = self.s
        s["n"]["move"] += 1
        mid = f"m{s['n']['move']}"
        s["moves"][mid] = {"id": mid, "epoch": w.epoch, "seq": w.seq, "unsettled_seq": w.unsettled_seq,
                           "start_ms": start, "mono_ms": w.mono_ms, "delta_g": delta_g,
                           "total_g": float(w.total_g), "noise_g": float(w.noise_g),
                           "deadline_ms": w.mono_ms + self.cfg.evidence_window_ms,
                           "vision": None, "state": MoveState.WAITING, "prompt_id": None, "review_id": None}
        vis = self._take_visions(w.epoch, w.unsettled_seq, start, w.mono_ms)
        for v in vis:
            self._attach(s["moves"][mid], v)
        self._burst_of_same_weight(s["moves"][mid])
        self._fx["basket_changed"] = delta_g > 0   # a pending line shows until decided
        return s["moves"][mid]

    def _burst_of_same_weight(self, mv: dict) -> None:
        """A weight event for an unsettled window whose burst opened a same-weight swap: the scale
        settled after the burst had aged out (a slow placement on a pushed cart), so the burst is
        this movement's, not a swap's. A swap still waiting or asked is withdrawn; one that changed
        nothing (the shopper said nothing was swapped) gives its burst; one applied or with a human
        is left as it is (this weight then says what else changed)."""
        if mv["unsettled_seq"] is None or not self.cfg.same_weight_burst_to_weight:
            return
        for prev in (*self.s["moves"].values(), *self.s["done"].values()):   # (no order needed)
            if prev is mv or not prev.get("same_weight") or not prev["vision"] \
                    or prev["epoch"] != mv["epoch"] or prev["unsettled_seq"] != mv["unsettled_seq"]:
                continue
            if prev.get("effect") or prev["state"] in (MoveState.ANSWERED, MoveState.REVIEW):
                return
            if prev["state"] != MoveState.DONE:
                if prev["prompt_id"]:
                    self._close_prompt(prev["prompt_id"])
                    prev["prompt_id"] = None
                prev["state"] = MoveState.DONE
                self._log("no_change", f"the weight changed after all: {mv['id']} takes this burst",
                          move=prev["id"], evidence=["weight", "vision"], extra={"delta_g": mv["delta_g"]})
            self._attach(mv, VisionSummary.from_dict(prev["vision"]))
            return

    def _merge_host(self, epoch: int, start_ms: int) -> dict | None:
        """The undecided movement a settle starting at `start_ms` continues: one physical action
        (a slow or pushed placement) settling twice is one decision, not two wrong ones."""
        gap = self.cfg.merge_gap_ms
        if gap <= 0:
            return None
        cands = [m for m in self.s["moves"].values() if m["state"] == MoveState.WAITING and not m.get("same_weight")
                 and m["epoch"] == epoch and m["mono_ms"] <= start_ms <= m["mono_ms"] + gap]
        return max(cands, key=lambda m: (m["mono_ms"], m["id"])) if cands else None

    def _merge(self, mv: dict, w: WeightChange, start: int) -> None:
        mv["delta_g"] = round(mv["delta_g"] + float(w.delta_g), 3)
        mv["total_g"], mv["seq"] = float(w.total_g), w.seq
        mv["noise_g"] = max(mv["noise_g"], float(w.noise_g))
        mv["mono_ms"] = w.mono_ms
        mv["deadline_ms"] = w.mono_ms + self.cfg.evidence_window_ms
        if w.unsettled_seq is not None:
            mv["merged_useqs"] = mv.get("merged_useqs", []) + [w.unsettled_seq]
        for v in self._take_visions(w.epoch, w.unsettled_seq, start, w.mono_ms):
            self._attach(mv, v)
        self._log("merged", f"settle {w.seq} continues movement {mv['id']} (one action)", move=mv["id"],
                  evidence=["weight"], extra={"delta_g": mv["delta_g"], "part_g": float(w.delta_g)})
        self._fx["basket_changed"] = True

    def _held(self, mv: dict) -> bool:
        """Wait before deciding while the same action may still be settling: shortly after the
        settle, or while an `unsettled` window opened just after it is still open."""
        cfg, now = self.cfg, self.s["now_ms"]
        if self._held_provisional(mv):
            return True
        if cfg.merge_gap_ms <= 0:
            return False
        if now < mv["mono_ms"] + cfg.merge_hold_ms:
            return True
        if now >= mv["mono_ms"] + cfg.merge_gap_ms + cfg.merge_hold_ms:
            return False     # bounded: a window that stays open (a push, a lean) does not hold it longer
        return any(mv["mono_ms"] <= u["mono_ms"] <= mv["mono_ms"] + cfg.merge_gap_ms
                   for u in self.s["unsettled"].values())

    def _refs_of(self, mv: dict) -> list:
        return [[mv["epoch"], q] for q in [mv["unsettled_seq"]] + mv.get("merged_useqs", []) if q is not None]

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
        if v.n_frames > v.stills:
            self._retake_seen(mv)     # burst frames: a retake's, if one was asked (retake.py)
        if mv["vision"] is None:
            mv["vision"] = v.to_dict()
        else:
            cur = VisionSummary.from_dict(mv["vision"])
            cur.merge(v)
            mv["vision"] = cur.to_dict()

    def _on_vision(self, v: VisionSummary) -> None:
        s, win = self.s, self.cfg.evidence_window_ms
        target = None
        if v.ref is not None:
            for mv in self._all_moves():     # a decided movement's late vision is logged as such
                if v.ref in self._refs_of(mv):
                    target = mv
                    break
        else:
            best = None
            for mv in s["moves"].values():
                if mv["start_ms"] - win <= v.mono_ms <= mv["mono_ms"] + win:
                    d = abs(v.mono_ms - mv["mono_ms"])
                    if mv["state"] == MoveState.WAITING and (best is None or d < best[0]):
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
        if target["state"] == MoveState.WAITING:
            self._attach(target, v)
        else:
            self._log("late_vision", "vision arrived after the decision; kept for the record",
                      move=target["id"], evidence=["vision"], extra={"frames": v.frame_ids})

    def _swapped_in(self, v: VisionSummary) -> str | None:
        """The product a burst saw that is not in the basket, surely enough, with a basket line of its
        weight that could have come out: what a swap of one weight put in (None: nothing like it)."""
        cfg = self.cfg
        if cfg.same_weight_swap_min_score <= 0 or not v.scores:
            return None
        lines = [ln for ln in self.s["lines"] if ln["status"] == "accepted" and not ln["by_weight"]]
        have = {ln["sku"] for ln in lines}
        # frames of a swap show both products; the one that matters is the one not in the basket
        new = [k for k in v.scores if k not in have and k in self.cat.idx and not self.cat.items[k].sold_by_weight]
        if not new:
            return None     # only products already in the basket: lifted and put back
        sku = max(new, key=lambda k: (v.scores[k], k))
        if v.scores[sku] < cfg.same_weight_swap_min_score:
            return None
        mb, sb = self.book.params(sku)
        near = [ln for ln in lines if abs(self.book.params(ln["sku"])[0] - mb)
                <= 3.0 * math.hypot(self.book.params(ln["sku"])[1], sb) + cfg.min_delta_g]
        return sku if near else None

    def _same_swap_again(self, v: VisionSummary, sku: str, mv: dict | None = None, held: dict | None = None) -> bool:
        """A burst within same_weight_swap_repeat_ms of a movement's start that names one of that
        movement's products is that movement seen again: a hand's way in and out can open two
        unsettled windows, each with its burst, and once the first is decided the product it took
        out is "not in the basket" to the second burst, which would swap it back (or, while the first
        is still open, swap in what it puts in). Its vision joins the movement while that waits;
        otherwise it is logged and changes nothing, and `held` (the buffered burst) is marked
        `again` so that a weight event of its own window that comes later still takes it (the
        flush keeps it another vision_max_wait_ms). True: it was the same action."""
        cfg = self.cfg
        if cfg.same_weight_swap_repeat_ms <= 0:
            return False
        for prev in (*self.s["moves"].values(), *self.s["done"].values()):   # (no order needed)
            if prev is mv or abs(v.mono_ms - prev["start_ms"]) > cfg.same_weight_swap_repeat_ms:
                continue
            # one of its products: named by its burst, or put in or taken out by its decision
            named = prev["vision"] is not None and \
                prev["vision"]["scores"].get(sku, 0.0) >= cfg.same_weight_swap_min_score
            if not named and sku not in (prev.get("effect") or {}):
                continue
            if mv is not None:      # a tiny weight change's movement: done, its burst is the other's
                mv["state"] = MoveState.DONE
            if prev["state"] == MoveState.WAITING:
                self._attach(prev, v)
            elif held is not None and v.ref is not None:
                held["again"] = prev["id"]
            self._log("no_change", f"the camera saw {sku} of {prev['id']} again, with no weight change",
                      move=mv["id"] if mv is not None else None, evidence=["vision", "weight", "context"],
                      extra={"frames": v.frame_ids, "same_as": prev["id"]})
            return True
        return False

    def _same_weight_swap(self, v: VisionSummary, epoch, seq, useq, delta_g: float, total_g: float,
                          noise_g: float, held: dict | None = None) -> bool:
        """The camera saw a product that is not in the basket but the weight did not change: a swap
        for a product of the same weight (the scale cannot see it). Opens a movement for it, so the
        swap hypotheses (and, if unsure, the shopper) decide; returns True if it did."""
        sku = self._swapped_in(v)
        if sku is None:
            return False
        if self._same_swap_again(v, sku, held=held):
            return True
        s = self.s
        s["n"]["move"] += 1
        mid = f"m{s['n']['move']}"
        s["moves"][mid] = {"id": mid, "epoch": epoch, "seq": seq, "unsettled_seq": useq,
                           "start_ms": v.mono_ms, "mono_ms": s["now_ms"], "delta_g": float(delta_g),
                           "total_g": float(total_g), "noise_g": float(noise_g), "deadline_ms": s["now_ms"],
                           "vision": v.to_dict(), "state": MoveState.WAITING, "prompt_id": None, "review_id": None,
                           "same_weight": True}
        self._log("same_weight_swap", f"camera saw {sku} (not in the basket) with no weight change",
                  move=mid, evidence=["vision", "weight", "context"], extra={"frames": v.frame_ids})
        return True
