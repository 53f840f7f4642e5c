"""The policy: accept, ask the shopper, or send to a human; prompts, reviews and the decision log.

A movement is decided once its evidence is in (or its window passed) and the action is not
still settling. The scorer's posterior decides single products; what the camera saw decides
produce, pairs, swaps and personal items (camera.py), and vetoes a pair or a swap with an
unseen product. (docs/reconciliation.md §4.)
"""
from __future__ import annotations

from collections import Counter

from .. import protocol as P
from .camera import (explain, hidden_pair, left_out, personal_instead, seen_of, skus_in, units_seen_whole,
                     unseen_part)
from .inputs import VisionSummary
from .multi import family_smoothed, score_multi, skus_of
from .scoring import Scored
from .state import BASKET_CHANGES, MoveState, PromptKind


PROMPT_TEXT = {PromptKind.PICK: "Which item did you just put in the cart?",
               PromptKind.SCAN: "Please scan the barcode of the item you just put in the cart.",
               PromptKind.PERSONAL: "Is this a personal item (bag, phone...)?",
               PromptKind.REMOVAL: "Which item did you just take out of the cart?"}

UNITS_TEXT = "Which of these did you just put in? Not shown: scan the other item."
# a hold on h1 (the log's cause) that the units prompt answers
CAMERA_UNSURE = "a product the camera only glimpsed fits the weight"
SHORT_BURST_UNITS = "k units from a short burst, a look-alike weighs the same"
UNSEEN_PART = "a product of the pair or swap not seen"
POSTERIOR_HOLDS = ("posterior below threshold", "margin below threshold")


def option_names(h: dict) -> list[str]:
    """The products one picture of a prompt shows for hypothesis `h` (one entry per unit of a
    multi-product picture; a single product's picture shows no count)."""
    one_for_one = h["kind"] == "swap_multi" and len(h["in"]) == len(h["out"]) == 1
    return (skus_of(h) if h["kind"] in ("add2", "remove2", "add_multi", "remove_multi")
            else [h["sku"], h["remove_sku"]] if h["kind"] == "swap"
            else [*h["in"], *h["out"]] if one_for_one
            else [h["sku"]] if h["sku"] else [])


def option_readings(hyps: list[dict]) -> list[tuple[dict, list[str]]]:
    """(hypothesis, its picture's products) per picture a prompt shows, in order, one per set of products."""
    out, shown = [], set()
    for h in hyps:
        names = option_names(h)
        key = tuple(sorted(names))
        if names and key not in shown:
            shown.add(key)
            out.append((h, names))
    return out


def _put_in(h: dict) -> set[str]:
    """The products a camera explanation puts in the basket (not the ones it takes out)."""
    if "in" in h or "out" in h:
        return set(h.get("in", {}))
    return {h["sku"]} if h.get("sku") and h["kind"] == "add" else set()


def slip_posterior(p: float, error_rate: float, pictures: int, taps: int = 1) -> float:
    """How likely a tap on a picture the evidence gives `p` is what the shopper meant, when a tap
    lands on another of `pictures` with probability `error_rate` (docs/reconciliation.md §4.3)."""
    m = max(2, pictures)
    right, slip = (1 - error_rate) ** taps, (error_rate / (m - 1)) ** taps
    return p * right / (p * right + (1 - p) * slip) if p > 0 else 0.0


