"""Provisional weight events, and a hand's +x/-x pair cancelled (docs/reconciliation.md §1.1).

Provisional (protocol §6.1 `prov` / `replaces`): the scale sends a removal (perhaps the "out" of a
swap) or a settle after rough holds (perhaps a hand still on it) at once with `prov: true`, and
about a second later the final event that names it in `replaces`. The final's delta is the whole
change from the level before the provisional, so in the provisional's movement it *replaces* the
provisional's delta; it is never added to it. The movement is not decided while its provisional is
open (at most `prov_wait_ms`). A final whose provisional was decided already (the wait ran out)
makes a movement of the difference only; one whose provisional was never seen (lost) counts whole.

Hand pair: a hand rests on the basket (+x settles) and lifts (-x). When a removal matches an
addition of the same size made shortly before that is not yet in the basket (waiting, asked or under
review) and the camera saw no product or personal item in either, both are cancelled: the
addition's prompt or review is withdrawn.
"""
from __future__ import annotations

import math

from .camera import seen_of
from .inputs import VisionSummary, WeightChange
from .state import SETTLED_KEEP, MoveState, ReconcileError


def weight_change(epoch: int, ev, mono_ms: int) -> WeightChange:
    """The engine's input for a decoded §6.1 `weight` event (protocol.WeightEvent)."""
    return WeightChange(epoch, ev.seq, mono_ms, ev.delta_g, ev.total_g, ev.noise_g, ev.window.unsettled_seq,
                        prov=ev.prov, replaces=ev.replaces)


def same_size(plus_g: float, minus_g: float, noise_g: float, abs_g: float, rel: float) -> bool:
    """A +plus_g settle and a -minus_g one (minus_g < 0) are the same load coming and going."""
    return plus_g > 0 > minus_g and abs(plus_g + minus_g) <= max(abs_g, rel * plus_g, 3.0 * noise_g)


def hand_pair(plus: tuple[int, float, float], minus: tuple[int, float, float], cfg) -> bool:
    """(mono_ms, delta_g, noise_g) of an addition and a later removal: a hand's press and lift by
    weight and time (the caller checks that nothing was seen). Shared by the engine and
    cart_sim.bench_scale, so the bench counts what the gateway cancels."""
    if cfg.hand_pair_ms <= 0:
        return False
    dt = minus[0] - plus[0]
    return (0 <= dt <= cfg.hand_pair_ms
            and same_size(plus[1], minus[1], math.hypot(plus[2], minus[2]), cfg.hand_pair_abs_g, cfg.hand_pair_rel))


HAND_PARTS = 3   # a hand's press may settle in up to this many steps (pressing harder, wandering)


def hand_group(pluses: list[tuple[int, float, float]], minus: tuple[int, float, float], cfg) -> list[int]:
    """Indices into `pluses` (earlier additions, oldest first, none seen) that a removal takes back
    as a hand's lift: the latest one, or the latest 2..HAND_PARTS together, of the same size in time
    (hand_pair); [] if none. Shared by the engine and cart_sim.bench_scale."""
    total = noise2 = 0.0
    for k in range(1, min(HAND_PARTS, len(pluses)) + 1):
        t, d, n = pluses[-k]
        if d <= 0:
            return []
        total += d
        noise2 += n * n
        if hand_pair((t, total, math.sqrt(noise2)), minus, cfg):
            return list(range(len(pluses) - k, len(pluses)))
    return []


