"""k >= 2 units of one product asked as readings: one prompt whose pictures are the ways the
weight reads with that product ("2 x A", "A + B", ...), instead of "which item?" and then, after
the tap on A, the same readings (issue 12 floor: two prompts for one question;
docs/reconciliation.md §4.4). Used by decide.py."""
from __future__ import annotations

from .answerfit import best_with_sku
from .camera import same_weight, skus_in
from .decide import POSTERIOR_HOLDS, SHORT_BURST_UNITS, UNITS_TEXT
from .scoring import Scored


class ReadingsMixin:
    def _readings_cfg(self):
        """The config a readings prompt is built with: room for units_readings pictures."""
        cfg = self.cfg
        return cfg.model_copy(update={"ask_top_k": max(cfg.ask_top_k, cfg.units_readings)})

    def _ask_seen_readings(self, mv: dict, sc: Scored, seen, cause: str) -> bool:
        """The camera saw one packaged product A, surely, as the clear best of every frame it
        delivered, and A is not in the basket yet; the weight says more went in than one unit of A
        (a frame that would show the other product was missed). Ask once with the readings of A
        ("A + B", "2 x A", ...), as the follow-up of a tap on A would, instead of "which item?" or a
        scan and then that follow-up (issue 12 floor: two prompts for one question). True: asked."""
        cfg = self.cfg
        if mv["delta_g"] <= 0 or seen is None or len(seen.products) != 1 or seen.personal >= cfg.personal_min_score:
            return False
        (a, score), = seen.products.items()
        if self.cat.items[a].sold_by_weight or score < cfg.camera_accept_score \
                or seen.top_frames.get(a, 0) < max(1, seen.frames):
            return False
        if any(ln["sku"] == a for ln in self.s["lines"]):
            return False    # the camera may be seeing the one in the basket: not proof that A went in
        sn = max(cfg.sensor_noise_g, float(mv["noise_g"]))
        for o, v in seen.scores.items():
            if o != a and v > 0 and o in self.cat.idx and not self.cat.items[o].sold_by_weight \
                    and same_weight(a, o, self.book, sn, cfg):
                return False    # the camera hesitated between A and a product of A's weight
        first = best_with_sku(sc, self.cat, a, removal=False, max_z=cfg.contradict_z)
        more = self._readings_cfg()
        tr = self._tap_reading(mv, a, first, more)
        if not tr.readings or not all(a in skus_in(r) and r["in"].get(a) for r in tr.readings):
            return False    # one unit of A fits, or the rest fits nothing: asked as before
        mv["tap_followup"], mv["tapped"] = True, a
        self._open_prompt(mv, sc, "pick", tr.readings[: more.ask_top_k], text=UNITS_TEXT,
                          cause=cause + " | asked as readings of " + a)
        return True

    def _asks_units(self, top: dict, holds: list[str], seen) -> bool:
        """k >= 2 units of one packaged product A are asked as readings ("k x A", "A + B", ...) in one
        prompt: held back only by a burst with a missed frame or, with units_readings_when_doubtful,
        by the posterior too, or by the posterior alone when the camera saw A and nothing else. A
        "which item?" with single pictures would be followed by the same readings after the tap on A
        (issue 12 floor: two prompts for one question)."""
        if holds == [SHORT_BURST_UNITS]:
            return True
        if not self.cfg.units_readings_when_doubtful or top["kind"] != "add" or top.get("k", 1) < 2 \
                or not top.get("sku") or self.cat.items[top["sku"]].sold_by_weight or not holds:
            return False
        rest = set(holds) - {SHORT_BURST_UNITS}
        if not rest <= set(POSTERIOR_HOLDS) or seen is None or not seen.products:
            return False
        # the readings are all "A and ...": only when the camera saw A, as its best product (real run:
        # readings of an A the camera had not seen sent the shopper's answers to a human, or charged A)
        best = max(seen.products, key=lambda k: (seen.products[k], k))
        if best != top["sku"]:
            return False
        if seen.products[best] < self.cfg.camera_accept_score or seen.top_frames.get(best, 0) < seen.frames:
            return False    # not sure of A (hard real run: readings of a look-alike A charged A)
        # a full burst: A alone, the clear best of every frame (as accept_units_seen_whole asks)
        return SHORT_BURST_UNITS in holds or (set(seen.products) == {best} and seen.whole(best, self.cfg))

    def _units_first(self, sku: str, readings: list[dict]) -> list[dict]:
        """The units prompt's pictures: k x A, then A with a look-alike of its family (what the camera
        could not rule out in the frames it saw), then the rest, each group by posterior."""
        fam = getattr(self.cat.items[sku], "family", None)

        def rank(r):
            others = set(r["in"]) - {sku}
            alike = any(getattr(self.cat.items[o], "family", None) == fam for o in others)
            return (0 if not others else 1 if alike else 2)
        return sorted(readings, key=rank)     # stable: the posterior order within a group