class DecideMixin:
    def _flush(self) -> None:
        s, now = self.s, self.s["now_ms"]
        waiting = sorted((m for m in s["moves"].values() if m["state"] == MoveState.WAITING),
                         key=lambda m: (m["mono_ms"], m["id"]))
        for mv in waiting:
            missing = mv["vision"] is None or (self.cfg.wait_for_still and mv["delta_g"] > 0
                                               and not mv["vision"].get("stills")) or self._retake_pending(mv)
            if missing and now < mv["deadline_ms"]:
                break  # later movements wait for this one: removals need the adds before them
            if self._held(mv):
                break  # the same action may settle again (merged, not decided twice)
            swapped_in = None
            if abs(mv["delta_g"]) < self.cfg.min_delta_g and not mv.get("same_weight") \
                    and self.cfg.tiny_change_swap_seen and mv["vision"]:
                v = VisionSummary.from_dict(mv["vision"])
                swapped_in = self._swapped_in(v)
                if swapped_in is not None and self._same_swap_again(v, swapped_in, mv):
                    continue
            if swapped_in is not None:
                # the scale barely moved but the camera saw a product the basket does not hold, and
                # one of its weight could have come out: a swap of one weight, not a lift and put back
                mv["same_weight"] = True
                self._log("same_weight_swap", "camera saw a product not in the basket; the weight barely changed",
                          move=mv["id"], evidence=["vision", "weight", "context"],
                          extra={"delta_g": mv["delta_g"]})
            if abs(mv["delta_g"]) < self.cfg.min_delta_g and not mv.get("same_weight"):
                mv["state"] = MoveState.DONE     # merged back to where it was: out and back in, or a push
                self._log("no_change", "merged settles cancel out: lifted and put back", move=mv["id"],
                          evidence=["weight", "vision"] if mv["vision"] else ["weight"],
                          extra={"delta_g": mv["delta_g"]})
                continue
            self._decide(mv)
        self._retire_decided()
        keep = []
        for d in s["visions"]:
            age = now - d["mono_ms"]
            if d.get("again"):      # seen again (evidence._same_swap_again): only for its own window's weight
                if age <= 2 * self.cfg.vision_max_wait_ms:
                    keep.append(d)
                continue
            open_ref = d["ref"] is not None and f"{d['ref'][0]}/{d['ref'][1]}" in s["unsettled"]
            if age > self.cfg.vision_max_wait_ms or (age > self.cfg.evidence_window_ms and not open_ref):
                v = VisionSummary.from_dict(d)
                ref = v.ref or [None, None]
                if self._same_weight_swap(v, ref[0], None, ref[1], 0.0, 0.0, 0.0, held=d):
                    if d.get("again"):
                        keep.append(d)
                    continue
                self._log("no_change", "vision without a weight change: item lifted and put back",
                          evidence=["vision"], extra={"frames": d["frame_ids"], "scores": d["scores"]})
            else:
                keep.append(d)
        s["visions"] = keep
        for mv in sorted((m for m in s["moves"].values() if m["state"] == MoveState.WAITING and m.get("same_weight")),
                         key=lambda m: (m["mono_ms"], m["id"])):
            self._decide(mv)     # opened just now from vision alone: nothing more to wait for
        self._retire_decided()
        # decided movements leave `done` once late vision for them, or an unclaimed burst that may be their
        # second look (evidence._same_swap_again, in the loop above), can no longer arrive
        done, wait = s["done"], self.cfg.vision_max_wait_ms + self.cfg.same_weight_swap_repeat_ms
        if done and (self._done_oldest is None or now - self._done_oldest > wait):   # (not every step)
            for mid in [k for k, m in done.items() if now - m["mono_ms"] > wait]:
                del done[mid]
            self._done_oldest = min((m["mono_ms"] for m in done.values()), default=None)

    def _score(self, mv: dict) -> Scored:
        vis = VisionSummary.from_dict(mv["vision"]) if mv["vision"] else None
        vis = family_smoothed(vis, self.cat, self.cfg.family_confusion)
        recent = [r["sku"] for r in self.s.get("recent_out", [])
                  if mv["mono_ms"] - r["mono_ms"] <= self.cfg.readd_window_ms]
        open_moves = {m["id"] for m in self.s["moves"].values()
                      if m["state"] in (MoveState.WAITING, MoveState.PROMPT, MoveState.ANSWERED)}
        # a movement asked about is scored again when its answer comes: reuse the decision's score
        # when nothing it reads has changed (scoring.MovementScores)
        return self._scores.get(mv["id"], open_moves, lambda: score_multi(
            mv["delta_g"], mv["noise_g"], self.cat, self.book, self.s["lines"], self.s["personal"], vis, self.cfg,
            recent_out=recent), mv["delta_g"], mv["noise_g"], self.s["lines"], self.s["personal"], vis, recent)

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
        cam, why, seen, fits = self._camera_explanation(mv, sc, weight_only)
        need = cfg.accept_weight_only_posterior if weight_only else cfg.accept_posterior
        personal = top["kind"] == "personal"
        holds: list[str] = []     # why h1 is not accepted on its posterior (the log's `cause`)
        if top["kind"] == "remove_part" and not cfg.accept_partial_produce:
            holds.append("part of a produce line out")   # the shopper confirms (a swap looks the same)
        if mv.get("same_weight"):
            holds.append("no weight change")   # only the camera saw it (often a look-alike of what was lifted)
        if cfg.camera_led and unseen_part(top, seen, cfg):
            holds.append(UNSEEN_PART)
        vis = VisionSummary.from_dict(mv["vision"]) if mv["vision"] else None
        if cfg.camera_led and hidden_pair(top, vis, self.cat, self.book, cfg):
            holds.append(SHORT_BURST_UNITS)   # the missed frame may show B
        if cam is not None and hidden_pair(cam, vis, self.cat, self.book, cfg):
            cam, why = None, SHORT_BURST_UNITS
        if cfg.camera_led and cam is None and left_out(top, seen, fits, cfg):
            holds.append("a seen product left out")   # the camera saw a product the best hypothesis ignores
        if cfg.camera_led and personal_instead(top, seen, cfg):
            holds.append("a personal item seen, not the product")
        if top["posterior"] < need:
            holds.append(POSTERIOR_HOLDS[0] + (" (weight only)" if weight_only else ""))
        if top["posterior"] - p2 < cfg.accept_margin:
            holds.append(POSTERIOR_HOLDS[1])
        if abs(top["z"]) > cfg.accept_max_z:
            holds.append("weight does not fit")
        if personal and not cfg.accept_personal:
            holds.append("personal item (accept_personal off)")
        whole_units = (cfg.camera_led and not weight_only and set(holds) <= set(POSTERIOR_HOLDS)
                       and units_seen_whole(top, vis, seen, self.s["lines"], self.cat, self.book, cfg)
                       and (top.get("k", 1) >= 2 or (bool(holds) and self._rivals_unseen(sc, top, seen, need))))
        if whole_units:
            holds = []      # k units of A, and only A, in every frame of a full burst
        scorer_ok = not holds
        # the camera explanation overrides an accept only when it accounts for a product the scorer's best leaves out
        if scorer_ok and (cam is None or not (skus_in(cam) - skus_in(top))):
            self._apply(mv, top)
            mv["state"] = MoveState.DONE
            self._log("accept", "the camera saw only this product, in every frame, and the units fit the weight"
                      if whole_units else "weight-only posterior above threshold" if weight_only
                      else "posterior above threshold", move=mv["id"], sc=sc, extra=extra)
            if top["posterior"] >= cfg.learn_min_posterior:
                self._learn(mv, top)
            return
        if cam is None and self._retake(mv, top, holds, why, seen):
            return      # the camera looks again (retake.py): decided when its frames come
        # why neither the scorer nor the camera accepted: the log's `cause` (cart-sim bench counts them)
        cause = "; ".join(holds) + (f" | camera: {why}" if why else "")
        if cam is not None:
            self._apply(mv, cam)
            mv["state"] = MoveState.DONE
            self._log("accept", why, move=mv["id"], sc=sc, evidence=["weight", "vision"],
                      extra={"hypothesis": cam, "camera_led": True})
            self._learn(mv, cam)
            return
        if abs(top["z"]) > cfg.accept_max_z and not personal:
            self._open_review(mv, sc, "weight change fits no item", cause=cause)
            return
        if cfg.ask_units_as_readings and self._asks_units(top, holds, seen):
            # k units of A, or A and an unseen look-alike B: one question with the readings as
            # pictures ("2 x A", "A + B") instead of "which item?" and then the same readings
            more = self._readings_cfg()
            readings = self._units_first(top["sku"], self._tap_reading(mv, top["sku"], None, more).readings)
            if readings and any(Counter(r["in"]) == Counter({top["sku"]: top["k"]}) for r in readings):
                mv["tap_followup"] = True     # the answer names the whole movement: not read as a tap
                mv["tapped"] = top["sku"]       # every picture is a reading of A
                self._open_prompt(mv, sc, "pick", readings, text=UNITS_TEXT, cause=cause)
                return
        if cfg.ask_seen_readings and self._ask_seen_readings(mv, sc, seen, cause):
            return
        top_k = hyps[: cfg.ask_top_k]
        cover = sum(h["posterior"] for h in top_k)
        if mv.get("same_weight"):
            # only the camera saw it: the shopper says whether anything was swapped
            self._open_prompt(mv, sc, "pick", [h for h in hyps if h["kind"] == "swap"][: cfg.ask_top_k] or top_k,
                              cause=cause)
            return
        if cover >= cfg.ask_cover or personal:
            kind = "personal" if personal else ("removal" if mv["delta_g"] < 0 else "pick")
            if kind == "pick" and cfg.scan_when_slips_pass and self._slips_would_pass(sc, top_k):
                # a tap on the wrong picture would pass the slip check (look-alikes the evidence
                # cannot separate): the barcode, which cannot slip, with the same pictures shown
                kind, cause = "scan", cause + " | a slip between these pictures would pass"
                mv["scan_for_slips"] = True     # "none of these" still asks for the barcode once (answers.py)
            self._open_prompt(mv, sc, kind, top_k, cause=cause)
            return
        if mv["delta_g"] > 0 and cfg.ask_scan and sc.best_fit_z <= cfg.accept_max_z:
            self._open_prompt(mv, sc, "scan", hyps[: max(cfg.ask_top_k, 5)], cause=cause)
            return
        if mv["delta_g"] <= 0 and cfg.ask_open_removal and abs(top["z"]) <= cfg.accept_max_z:
            # something in the basket fits but nothing stands out (often a swap): the shopper names
            # what they took out (and put in); an answer that does not fit goes to review
            self._open_prompt(mv, sc, "removal", hyps[: max(cfg.ask_top_k, 5)], cause=cause)
            return
        self._open_review(mv, sc, "evidence does not single out an item"
                          if sc.best_fit_z <= cfg.accept_max_z else "weight change fits no item", cause=cause)

    def _rivals_unseen(self, sc: Scored, top: dict, seen, need: float) -> bool:
        """One unit of A seen whole: A's posterior among the hypotheses the camera does not
        contradict reaches `need`. What keeps it lower is mostly swaps and pairs with a product no
        frame showed (unseen_part: never accepted either); a single product of A's weight (a
        look-alike the detector may have taken for A) still counts against it."""
        rivals = sum(h["posterior"] for h in sc.hyps[1:] if not unseen_part(h, seen, self.cfg))
        return top["posterior"] / (top["posterior"] + rivals) >= need

    def _slips_would_pass(self, sc: Scored, hyps: list[dict]) -> bool:
        """Every picture of a pick prompt for `hyps` shows one product, and a tap on any of them
        would pass answers.py's slip check: a slip between them would be charged."""
        e = self.cfg.answer_error_rate
        pics = option_readings(hyps)
        if e <= 0 or "vision" not in sc.evidence or len(pics) < 2 \
                or any(len(names) != 1 or self.cat.items[names[0]].sold_by_weight for _, names in pics):
            return False    # weight only: kept a pick (§4.3.1); loose produce has no barcode to scan
        passing = sum(slip_posterior(sum(h["posterior"] for h in sc.hyps if h["sku"] == names[0]), e, len(pics))
                      >= self.cfg.answer_min_posterior for _, names in pics)
        need = self.cfg.scan_when_slips_pass_pictures
        return passing >= (min(need, len(pics)) if need else len(pics))

    def _camera_explanation(self, mv: dict, sc: Scored, weight_only: bool):
        """(hypothesis or None, reason, what was seen): the one combination of what the camera saw
        that fits the weight (camera.py)."""
        cfg = self.cfg
        vis = VisionSummary.from_dict(mv["vision"]) if mv["vision"] else None
        seen = seen_of(vis, self.cat, cfg)
        if not cfg.camera_led or weight_only or "barcode" in sc.evidence \
                or (mv.get("same_weight") and not cfg.accept_same_weight_swap_seen):
            return None, "", seen, []
        h, why, fits = explain(mv["delta_g"], mv["noise_g"], seen, self.s["lines"], self.s["personal"], self.cat,
                               self.book, self.produce, cfg)
        if h is not None and mv.get("same_weight") and h["kind"] != "swap_multi":
            return None, "no weight change: only a swap both sides of which were seen is accepted", seen, fits
        if h is not None and any(seen.products.get(p, 0.0) < cfg.camera_led_sure_score
                                 and seen.top_score.get(p, 0.0) < cfg.camera_accept_score for p in _put_in(h)):
            return None, CAMERA_UNSURE, seen, fits
        return h, why, seen, fits

    def _open_prompt(self, mv: dict, sc: Scored, kind: str, hyps: list[dict], confirm: str = "",
                     text: str = "", cause: str = "") -> None:
        s = self.s
        s["n"]["prompt"] += 1
        pid = f"{self.cart}-p{s['n']['prompt']}"
        opts = []
        for h, names in option_readings(hyps):
            one_for_one = h["kind"] == "swap_multi" and len(h["in"]) == len(h["out"]) == 1
            if len(names) == 1:
                opts.append({"sku": names[0], "name": self.cat.items[names[0]].name})
            elif h["kind"] == "swap" or one_for_one:
                opts.append({"sku": names[0], "skus": list(names),
                             "name": f"{self.cat.items[names[0]].name} instead of {self.cat.items[names[1]].name}"})
            else:
                cnt = Counter(names)
                label = " + ".join((f"{q} x " if q > 1 else "") + self.cat.items[k].name for k, q in cnt.items())
                opts.append({"sku": names[0], "name": label, "skus": list(names)})
        if not text:     # else the caller's question (the follow-up of a tap, answers.py)
            text = PROMPT_TEXT[PromptKind(kind)]
        if confirm and text == PROMPT_TEXT[PromptKind(kind)]:    # the first tap looked like a slip: asked again, differently
            text = ("Please scan the barcode of the item you just put in, or tap its picture."
                    if kind == "scan" else "Please tap the picture of the item you just took out.")
        prompt = P.Prompt(v=1, prompt_id=pid, kind=kind, text=text, options=opts,
                          created_ms=s["now_ms"]).model_dump(exclude_none=True)
        s["prompts"][pid] = {"prompt": prompt, "move_id": mv["id"]}
        mv["state"], mv["prompt_id"] = MoveState.PROMPT, pid
        self._fx["prompts_opened"].append(prompt)
        self._fx["basket_changed"] = True   # a pending line appears
        self._log("ask", f"ask the shopper ({kind})" + (f": {confirm}, asked again" if confirm else ""),
                  move=mv["id"], sc=sc, extra={"prompt_id": pid, **({"cause": cause} if cause else {})})

    def _close_prompt(self, pid: str) -> None:
        self.s["prompts"].pop(pid, None)
        self._fx["prompts_closed"].append(pid)

    def _open_review(self, mv: dict, sc: Scored, reason: str, evidence: list[str] | None = None,
                     cause: str = "") -> None:
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
        mv["state"], mv["review_id"] = MoveState.REVIEW, rid
        self._fx["reviews_opened"].append(req)
        self._fx["basket_changed"] = True
        self._log("review", reason, move=mv["id"], sc=sc, evidence=evidence,
                  extra={"review_id": rid, **({"cause": cause} if cause else {})})

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
        mv = self.movement(move)
        if mv is not None:   # which weight event the decision is about (audit; the simulator's attribution)
            rec["movement"] = {"unsettled_seq": mv["unsettled_seq"], "start_ms": mv["start_ms"],
                               "settled_ms": mv["mono_ms"], "delta_g": round(mv["delta_g"], 1)}
        if mv is not None and (mv.get("vision") or {}).get("still_conflict"):
            rec["still_conflict"] = mv["vision"]["still_conflict"]   # the burst named another item than the still
        if mv is not None and outcome in BASKET_CHANGES:
            rec["effect"] = mv.get("effect", {})   # what the basket charged or credited for this movement
        # the log is not cart state: the gateway stores every record (its decisions table) from
        # the step's effects; the engine keeps the last log_limit in memory for decisions()
        self._log_mem.append(rec)
        if len(self._log_mem) > self.cfg.log_limit:
            del self._log_mem[: len(self._log_mem) - self.cfg.log_limit]
        self._fx["decisions"].append(rec)
