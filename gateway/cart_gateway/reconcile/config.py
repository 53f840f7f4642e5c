"""Thresholds and model constants of the reconciliation engine (docs/reconciliation.md)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ReconcileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- weight model
    max_units: int = Field(4, ge=1, le=12, description="K: most units of one SKU in one movement")
    unit_prior: list[float] = Field([1.0, 0.12, 0.04, 0.015],
                                    description="relative prior of k=1..K units; last value repeats")
    sensor_noise_g: float = Field(1.5, gt=0, description="sd of a settled delta from the load cell")
    min_sd_g: float = Field(1.0, gt=0, description="floor on any weight sd")
    weight_lik_floor: float = Field(1e-12, ge=0, description="floor on a weight likelihood (per g)")
    min_delta_g: float = Field(6.0, gt=0, description="smaller settled deltas change nothing")
    # --- context priors (relative)
    prior_swap: float = Field(0.03, ge=0, description="remove A + add B in one movement")
    prior_personal: float = Field(0.02, ge=0, description="a personal (non-product) item added")
    prior_produce: float = Field(0.1, gt=0, description="one loose-produce SKU relative to one packaged SKU")
    produce_max_g: float = Field(5000.0, gt=0, description="sold-by-weight items: uniform weight range")
    personal_max_g: float = Field(3000.0, gt=0, description="personal item weight range (uniform)")
    prior_two: float = Field(0.1, ge=0, description=(
        "two different products in one movement (k of A + one B in, or one each of two lines out), "
        "relative to one product"))
    pair_vision_top: int = Field(6, ge=1, le=32, description=(
        "pairs are proposed with A among this many SKUs the camera scored highest (bounds the work)"))
    swap_vision_top: int = Field(8, ge=0, le=64, description=(
        "a swap's added product is one of this many SKUs the camera scored highest (or a barcode read, "
        "or a recent removal); other swaps count at the weight floor (bounds the work)"))
    swap_weight_fallback: bool = Field(True, description=(
        "when the camera named no product that could be a swap's added side (nor a barcode, nor a "
        "recent removal), the swap candidates also hold, per packaged basket line, the "
        "swap_fit_top SKUs whose weight fits a swap from it best (docs/reconciliation.md §2)"))
    swap_fit_top: int = Field(16, ge=1, le=256, description=(
        "the weight fallback's SKUs per basket line: the best |z| fits (bounds the work: at 30,000 "
        "SKUs ~1,900 fit a line within the floor's bound); the other pairs count at the weight floor"))
    prior_partial_produce: float = Field(0.2, ge=0, description=(
        "part of a loose-produce line taken out, relative to a whole line"))
    same_weight_swap_min_score: float = Field(0.25, ge=0, le=1, description=(
        "a product the camera scores this high, not in the basket, with no weight change, opens a "
        "movement (a swap for a product of the same weight); 0 turns it off"))
    same_weight_swap_repeat_ms: int = Field(3000, ge=0, description=(
        "a burst within this long of a movement's start that names one of its products (scored by its burst, "
        "or put in or taken out by its decision) is that action seen again (a second unsettled window of one "
        "hand), not a same-weight swap; 0 turns it off (docs/reconciliation.md §4.4.6)"))
    same_weight_burst_to_weight: bool = Field(True, description=(
        "a weight event for an unsettled window whose burst opened a same-weight swap (the scale settled "
        "after the burst aged out) takes that burst; the swap, if it is still open, is withdrawn "
        "(docs/reconciliation.md §4.4.6)"))
    accept_same_weight_swap_seen: bool = Field(True, description=(
        "a swap with no weight change is accepted when the camera saw both products (the one out on a basket "
        "line), each the best of a frame, not look-alikes of one family, and their weights fit (§4.1); off: "
        "the shopper always confirms"))
    prior_readd: float = Field(0.3, ge=0, description=(
        "an item taken out within readd_window_ms is put back (reading a label), relative to one "
        "packaged SKU's prior times the catalogue size; 0 turns it off"))
    readd_window_ms: int = Field(60000, ge=0, description="how long a removal counts as 'just taken out'")
    accept_partial_produce: bool = Field(False, description=(
        "auto-accept taking part of a produce line out; off: the shopper confirms, since a produce bag out "
        "and a product in looks the same to the scale"))
    partial_min_left_g: float = Field(20.0, ge=0, description=(
        "a produce removal leaving less than this on the line takes the whole line"))
    # --- vision / barcode
    vision_floor: float = Field(0.01, ge=0, le=1, description="mixing weight of a uniform floor")
    vision_power: float = Field(1.0, ge=1, le=4, description=(
        "the burst's mean scores are raised to this power (their sum kept) before they weigh the "
        "hypotheses: averaging frames that agree is underconfident (docs/reconciliation.md §2)"))
    family_confusion: float = Field(0.0, ge=0, le=1, description=(
        "share of the detector's doubt (1 - score) that goes to the look-alike family of its best SKU "
        "(51 % of the committed model's wrong answers named another SKU of the same family, "
        "docs/model_card.md). Off by default: on `hard` 0.51 raised prompts (78.6 -> 91.9 per 100 items) "
        "and, through shoppers' slips on them, wrong baskets (287 -> 340 per 1000), docs/reconciliation.md"))
    barcode_other: float = Field(1e-4, gt=0, le=1, description="likelihood of a read for another SKU")
    # --- camera-led decisions (camera.py; measured effect in docs/reconciliation.md §4.1)
    camera_led: bool = Field(True, description=(
        "accept what the camera saw when exactly one combination of it fits the weight (produce, pairs, "
        "swaps, personal items) and veto pairs/swaps with an unseen product"))
    seen_min_score: float = Field(0.25, ge=0, le=1, description="a product the burst scores this high (mean) was seen")
    camera_led_sure_score: float = Field(0.5, ge=0, le=1, description=(
        "a camera-led explanation is accepted only when each product it puts in has this mean over the "
        "burst or was a frame's clear best at camera_accept_score: a product the camera only glimpsed "
        "(mean 0.25-0.5) that fits the weight is often a weight-alike of the one put in "
        "(docs/reconciliation.md §4.1); 0: any seen product"))
    seen_max_products: int = Field(4, ge=1, le=8, description="at most this many seen products are combined")
    pair_seen_min_score: float = Field(0.2, ge=0, le=1, description=(
        "a pair or a swap is accepted only if each of its products scored this high"))
    unexplained_seen_score: float = Field(0.3, ge=0, le=1, description=(
        "a product the camera saw this surely (mean over the burst) that the best hypothesis leaves out "
        "blocks its accept: the shopper says (1 turns it off)"))
    multi_unit_min_frames: int = Field(3, ge=0, description=(
        "k >= 2 units of one product are accepted from fewer frames only if no other product weighs the same "
        "(a missed frame may have shown a look-alike second product)"))
    retake_frames: int = Field(4, ge=0, le=8, description=(
        "a movement held back only by a burst that missed frames (multi_unit_min_frames) first asks the "
        "camera for this many more (§9 capture with the movement's ref), once; 0 asks the shopper at once "
        "(retake.py, docs/reconciliation.md §4.4)"))
    retake_unseen_part: bool = Field(True, description=(
        "a pair or swap held back because a short burst showed no frame of a product it puts in "
        "is looked at again too (retake.py)"))
    retake_wait_ms: int = Field(1500, ge=0, description=(
        "a retake's frames are waited for this long after the command, then the movement is decided "
        "with what there is"))
    ask_units_as_readings: bool = Field(True, description=(
        "k >= 2 units held back by multi_unit_min_frames are asked once with the readings as pictures "
        "('2 x A', 'A + B'), not 'which item?' and then the readings (docs/reconciliation.md §4.4)"))
    units_readings: int = Field(5, ge=1, le=8, description=(
        "ask_units_as_readings: at most this many pictures (k x A first, then A with a family look-alike of "
        "its weight, then other products of its weight): the unseen second product must be on the screen"))
    accept_units_seen_whole: bool = Field(True, description=(
        "k >= 2 units of a product the camera saw alone, surely (camera_accept_score), as the best of every "
        "frame of a full burst, fitting within camera_fit_z, no family look-alike of its weight scored above "
        "units_look_alike_max_score, none in the basket yet: accepted although single unseen products of that weight keep the posterior below "
        "accept_posterior (docs/reconciliation.md §4.4)"))
    units_seen_whole_with_line: bool = Field(True, description=(
        "k >= 2 units seen whole (accept_units_seen_whole) are accepted with a line of A in the basket too: a "
        "full burst showing only A leaves no frame for another product (docs/reconciliation.md §4.4.5)"))
    units_look_alike_max_score: float = Field(0.05, ge=0, le=1, description=(
        "accept_units_seen_whole: a family look-alike of the same weight the burst scored above this may be "
        "one of the units"))
    camera_fit_z: float = Field(3.0, gt=0, description="a camera-led explanation must fit the weight within this")
    camera_margin_z: float = Field(1.0, ge=0, description=(
        "two explanations of what was seen that both fit: the better must fit by this much more"))
    camera_accept_score: float = Field(0.9, ge=0, le=1, description=(
        "the camera's summed score on the products of the explanation must reach this"))
    produce_max_z: float = Field(2.5, gt=0, description="a produce bag is plausible within this (log-weight sd)")
    produce_prior_items: float = Field(2.0, gt=0, description=(
        "prior median of a produce bag, in typical items (catalogue weight_mean_g)"))
    produce_prior_log_sd: float = Field(0.8, gt=0, description="prior sd of a produce bag's log weight")
    personal_min_score: float = Field(0.5, ge=0, le=1, description=(
        "the camera recognised a personal item (bag, phone, wallet, keys, toy) this surely; 'no product' never counts"))
    personal_match_rel: float = Field(0.02, ge=0, description=(
        "a personal item out matches one put in within this share of its weight (plus the sensor noise)"))
    exchange_seen_whole: bool = Field(True, description=(
        "one unit of A out and another A in: the camera saw only A, the clear best of every frame of a full "
        "burst, A is in the basket and the weight change fits 0 within camera_fit_z; nothing changes "
        "(docs/reconciliation.md §4.4.5)"))
    personal_seen_holds: bool = Field(True, description=(
        "a product the scorer would accept is held back when the camera recognised a personal item and not that "
        "product (the camera's explanation decides, or the shopper is asked; docs/reconciliation.md §4.4.5)"))
    personal_out_best_fit: bool = Field(True, description=(
        "a personal item seen going out that the weight fits to several in the basket is taken as the closest "
        "(the receipt is the same); off asks which (docs/reconciliation.md §4.4.5)"))
    # --- timing (event time)
    evidence_window_ms: int = Field(1500, ge=0, description="wait this long for vision after a weight event")
    vision_max_wait_ms: int = Field(10000, ge=0, description="drop unmatched vision after this")
    merge_gap_ms: int = Field(3000, ge=0, description=(
        "a settle whose window opens this soon after an undecided movement settled is part of the same "
        "action and merged into it; 0 decides every settle on its own (docs/reconciliation.md §1)"))
    merge_hold_ms: int = Field(1000, ge=0, description=(
        "a movement is decided no sooner than this after it settled, so a second settle can join it"))
    wait_for_still: bool = Field(False, description=(
        "cameras take a still after each placement (docs/camera.md): a movement waits for its still "
        "(within evidence_window_ms) as well as its burst"))
    unsettled_expire_ms: int = Field(10000, ge=0, description=(
        "close an `unsettled` window with no `weight` event after this: the scale sends no event "
        "when a push, knock or hand leaves the load where it was (docs/scale.md)"))
    # --- provisional weight events and a hand's +x/-x pair (provisional.py, docs/reconciliation.md §1.1)
    prov_wait_ms: int = Field(2500, ge=0, description=(
        "a movement whose provisional weight event (protocol §6.1 `prov`) has no final yet waits this long "
        "(the scale sends the final about prov_ms = 1 s later, or when the change the other way settles)"))
    hand_pair_ms: int = Field(12000, ge=0, description=(
        "a removal this soon after an undecided addition of the same size, nothing seen in either, cancels "
        "both (a hand pressed and lifted); 0 turns it off"))
    hand_pair_abs_g: float = Field(4.0, ge=0, description="same size: within this many grams ...")
    hand_pair_rel: float = Field(0.05, ge=0, description="... or this share of the addition, or 3 x the noise")
    # --- decision thresholds
    accept_posterior: float = Field(0.97, gt=0, le=1)
    accept_margin: float = Field(0.9, ge=0, le=1, description="top minus runner-up")
    accept_weight_only_posterior: float = Field(0.995, gt=0, le=1,
                                                description="accept without vision only above this")
    accept_max_z: float = Field(4.0, gt=0, description="accept only if the weight fits within z sd")
    ask_top_k: int = Field(3, ge=1, le=8)
    ask_cover: float = Field(0.9, gt=0, le=1, description="ask if the top-k hypotheses cover this")
    ask_scan: bool = Field(True, description="ask for a barcode scan when the weight fits but identity is open")
    ask_open_removal: bool = Field(True, description=(
        "a removal (or swap) that fits the weight but singles out nothing is asked, not reviewed"))
    accept_personal: bool = Field(False, description="never auto-accept a personal item: ask")
    answer_error_rate: float = Field(0.02, ge=0, lt=1, description=(
        "assumed rate of taps on a wrong option (touch-screen slips); 0 trusts every answer"))
    answer_min_posterior: float = Field(0.9, ge=0, le=1, description=(
        "an answer whose posterior (evidence x answer reliability) is below this goes to review "
        "(0.97 was tried on `hard`: it reviewed far more right answers than it caught slips)"))
    reask_on_slip: bool = Field(True, description=(
        "an answer below answer_min_posterior is asked again differently (scan, or two pictures) before a "
        "human; the same answer twice is scored as two taps"))
    scan_after_none: bool = Field(True, description=(
        "'none of these' to a first prompt asks the shopper to scan the pack (a barcode answer) before a human; "
        "'none' again, or to a scan prompt, goes to review (docs/reconciliation.md §4.4)"))
    tiny_change_swap_seen: bool = Field(False, description=(
        "a settled change below min_delta_g whose burst saw a product not in the basket (and a line of its "
        "weight that could have come out) is decided as a same-weight swap, not dropped as a lift and put "
        "back (docs/reconciliation.md §4.4.1; off: no effect measured on the hard floor, real run not measured)"))
    scan_after_followup_none: bool = Field(True, description=(
        "'none of these' to a follow-up (every picture shows the tapped product A with something: '2 x A', "
        "'A + B') asks the shopper to scan the other product they put in before a human "
        "(docs/reconciliation.md §4.4)"))
    followup_names_the_rest: bool = Field(True, description=(
        "on a follow-up, a product named (tapped or scanned) that is not A is the rest of the movement: "
        "read as 'A + that product' when it fits the weight (docs/reconciliation.md §4.4)"))
    contradict_z: float = Field(4.0, gt=0, description="an answer whose weight misfits beyond this goes to review")
    # --- learned weights
    learn_min_posterior: float = Field(0.99, gt=0, le=1)
    learn_max_z: float = Field(3.5, gt=0)
    learn_prior_strength: float = Field(16.0, gt=0, description=(
        "pseudo-observations behind the catalogue weight (and a produce bag's prior). 4 let a few packs "
        "near the mean shrink the learned sd to ~0.7 x the catalogue's: a legal pack 2.9 catalogue sd off "
        "was 4.0 learned sd off and went to a human; 16: default floor reviews 1 -> 0 of 300, real run "
        "unchanged (docs/reconciliation.md §4.4.2)"))
    # --- bookkeeping
    log_limit: int = Field(2000, ge=10, description="decisions kept per cart")
    # --- a shopper's "it's my own item" on an addition (answers.py; measured effect in docs/reconciliation.md §4.5)
    personal_claim_max_g: float = Field(3000.0, gt=0, description=(
        "a personal claim on an addition heavier than this goes to a human"))
    personal_claim_seen_score: float = Field(0.5, ge=0, le=1, description=(
        "a personal claim goes to a human when the burst's mean scores, summed over the products whose "
        "weight (k units, within camera_fit_z; produce when plausible) fits the change, reach this: the "
        "camera itself saw a product of that weight (hard, 300 baskets: reviews of honest claims ~80 -> ~1)"))
    personal_claim_posterior: float = Field(0.97, ge=0, le=1, description=(
        "a personal claim also goes to a human when a product hypothesis within accept_max_z has this "
        "posterior (with vision or a barcode): the evidence would have accepted it; 1 turns it off. Before "
        "(0.5, the whole rule) it reviewed ~17 % of honest claims on `hard`, since with the committed "
        "detector it is the weight and the priors alone, and caught no more cheats than the camera does"))
    personal_claim_produce_score: float = Field(0.0, ge=0, le=1, description=(
        "personal_claim_seen_score: a plausible produce bag counts only when the burst scored it this high "
        "(0: like a packaged product). The committed detector calls personal items and hands 'Kiwi' at "
        "0.5-0.7: 0.9 took hard 300 reviews 406.67 -> 346.67 per 1,000 but undetected loss 13,166 -> 14,154 "
        "cents (default 33.33 -> 13.33, 1,167 -> 1,585 cents), so it stays 0 (docs/reconciliation.md §4.5)"))
    # --- slips (answers.py, decide.py; docs/reconciliation.md §4.3.1)
    scan_when_slips_pass: bool = Field(True, description=(
        "a pick prompt whose pictures each show one product, a tap on any of which would pass the slip "
        "check (look-alikes the camera and the weight cannot separate), asks for the barcode instead, "
        "with the same pictures (docs/reconciliation.md §4.3.1)"))
    scan_when_slips_pass_pictures: int = Field(2, ge=0, le=8, description=(
        "scan_when_slips_pass when at least this many of the pictures would pass the slip check "
        "(a slip between two of them would be charged); 0: only when every picture would (before: "
        "default 1,000 baskets, wrong 52 -> 42 per 1,000, slips charged 19 -> 8, prompts the same, "
        "1,502 picks became scans; docs/reconciliation.md §4.3.1)"))
    slip_check_multi: bool = Field(True, description=(
        "a tap on a picture of several products ('A + B', '2 x A + B', 'B instead of A') gets the same "
        "slip check as one product's: unlikely given the evidence, asked again, then a human "
        "(docs/reconciliation.md §4.3.1)"))
    add2_fit_top: int = Field(16, ge=0, le=4096, description=(
        "two-product adds (k of A + one B): per row (A, k), only the B among this many best |z| weight "
        "fits (and every SKU the camera or a barcode scored, and the camera's top set) have their weight "
        "looked at; the other B count at the weight floor, as swap_fit_top does for swaps. 0: every B "
        "(docs/reconciliation.md §2, §8.3)"))

    # --- the oracle floor (issue 12, floor12d; measured effect in docs/reconciliation.md §4.4.2)
    units_readings_when_doubtful: bool = Field(True, description=(
        "k >= 2 units of one product whose posterior is also below the thresholds (a burst with a missed "
        "frame, or a full burst that saw only that product) are asked once with the readings as pictures "
        "('3 x A', '2 x A + B'), not 'which item?' and then the readings after the tap (off: only when "
        "the missed frame alone held them back)"))

    produce_again_seen_whole: bool = Field(True, description=(
        "a second bag of a produce already in the basket is accepted on the camera (§4.1) when the "
        "camera saw it as the clear best of every frame of a full burst and the bag's weight is plausible; "
        "off: every bag of a produce already in the basket is asked (it may be the first bag going out)"))

    ask_seen_readings: bool = Field(True, description=(
        "an addition whose burst showed one packaged product A surely (camera_accept_score, the clear best "
        "of every frame it delivered), A not yet in the basket, that weighs more than one unit of A, is "
        "asked once with the readings of A ('A + B', '2 x A') as pictures, not 'which item?' or a scan "
        "and then those readings"))

    # --- the oracle floor, round 2 (issue 12, floor12e; measured effect in docs/reconciliation.md §4.4.3)
    accept_one_seen_whole: bool = Field(True, description=(
        "one unit of a packaged product the camera saw alone, surely (camera_accept_score), as the clear "
        "best of each of one_seen_min_frames or more frames (multi_unit_min_frames with a line of it in the "
        "basket), fitting within camera_fit_z, is accepted when its posterior among the hypotheses the camera "
        "does not contradict "
        "(not pairs or swaps with a product no frame showed) reaches accept_posterior; off: the posterior "
        "over every hypothesis decides (swaps of unseen products kept it at 0.90-0.97)"))
    one_seen_min_frames: int = Field(2, ge=1, description=(
        "accept_one_seen_whole: frames the burst must deliver (one frame may be a swap's in-side, the "
        "out-side's frames missed); with a line of the product in the basket multi_unit_min_frames (two "
        "frames of it may be that line going out, the frame of what went in missed)"))

    look_alikes_sure_score: float = Field(0.97, ge=0, le=1.01, description=(
        "two family look-alikes of one weight in one movement (a pair, a swap) are accepted on the camera "
        "when each was a frame's clear best at this score or more (a frame of its own each); below it they "
        "are asked, since the detector names the wrong member of a family half the time it errs "
        "(docs/model_card.md); above 1: always asked"))

    tap_swap_reading_clear: bool = Field(True, description=(
        "a tap or scan on A read as 'A in for X out' (a swap, taps.py) is clear on its posterior and fit; "
        "off: also asked again whenever A has a family look-alike of its weight, a guard meant for "
        "'2 x A' vs 'A + A'' (hard floor: scans of the product a swap put in asked a second time)"))

    tap_units_seen_misfit: bool = Field(True, description=(
        "a tap on A read as 'k x A' is clear (posterior, margin and fit permitting) also when the camera saw "
        "other products, if none of them is part of any reading of the rest of the weight (taps.py): they "
        "cannot be what else went in; off: any other product seen asks again (docs/reconciliation.md §4.3)"))

    @model_validator(mode="after")
    def _check(self) -> "ReconcileConfig":
        if not self.unit_prior or any(p <= 0 for p in self.unit_prior):
            raise ValueError("unit_prior must be a non-empty list of positive numbers")
        return self

    def unit_prior_of(self, k: int) -> float:
        up = self.unit_prior
        return up[k - 1] if k <= len(up) else up[-1]
