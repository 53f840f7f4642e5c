"""The shopper's answers (§11) and the reviewer's verdicts (§13) applied to their movement.

An answer is applied through the best hypothesis involving what the shopper named whose weight
fits; a tap the evidence makes unlikely is asked again differently (scan, or the two pictures)
before a human; an answer that contradicts the weight, "none", or a personal claim against a
seen product goes to review. A verdict is applied as stated. (docs/reconciliation.md §4.)
"""
from __future__ import annotations

import math
from collections import Counter

from .camera import barcode_of_weight, product_seen_of_weight, seen_of, skus_in
from .decide import option_names, slip_posterior
from .inputs import Answer, Verdict, VisionSummary
from .multi import family_smoothed, fit_skus
from .scoring import Scored, best_with_sku
from .state import SEEN_KEEP, MoveState
from .taps import TapReading, TapVerdict, read_tap

# the second question after a tap the weight says is only part of the story (taps.py)
FOLLOWUP_TEXT = {"pick": "You chose {name}. The weight says there is more: which of these did you put in? Not shown: scan the other item.",
                 "removal": "You chose {name}. The weight says something else changed too: which of these did you do?"}


# "none of these" to a first prompt: asked to scan the pack instead (scan_after_none)
NONE_ANSWER = "none"
SCAN_AFTER_NONE_TEXT = {False: "Please scan the barcode of the item you just put in.",
                        True: "Please scan the barcode of the item you just put in, if you put one in."}
# "none of these" to a follow-up (every picture showed A with something): the other product's barcode
SCAN_OTHER_TEXT = "Please scan the barcode of the item you put in with {name}."


