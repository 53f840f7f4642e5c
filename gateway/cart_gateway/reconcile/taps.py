"""What a tap on one product's picture can honestly mean (docs/reconciliation.md §4.3).

The cart screen shows one picture per option and no count, and a shopper who put in two
products, or swapped one for another, taps the one picture that shows their product. So a
tap on A says "A was part of this", not "this was A". When the weight fits one unit of A the
tap is read as that (answers.py, as before). Otherwise the rest of the weight is scored as a
movement of its own, with the same camera burst, A's unit weight taken off and its spread
added to the noise: k more units of A, A and another product B, A in for X out (or, for a
removal, A out for B in). That reading is accepted only when the rest is clear (posterior
and weight fit as for an accept, every product besides A seen by the camera, and, for more
units of A, no other product seen); otherwise the shopper is asked once more with the
readings as pictures ("2 x A", "A + B", "A instead of X"), and an answer that fits none goes to
a human. A wrong receipt costs more than a second prompt.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from .camera import Seen
from .config import ReconcileConfig
from .multi import fit_skus, score_multi
from .weightindex import weighs_as


class TapVerdict(Enum):
    AS_BEFORE = "as_before"    # one unit of A fits (or nothing else can be read): answers.py's path
    ACCEPT = "accept"          # the rest is clear: apply `hypothesis`
    ASK = "ask"                # the rest is not clear: ask with `readings` as pictures


@dataclass
class TapReading:
    verdict: TapVerdict
    hypothesis: dict | None = None
    readings: list[dict] = field(default_factory=list)    # fit_skus hypotheses, most likely first
    why: str = ""


def _unit(cat, book, sku: str) -> tuple[float, float] | None:
    if cat.items[sku].sold_by_weight:
        return None
    return book.params(sku)


def _combined(sku: str, r: dict, removal: bool, delta_g: float, noise_g: float, cat, book, lines,
              cfg: ReconcileConfig, produce_z) -> dict | None:
    """The whole movement's hypothesis for "the tapped `sku`, plus what `r` says the rest was".
    As in the scorer's own pairs (multi.py), a movement is k units of one product and at most one
    unit of another: the rest is more of the tapped product, one other product, or both."""
    if r.get("sku") is None:
        return None
    if r["kind"] == "add2" and not removal:
        rest = Counter(r["skus"])
        others = [s for s in rest if s != sku]
        if len(others) != 1 or rest[others[0]] != 1:
            return None
        want_in, want_out = Counter({sku: 1}) + rest, Counter()
    elif r["kind"] not in ("add", "remove") or "skus" in r:
        return None
    else:
        other, k = r["sku"], int(r["k"])
        if other != sku and k != 1:
            return None
        if removal:     # the tap named what came out; the rest went in
            if r["kind"] != "add" or other == sku:
                return None
            want_in, want_out = Counter({other: k}), Counter({sku: 1})
        elif r["kind"] == "add":
            want_in, want_out = Counter({sku: 1}) + Counter({other: k}), Counter()
        else:           # the tap named what went in; the rest came out of the basket
            if other == sku:
                return None
            want_in, want_out = Counter({sku: 1}), Counter({other: k})
    names = list((want_in + want_out).elements())
    for h in fit_skus(names, delta_g, noise_g, cat, book, lines, cfg, produce_z=produce_z):
        if Counter(h["in"]) == want_in and Counter(h["out"]) == want_out:
            h["posterior"] = r["posterior"]
            return h
    return None


def read_tap(sku: str, mv: dict, seen: Seen | None, vision, cat, book, lines: list[dict],
             personal: list[dict], cfg: ReconcileConfig, produce, first_fit: dict | None,
             recent_out=None, put_in: bool = False) -> TapReading:
    """Read a tap on `sku` for movement `mv`; `first_fit` is answers.py's best reading of the tap
    alone (best_with_sku, or the produce line for a produce removal). `put_in`: the question was
    what went in (a scan after "none of these"), so a tap is what went in even when the weight fell
    (a swap for a lighter product)."""
    d, sn = float(mv["delta_g"]), max(cfg.sensor_noise_g, float(mv["noise_g"]))
    removal = d < 0 and not put_in
    unit = _unit(cat, book, sku)
    one_unit = (first_fit is not None and abs(first_fit["z"]) <= cfg.accept_max_z
                and first_fit["kind"] in ("add", "remove") and first_fit.get("k", 1) == 1)
    partial = first_fit is not None and first_fit["kind"] == "remove_part"
    if one_unit or mv.get("tap_followup"):
        return TapReading(TapVerdict.AS_BEFORE, why="one unit fits" if one_unit else "asked once already")
    if unit is None:
        if not (removal and partial):
            return TapReading(TapVerdict.AS_BEFORE, why="produce in: the bag takes any weight")
        # some of a produce line out, or all of it out and something else in (a swap)
        line = next((ln for ln in lines if ln["line_id"] == first_fit["target"]), None)
        mean_w, sd_w = (float(line["weight_g"]), 0.0) if line else (0.0, 0.0)
    else:
        mean_w, sd_w = unit
    rest = d + mean_w if removal else d - mean_w
    if abs(rest) < cfg.min_delta_g:
        return TapReading(TapVerdict.AS_BEFORE, why="nothing left over")
    if removal and rest < 0 and unit is not None:
        return TapReading(TapVerdict.AS_BEFORE, why="more came out than one unit: the scorer's removals")
    rest_sc = score_multi(rest, math.sqrt(sn * sn + sd_w * sd_w), cat, book, lines, personal, vision, cfg,
                          recent_out=recent_out)
    readings = []
    for r in rest_sc.hyps:
        if abs(r["z"]) > cfg.contradict_z:
            continue
        h = _combined(sku, r, removal, d, mv["noise_g"], cat, book, lines, cfg, produce.z)
        if h is None or abs(h["z"]) > cfg.contradict_z:
            continue
        loose_in = [s for s in h["in"] if s != sku and cat.items[s].sold_by_weight]
        if any((seen.scores if seen else {}).get(s, 0.0) < cfg.pair_seen_min_score for s in loose_in):
            continue    # a produce bag takes any weight: offered only when the camera saw it
        readings.append(h)
    if partial:
        # the produce line only partly out is the other honest reading; ask only if the camera
        # saw a product the swap would put in (otherwise answers.py applies the partial removal)
        if not any(_all_seen(h, sku, seen, cfg) for h in readings):
            return TapReading(TapVerdict.AS_BEFORE, why="no seen product for a swap")
        return TapReading(TapVerdict.ASK, readings=[first_fit] + readings[: cfg.ask_top_k - 1],
                          why="some of the produce out, or all of it out and another product in")
    if not readings:
        return TapReading(TapVerdict.AS_BEFORE, why="the rest fits nothing")
    top = readings[0]
    p2 = readings[1]["posterior"] if len(readings) > 1 else 0.0
    clear = (top["posterior"] >= cfg.accept_posterior and top["posterior"] - p2 >= cfg.accept_margin
             and abs(top["z"]) <= cfg.accept_max_z
             and (_all_seen(top, sku, seen, cfg) or _units_against_misfits(top, sku, seen, readings, cfg))
             and not (set(top["in"]) == {sku} and (not top["out"] or not cfg.tap_swap_reading_clear)
                      and _has_look_alike(sku, cat, book, sn, cfg)))
    if clear:
        return TapReading(TapVerdict.ACCEPT, hypothesis=top, readings=readings, why="the rest is clear")
    return TapReading(TapVerdict.ASK, readings=readings[: cfg.ask_top_k], why="the rest is not clear")


def _units_against_misfits(h: dict, sku: str, seen: Seen | None, readings: list[dict],
                           cfg: ReconcileConfig) -> bool:
    """'k x A' against other products the camera saw, none of which is in any reading of the rest
    of the weight: whatever else it saw cannot be what went in with A (tap_units_seen_misfit)."""
    if not cfg.tap_units_seen_misfit or seen is None or set(h["in"]) != {sku} or h["out"]:
        return False
    others = {s for s, v in seen.scores.items() if s != sku and v >= cfg.pair_seen_min_score}
    return not any(others & (set(r["in"]) | set(r["out"])) for r in readings)


def _all_seen(h: dict, sku: str, seen: Seen | None, cfg: ReconcileConfig) -> bool:
    """Every product put in besides the tapped one was seen (what came out is on the ledger);
    more units of the tapped one only if the camera saw no other product (a look-alike of the
    same weight would read the same)."""
    got = seen.scores if seen is not None else {}
    others = set(h["in"]) - {sku}
    if set(h["out"]) - {sku}:
        return all(got.get(s, 0.0) >= cfg.pair_seen_min_score for s in others)
    if not others:
        return seen is not None and not any(v >= cfg.pair_seen_min_score for s, v in got.items() if s != sku)
    return all(got.get(s, 0.0) >= cfg.pair_seen_min_score for s in others)


def _has_look_alike(sku: str, cat, book, sn: float, cfg: ReconcileConfig) -> bool:
    """Another product of `sku`'s family weighs the same: "2 x A" and "A and its look-alike" read
    the same on the scale and, often, on the camera; only the shopper can say which. (Not asked of
    "A in for X out": the shopper named A, and X's side is the ledger's: tap_swap_reading_clear.)"""
    i = cat.idx[sku]
    fam = cat.family_units(i)          # (the family, not the catalogue: a few SKUs)
    fam = fam[fam != i]
    return bool(weighs_as(fam, i, book, cfg.camera_fit_z, sn).any())