class ProvisionalMixin:
    # ------------------------------------------------------------------ checks (before any change)
    def _check_provisional(self, w: WeightChange) -> None:
        """A forged or inconsistent `prov` / `replaces` is refused whole, naming what is wrong."""
        if not isinstance(w.prov, bool):
            raise ReconcileError(f"WeightChange.prov must be true or false, got {w.prov!r}")
        r = w.replaces
        if r is None:
            return
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r < w.seq:
            raise ReconcileError(f"WeightChange.replaces must be the seq of an earlier event (1..{w.seq - 1}), "
                                 f"got {r!r}")
        if w.prov:
            raise ReconcileError(f"weight {w.seq}: a replacing event is final; prov and replaces together")
        key = f"{w.epoch}/{r}"
        if key in self.s.get("prov_done", []):
            raise ReconcileError(f"weight {w.seq}: replaces {r}, which was replaced already")
        if key not in self.s.get("prov_open", {}) and any(
                m["epoch"] == w.epoch and r in m.get("wseqs", [m["seq"]]) for m in self._all_moves()):
            raise ReconcileError(f"weight {w.seq}: replaces {r}, which was not provisional")

    # ------------------------------------------------------------------ hooks of evidence._on_weight
    def _replace_provisional(self, w: WeightChange, start: int) -> bool:
        """Apply a final event to its provisional's movement; False: not a replacement (or one whose
        provisional was never seen: the final counts whole, as a new settle)."""
        if w.replaces is None:
            return False
        s = self.s
        key = f"{w.epoch}/{w.replaces}"
        s["prov_done"] = (s.get("prov_done", []) + [key])[-SETTLED_KEEP:]
        op = s.get("prov_open", {}).pop(key, None)
        if op is None:
            self._log("ignored", f"weight {w.seq} replaces {w.replaces}, never seen: counted whole",
                      evidence=["weight"], extra={"delta_g": float(w.delta_g), "replaces": w.replaces})
            return False
        mv = self.movement(op["move"])
        delta = round(float(w.delta_g) - op["delta_g"], 3)
        if mv is None or mv["state"] != MoveState.WAITING:
            # decided on the provisional reading (its wait ran out): only the difference is new
            if abs(delta) < self.cfg.min_delta_g:
                self._log("no_change", f"weight {w.seq} confirms provisional {w.replaces}", evidence=["weight"],
                          extra={"delta_g": float(w.delta_g), "replaces": w.replaces})
                return True
            self._new_movement(w, start, delta)
            self._log("merged", f"weight {w.seq} corrects provisional {w.replaces}, decided already: "
                      f"the difference {delta:+.1f} g is a movement", evidence=["weight"],
                      extra={"delta_g": delta, "replaces": w.replaces})
            return True
        mv.pop("prov", None)
        mv["delta_g"] = round(mv["delta_g"] + delta, 3)
        mv["total_g"], mv["seq"] = float(w.total_g), w.seq
        mv["noise_g"] = max(mv["noise_g"], float(w.noise_g))
        mv["wseqs"] = mv.get("wseqs", [op["seq"]]) + [w.seq]
        if w.unsettled_seq is not None and w.unsettled_seq not in [mv["unsettled_seq"]] + mv.get("merged_useqs", []):
            # a second change (the swap's "in"): it settled now, its burst may still come
            mv["merged_useqs"] = mv.get("merged_useqs", []) + [w.unsettled_seq]
            mv["mono_ms"] = w.mono_ms
            mv["deadline_ms"] = w.mono_ms + self.cfg.evidence_window_ms
        # else the provisional's own change at its refined level: the merge hold and the wait for
        # vision still count from when it settled, so the decision comes with the final
        for v in self._take_visions(w.epoch, w.unsettled_seq, start, w.mono_ms):
            self._attach(mv, v)
        self._log("merged", f"weight {w.seq} replaces provisional {w.replaces} in movement {mv['id']}",
                  move=mv["id"], evidence=["weight"],
                  extra={"delta_g": mv["delta_g"], "provisional_g": op["delta_g"], "final_g": float(w.delta_g)})
        self._fx["basket_changed"] = True
        self._pair_final(mv)
        return True

    def _note_provisional(self, mv: dict, w: WeightChange) -> None:
        """`w` (provisional) went into movement `mv` (new or merged): hold it for its final."""
        if not w.prov:
            return
        op = self.s.setdefault("prov_open", {})
        op[f"{w.epoch}/{w.seq}"] = {"move": mv["id"], "seq": w.seq, "delta_g": float(w.delta_g),
                                    "mono_ms": w.mono_ms}
        while len(op) > SETTLED_KEEP:     # bounded: a scale that never sends finals
            op.pop(next(iter(op)))
        mv["prov"] = w.seq
        mv.setdefault("wseqs", [w.seq])

    def _held_provisional(self, mv: dict) -> bool:
        """A movement with an open provisional waits for its final, at most prov_wait_ms."""
        return "prov" in mv and self.s["now_ms"] < mv["mono_ms"] + self.cfg.prov_wait_ms

    def _cancel_hand_pair(self, w: WeightChange, start: int) -> bool:
        """A removal that takes back an addition of the same size not yet in the basket, with no
        product seen in either: a hand pressed and lifted. Cancels both; True if it did. A
        provisional removal is paired when its final comes (_pair_final)."""
        if w.delta_g >= 0 or w.prov or self.cfg.hand_pair_ms <= 0:
            return False
        plus = self._hand_partner(w.epoch, (w.mono_ms, float(w.delta_g), float(w.noise_g)), None)
        if not plus:
            return False
        vis = self._take_visions(w.epoch, w.unsettled_seq, start, w.mono_ms)
        if any(self._saw_something(v.to_dict()) for v in vis):
            # not a hand after all: the vision stays for the removal's own movement
            self.s["visions"].extend(v.to_dict() for v in vis)
            return False
        self._cancel_pair(plus, w.seq, float(w.delta_g), w.mono_ms, bool(vis))
        return True

    def _pair_final(self, mv: dict) -> bool:
        """A removal's movement whose provisional was just replaced: the hand-pair rule as above."""
        if mv["delta_g"] >= 0 or self.cfg.hand_pair_ms <= 0 or self._saw_something(mv["vision"]):
            return False
        plus = self._hand_partner(mv["epoch"], (mv["mono_ms"], mv["delta_g"], mv["noise_g"]), mv["id"])
        if not plus:
            return False
        mv["state"] = MoveState.DONE
        self._cancel_pair(plus, mv["seq"], mv["delta_g"], mv["mono_ms"], mv["vision"] is not None)
        return True

    def _hand_partner(self, epoch: int, minus: tuple[int, float, float], not_id: str | None) -> list[dict]:
        """The additions not yet in the basket, nothing seen, that this removal takes back ([]: none)."""
        cands = sorted((m for m in self.s["moves"].values()
                        if m["epoch"] == epoch and m["id"] != not_id
                        and m["state"] in (MoveState.WAITING, MoveState.PROMPT, MoveState.REVIEW)
                        and not m.get("same_weight") and "prov" not in m and m["mono_ms"] <= minus[0]),
                       key=lambda m: (m["mono_ms"], m["id"]))
        cands = [m for m in cands if m["delta_g"] > 0 and not self._saw_something(m["vision"])]
        pick = hand_group([(m["mono_ms"], m["delta_g"], m["noise_g"]) for m in cands], minus, self.cfg)
        return [cands[i] for i in pick]

    def _cancel_pair(self, pluses: list[dict], seq: int, minus_g: float, mono_ms: int, had_vision: bool) -> None:
        for mv in pluses:
            if mv["state"] == MoveState.PROMPT and mv["prompt_id"]:
                self._close_prompt(mv["prompt_id"])           # the shopper is not asked about a hand
            if mv["state"] == MoveState.REVIEW and mv["review_id"]:
                self.s["reviews"].pop(mv["review_id"], None)   # nor is a reviewer
                self._fx["reviews_closed"].append(mv["review_id"])
            mv["state"], mv["prompt_id"], mv["review_id"] = MoveState.DONE, None, None
            self._log("no_change", f"hand: +{mv['delta_g']:.1f} g (of {len(pluses)}) then {minus_g:.1f} g "
                      f"(weight {seq}) within {mono_ms - mv['mono_ms']} ms, nothing seen: cancelled", move=mv["id"],
                      evidence=["weight", "vision"] if (mv["vision"] or had_vision) else ["weight"],
                      extra={"delta_g": mv["delta_g"], "cancelled_by_g": minus_g, "hand_pair": True})
        self._fx["basket_changed"] = True

    def _saw_something(self, vision: dict | None) -> bool:
        seen = seen_of(VisionSummary.from_dict(vision), self.cat, self.cfg) if vision else None
        return seen is not None and (bool(seen.products) or seen.personal >= self.cfg.personal_min_score)