class AnswersMixin:
    def _on_answer(self, a: Answer) -> None:
        s = self.s
        if a.answer_id in s["answers_seen"]:
            self._log("ignored", "duplicate answer_id", extra={"answer_id": a.answer_id})
            return
        if a.prompt_id not in s["prompts"]:
            self._log("ignored", "answer to a closed or unknown prompt",
                      extra={"answer_id": a.answer_id, "prompt_id": a.prompt_id})
            return
        s["answers_seen"] = (s["answers_seen"] + [a.answer_id])[-SEEN_KEEP:]
        mv = self._open_move(s["prompts"][a.prompt_id]["move_id"])
        asked_kind = s["prompts"][a.prompt_id]["prompt"]["kind"]
        self._prompt_options = {a.prompt_id: s["prompts"][a.prompt_id]["prompt"]["options"]}
        self._close_prompt(a.prompt_id)
        mv["state"], mv["prompt_id"] = MoveState.ANSWERED, None
        self._fx["basket_changed"] = True
        sc = self._score(mv)
        ev = ["answer", "weight"]
        info = {"answer_id": a.answer_id, "prompt_id": a.prompt_id}
        if a.none and mv.get("same_weight"):
            mv["state"] = MoveState.DONE     # the weight did not change and the shopper swapped nothing
            self._log("answer", "shopper: nothing was swapped (no weight change)", move=mv["id"], evidence=ev,
                      extra=info)
            return
        if a.none:
            if self.cfg.scan_after_none and (asked_kind != "scan" or mv.get("scan_for_slips")) \
                    and not mv.get("reasked") \
                    and not mv.get("tap_followup"):
                # their product was not among the pictures (often nothing useful in view): the pack's
                # barcode says what it was; a human only if they cannot say either
                mv["reasked"] = NONE_ANSWER
                self._open_prompt(mv, sc, "scan", [], text=SCAN_AFTER_NONE_TEXT[mv["delta_g"] < 0],
                                  confirm="shopper chose none of the options")
                return
            tapped = self._tapped(a.prompt_id, mv)
            if self.cfg.scan_after_followup_none and mv.get("tap_followup") and tapped is not None \
                    and mv["delta_g"] > 0 and not mv.get("reasked"):
                # a follow-up showed A with other products, none of them theirs: the other product's
                # barcode says what it was (read with A, below); a human only if they cannot say
                mv["reasked"] = NONE_ANSWER
                shown = {"kind": "add", "sku": tapped, "k": 1}     # A's picture: "you chose A"
                self._open_prompt(mv, sc, "scan", [shown],
                                  text=SCAN_OTHER_TEXT.format(name=self.cat.items[tapped].name),
                                  confirm="shopper chose none of the readings")
                return
            self._open_review(mv, sc, "shopper chose none of the options", ev)
            return
        if a.personal:
            if mv["delta_g"] > 0:
                why, detail = self._product_evidence(mv, sc)
                if why:
                    self._open_review(mv, sc, f"shopper says personal item but {why}", ev, cause=detail)
                    return
                h = {"kind": "personal", "sku": None, "k": 1, "target": None, "posterior": 1.0, "z": 0.0}
            else:
                cands = [h for h in sc.hyps if h["kind"] == "personal_remove" and abs(h["z"]) <= self.cfg.contradict_z]
                if not cands:
                    self._open_review(mv, sc, "no personal item of this weight in the cart", ev)
                    return
                h = cands[0]
            self._apply(mv, h)
            mv["state"] = MoveState.DONE
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
        if self._with_the_tap(mv, sc, sku, a.prompt_id, ev, info):
            return
        h = best_with_sku(sc, self.cat, sku, removal=mv["delta_g"] < 0, max_z=self.cfg.contradict_z)
        if mv["delta_g"] < 0 and self.cat.items[sku].sold_by_weight:
            h = self._produce_out(sku, mv["delta_g"]) or h
        if self._tap_read(mv, sc, sku, h, ev, info):
            return
        if h is None or abs(h["z"]) > self.cfg.contradict_z:
            self._open_review(mv, sc, f"shopper's choice {sku} does not fit the weight change"
                              f" (z={h['z'] if h else 'n/a'})", ev)
            return
        taps = 2 if mv.get("reasked") == sku else 1     # the same answer twice: a slip twice is e^2
        if a.barcode is None and self._doubtful(sc, sku, a.prompt_id, taps):
            if self.cfg.reask_on_slip and not mv.get("reasked"):
                # ask again, differently: scan (or the two pictures) instead of the same list; a human
                # only if the shopper and the evidence still disagree
                mv["reasked"] = sku
                alt = [x for x in sc.hyps if sku not in skus_in(x) and abs(x["z"]) <= self.cfg.contradict_z][:1]
                self._open_prompt(mv, sc, "scan" if mv["delta_g"] > 0 else "removal", alt + [h],
                                  confirm=f"shopper's choice {sku} is unlikely given the camera and the weight")
                return
            self._open_review(mv, sc, f"shopper's choice {sku} is unlikely given the camera and the weight", ev)
            return
        self._apply(mv, h)
        mv["state"] = MoveState.DONE
        self._learn(mv, h)
        self._log("answer", "shopper's choice fits the weight", move=mv["id"], evidence=ev,
                  extra=dict(info, hypothesis=h))

    def _product_evidence(self, mv: dict, sc: Scored) -> tuple[str, str]:
        """Why a personal claim on this addition goes to a human, and the figures behind it (the
        review's reason and the log's cause; "" if it does not): too heavy for
        a personal item, a read barcode of a product of its weight, the camera itself sure of a
        product of its weight, or (personal_claim_posterior < 1) a product's posterior that high.
        A hand or "no product" in view is no evidence either way: the claim is the shopper's word,
        checked against what was seen (docs/reconciliation.md §4.5)."""
        cfg, d = self.cfg, mv["delta_g"]
        if d > cfg.personal_claim_max_g:
            return "it weighs more than a personal item", f"{d:.0f} g > personal_claim_max_g {cfg.personal_claim_max_g:.0f} g"
        vis = VisionSummary.from_dict(mv["vision"]) if mv["vision"] else None
        code = barcode_of_weight(d, vis, sc.hyps, self.cat, cfg)
        if code is not None:
            return "the barcode of a product of this weight was read", code
        mass, skus = product_seen_of_weight(d, mv["noise_g"], vis, self.cat, self.book, self.produce, cfg)
        if skus and mass >= cfg.personal_claim_seen_score:
            return ("the camera saw a product of this weight",
                    f"{', '.join(skus[:3])}: {mass:.2f} >= personal_claim_seen_score {cfg.personal_claim_seen_score}")
        if cfg.personal_claim_posterior < 1 and ("vision" in sc.evidence or "barcode" in sc.evidence):
            for h in sc.hyps:
                if h["kind"] != "personal" and abs(h["z"]) <= cfg.accept_max_z \
                        and h["posterior"] >= cfg.personal_claim_posterior:
                    return "the evidence says product", f"{h['sku']}: posterior {h['posterior']:.3f}"
        return "", ""

    def _tap_read(self, mv: dict, sc: Scored, sku: str, h: dict | None, ev: list, info: dict) -> bool:
        """A tap on one picture when the weight says more than one unit of it (taps.py): the rest
        accepted when clear, else asked once more as pictures. False: read as before."""
        tr = self._tap_reading(mv, sku, h)
        if tr.verdict is TapVerdict.ACCEPT:
            self._apply(mv, tr.hypothesis)
            mv["state"] = MoveState.DONE
            self._log("answer", f"shopper's tap on {sku} plus the rest of the weight, which is clear", move=mv["id"],
                      evidence=ev + ["vision"], extra=dict(info, hypothesis=tr.hypothesis))
            return True
        if tr.verdict is TapVerdict.ASK:
            mv["tap_followup"] = True
            mv["tapped"] = sku
            self._open_prompt(mv, sc, "removal" if mv["delta_g"] < 0 else "pick", tr.readings,
                              text=FOLLOWUP_TEXT["removal" if mv["delta_g"] < 0 else "pick"].format(
                                  name=self.cat.items[sku].name),
                              confirm=f"the weight says {sku} is not all that changed: {tr.why}")
            return True
        return False

    def _tapped(self, prompt_id: str, mv: dict) -> str | None:
        """The product a follow-up's pictures are readings of (the tapped A of "2 x A", "A + B"): as
        recorded when it was asked, else the one product every picture shows (a follow-up with one
        picture, "A + C", shows two: the floor read a scan of B after it as "3 x B" instead of "A + B")."""
        if mv.get("tapped"):
            return mv["tapped"]
        opts = self._prompt_options.get(prompt_id) or []
        common = None
        for o in opts:
            units = set(o.get("skus") or [o["sku"]])
            common = units if common is None else common & units
        return next(iter(common)) if common and len(common) == 1 else None

    def _with_the_tap(self, mv: dict, sc: Scored, sku: str, prompt_id: str, ev: list, info: dict) -> bool:
        """A follow-up's answer naming a product B that is not the tapped A: B is the rest of the
        movement (the screen did not show "A + B"), read as A and B in when that fits the weight."""
        tapped = self._tapped(prompt_id, mv)
        if not (self.cfg.followup_names_the_rest and mv.get("tap_followup") and mv["delta_g"] > 0
                and tapped is not None and sku != tapped):
            return False
        fits = [h for k in range(1, self.cfg.max_units + 1)      # k units of A (the weight says how many)
                for h in fit_skus([tapped] * k + [sku], mv["delta_g"], mv["noise_g"], self.cat, self.book,
                                  self.s["lines"], self.cfg, produce_z=self.produce.z)
                if not h["out"] and abs(h["z"]) <= self.cfg.contradict_z]
        if not fits:
            return False      # read as before (a product that does not fit goes to review there)
        fits.sort(key=lambda h: abs(h["z"]))
        self._apply(mv, fits[0])
        mv["state"] = MoveState.DONE
        self._learn(mv, fits[0])
        self._log("answer", f"shopper named {sku} besides {tapped} on the follow-up: both went in", move=mv["id"],
                  evidence=ev, extra=dict(info, hypothesis=fits[0]))
        return True

    def _tap_reading(self, mv: dict, sku: str, h: dict | None, cfg=None) -> TapReading:
        """What a tap on `sku` can mean for this movement (taps.read_tap, with its burst)."""
        cfg = cfg or self.cfg
        vis = VisionSummary.from_dict(mv["vision"]) if mv["vision"] else None
        recent = [r["sku"] for r in self.s.get("recent_out", [])
                  if mv["mono_ms"] - r["mono_ms"] <= cfg.readd_window_ms]
        return read_tap(sku, mv, seen_of(vis, self.cat, cfg), family_smoothed(vis, self.cat, cfg.family_confusion),
                        self.cat, self.book, self.s["lines"], self.s["personal"], cfg, self.produce, h,
                        recent_out=recent, put_in=mv.get("reasked") == NONE_ANSWER)

    def _doubtful(self, sc: Scored, sku: str, prompt_id: str, taps: int = 1) -> bool:
        """A tap can be a slip: combine the answer (right with 1 - answer_error_rate) with the
        evidence; a choice the evidence makes unlikely goes to a human instead of the receipt."""
        e = self.cfg.answer_error_rate
        if e <= 0 or not sc.hyps or "vision" not in sc.evidence:
            return False    # weight alone: the priors, not evidence, rank the options
        opts = self._prompt_options.get(prompt_id, ())
        if not any(o["sku"] == sku and not o.get("skus") for o in opts):
            return False    # not on the screen: chosen on purpose (search, label), not a slip
        p = sum(h["posterior"] for h in sc.hyps if h["sku"] == sku)
        return slip_posterior(p, e, len(opts), taps) < self.cfg.answer_min_posterior

    def _doubtful_skus(self, mv: dict, sc: Scored, skus: list[str], prompt_id: str, taps: int = 1) -> bool:
        """_doubtful for a tap on a picture of several products: its posterior is that of the
        hypotheses showing exactly these products. A follow-up's pictures are readings of the rest
        of the weight (taps.py), not the scorer's: not checked here."""
        e = self.cfg.answer_error_rate
        if e <= 0 or not sc.hyps or "vision" not in sc.evidence or mv.get("tap_followup"):
            return False
        want = Counter(skus)
        opts = self._prompt_options.get(prompt_id, ())
        if not any(Counter(o.get("skus") or ()) == want for o in opts):
            return False    # not a picture on the screen: named on purpose
        p = sum(h["posterior"] for h in sc.hyps if Counter(option_names(h)) == want)
        return slip_posterior(p, e, len(opts), taps) < self.cfg.answer_min_posterior

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
                            self.cfg, produce_z=self.produce.z)
            h = fits[0] if fits else None
        if h is None or abs(h["z"]) > self.cfg.contradict_z:
            self._open_review(mv, sc, f"shopper's choice {list(a.skus)} does not fit the weight change"
                              f" (z={h['z'] if h else 'n/a'})", ev)
            return
        if self.cfg.slip_check_multi and len(a.skus) > 1 and self._slip_asked_again(mv, sc, list(a.skus), a, ev):
            return
        self._apply(mv, h)
        mv["state"] = MoveState.DONE
        self._learn(mv, h)
        self._log("answer", "shopper's choice fits the weight", move=mv["id"], evidence=ev,
                  extra=dict(info, hypothesis=h))

    def _slip_asked_again(self, mv: dict, sc: Scored, skus: list[str], a, ev: list) -> bool:
        """A tap on a picture of several products that the evidence makes unlikely: asked again
        (that picture and the evidence's best other one; a scan for what went in), then a human.
        False: the tap stands."""
        tag = "+".join(sorted(skus))
        taps = 2 if mv.get("reasked") == tag else 1      # the same picture twice: a slip twice is e^2
        if not self._doubtful_skus(mv, sc, skus, a.prompt_id, taps):
            return False
        why = f"shopper's choice {skus} is unlikely given the camera and the weight"
        if not self.cfg.reask_on_slip or mv.get("reasked"):
            self._open_review(mv, sc, why, ev)
            return True
        mv["reasked"] = tag
        want = Counter(skus)
        mine = [x for x in sc.hyps if Counter(option_names(x)) == want][:1]
        alt = [x for x in sc.hyps if Counter(option_names(x)) != want and abs(x["z"]) <= self.cfg.contradict_z][:1]
        self._open_prompt(mv, sc, "scan" if mv["delta_g"] > 0 else "removal", alt + mine, confirm=why)
        return True

    def _on_verdict(self, v: Verdict) -> None:
        s = self.s
        if v.verdict_id in s["verdicts_seen"]:
            self._log("ignored", "duplicate verdict_id", extra={"verdict_id": v.verdict_id})
            return
        if v.review_id not in s["reviews"]:
            self._log("ignored", "verdict for a closed or unknown review",
                      extra={"verdict_id": v.verdict_id, "review_id": v.review_id})
            return
        s["verdicts_seen"] = (s["verdicts_seen"] + [v.verdict_id])[-SEEN_KEEP:]
        mv = self._open_move(s["reviews"].pop(v.review_id)["move_id"])
        self._fx["reviews_closed"].append(v.review_id)
        self._fx["basket_changed"] = True
        mv["state"], mv["review_id"] = MoveState.DONE, None
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
