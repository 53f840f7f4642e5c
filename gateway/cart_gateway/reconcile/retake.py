"""A second look before a question: when the burst of a movement missed frames and that is all
that keeps its decision back, the camera is asked for a fresh burst (protocol §9 `capture`, with
the movement's ref so the frames join it, §6.3) and the movement waits up to retake_wait_ms.

Why: k >= 2 units of A from two frames cannot be told from A and a look-alike B of A's weight
(the missed frames may have shown B), so the shopper was asked (decide.SHORT_BURST_UNITS; on the
`hard` oracle floor the largest cause of prompts, docs/reconciliation.md §4.4). A person at the
cart would look again: the items are still in the basket, and a full burst settles it.

Once per movement: a retake that also comes back short, or not at all, is decided (and asked)
as before. The engine stays pure: the command is an effect (`fx["commands"]`) the gateway
publishes; time passes through `advance` as for every other wait.

The same holds for a pair or a swap held back because no delivered frame showed a product it
puts in (decide.UNSEEN_PART) when the burst was short (`retake_unseen_part`): the
product is in the basket now, so a second look shows it. A product taken out is not: a swap whose
out-side was unseen is asked at once."""
from __future__ import annotations

from .camera import Seen, skus_put_in
from .decide import SHORT_BURST_UNITS, UNSEEN_PART
from .state import MoveState, Retake


class RetakeMixin:
    def _retake(self, mv: dict, top: dict, holds: list[str], why: str | None, seen: Seen | None) -> bool:
        """Ask the camera to look at this movement again when more frames could lift what holds
        its best hypothesis back; True if asked (the decision waits)."""
        cfg = self.cfg
        if cfg.retake_frames <= 0 or mv.get("retake") is not None or mv["state"] != MoveState.WAITING:
            return False
        if not (SHORT_BURST_UNITS in holds or why == SHORT_BURST_UNITS or self._unseen_put_in(top, holds, seen)):
            return False
        if mv["unsettled_seq"] is None or mv.get("same_weight"):
            return False    # no scale window to name: the frames could not be joined to it
        if mv["vision"] is None:
            # no burst joined it at all: a correction's difference (its window belongs to a movement
            # decided before), or a camera that is not sending; a second look would show another action
            return False
        mv["retake"] = Retake.ASKED
        mv["deadline_ms"] = self.s["now_ms"] + cfg.retake_wait_ms
        self._fx["commands"].append({"board": "cam", "cmd": "capture", "args": {"frames": cfg.retake_frames},
                                     "ref": [mv["epoch"], mv["unsettled_seq"]], "move_id": mv["id"]})
        self._log("retake", "the burst missed frames: the camera was asked to look again", move=mv["id"],
                  evidence=["vision", "weight"],
                  extra={"frames": cfg.retake_frames, "wait_ms": cfg.retake_wait_ms})
        return True

    def _unseen_put_in(self, top: dict, holds: list[str], seen: Seen | None) -> bool:
        """A pair or swap held back by a product it puts in that a short burst did not show."""
        if not self.cfg.retake_unseen_part or UNSEEN_PART not in holds:
            return False
        if seen is None or seen.frames >= self.cfg.multi_unit_min_frames:
            return False    # a full burst did not show it: the detector's doubt, not a missed frame
        return any(seen.scores.get(s, 0.0) < self.cfg.pair_seen_min_score for s in skus_put_in(top))

    @staticmethod
    def _retake_pending(mv: dict) -> bool:
        """Asked, and its frames have not come yet."""
        return mv.get("retake") == Retake.ASKED

    @staticmethod
    def _retake_seen(mv: dict) -> None:
        """Vision joined the movement: if a retake was asked, this is (or includes) its frames."""
        if mv.get("retake") == Retake.ASKED:
            mv["retake"] = Retake.SEEN
