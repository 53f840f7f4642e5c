"""Camera-led decisions: what the camera saw, checked against the weight.

The scorer (scoring.py, multi.py) weighs every hypothesis against the whole
catalogue, so a hypothesis the camera never saw (the second product of a pair,
either side of a swap) can win on priors and weight alone. This module asks
the narrower question a person at the cart would: given the products (and
personal items) the camera saw, is there exactly one way they explain the
weight change? Used by the engine (docs/reconciliation.md §4):

- to accept what the scorer cannot: produce (no unit weight: the camera names
  it, the weight only has to be plausible), a swap or two products at once
  when both were seen, a personal item the camera recognised;
- to veto what the scorer would accept but the camera contradicts: a pair or
  a swap one of whose products was not seen.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from .config import ReconcileConfig
from .inputs import VisionSummary
from .produce import ProduceBook
from .weightindex import any_weight_alike

MULTI_KINDS = ("add2", "remove2", "add_multi", "remove_multi", "swap_multi", "swap")


@dataclass(frozen=True)
class Seen:
    """The products and personal items a burst shows, with their mean scores."""
    products: dict[str, float] = field(default_factory=dict)
    personal: float = 0.0
    personal_class: str | None = None
    scores: dict[str, float] = field(default_factory=dict)   # every product the burst scored
    top_frames: dict[str, int] = field(default_factory=dict)  # frames in which it was the clear best
    frames: int = 0     # frames the burst delivered
    top_score: dict[str, float] = field(default_factory=dict)  # its highest score as a frame's clear best

    def whole(self, sku: str, cfg: ReconcileConfig) -> bool:
        """`sku` was the clear best of every frame of a full burst (multi_unit_min_frames or more)."""
        n = self.frames
        return n >= max(1, cfg.multi_unit_min_frames) and self.top_frames.get(sku, 0) >= n

    @property
    def mass(self) -> float:
        return sum(self.products.values())


def seen_of(vision: VisionSummary | None, cat, cfg: ReconcileConfig) -> Seen | None:
    if vision is None or vision.n_frames <= 0:
        return None
    prods = {k: v for k, v in vision.scores.items() if v >= cfg.seen_min_score and k in cat.idx}
    top = dict(sorted(prods.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.seen_max_products])
    pc = max(vision.personal_scores, key=lambda k: (vision.personal_scores[k], k)) if vision.personal_scores else None
    return Seen(top, vision.personal_score, pc, dict(vision.scores), dict(vision.top_frames), vision.n_frames,
                dict(vision.top_score))


def skus_in(h: dict) -> set[str]:
    """The products a scorer hypothesis involves."""
    if "in" in h or "out" in h:
        return set(h.get("in", {})) | set(h.get("out", {}))
    if "skus" in h:
        return set(h["skus"])
    if h["kind"] == "swap":
        return {h["sku"], h["remove_sku"]}
    return {h["sku"]} if h.get("sku") else set()


def skus_put_in(h: dict) -> set[str]:
    """The products a scorer hypothesis puts into the basket (a swap's in-side, both of a pair)."""
    if "in" in h:
        return set(h["in"])
    if h["kind"] == "swap":
        return {h["sku"]}
    if h["kind"].startswith("add"):
        return set(h["skus"]) if "skus" in h else {h["sku"]} if h.get("sku") else set()
    return set()


def unseen_part(h: dict, seen: Seen | None, cfg: ReconcileConfig) -> list[str]:
    """Products of a multi-product hypothesis (a pair, a swap) the camera did not see: such a
    hypothesis is not accepted on weight and priors (issue 12: the unseen second item of a similar
    weight was the largest cause of wrong baskets with a perfect camera)."""
    if h["kind"] not in MULTI_KINDS:
        return []
    got = seen.scores if seen is not None else {}
    return sorted(s for s in skus_in(h) if got.get(s, 0.0) < cfg.pair_seen_min_score)


def left_out(h: dict, seen: Seen | None, fits: list[dict], cfg: ReconcileConfig) -> list[str]:
    """Products the camera saw (mean score >= unexplained_seen_score) that hypothesis h does not
    involve although a combination of several seen products with them fits the weight: accepting h
    would ignore a second product of a pair or the other side of a swap. (A look-alike the detector
    hesitated over is not left out: no combination with it fits.)"""
    if seen is None or cfg.unexplained_seen_score >= 1:
        return []
    mine = skus_in(h)
    multi = [skus_in(f) for f in fits if len(skus_in(f)) > 1]
    return sorted(s for s, v in seen.scores.items() if v >= cfg.unexplained_seen_score and s not in mine
                  and any(s in m for m in multi))


def personal_instead(h: dict, seen: Seen | None, cfg: ReconcileConfig) -> bool:
    """The camera recognised a personal item and none of h's products: h, a product the weight and
    the priors chose (e.g. one just taken out, "put back"), ignores what was seen (personal_seen_holds)."""
    if not cfg.personal_seen_holds or seen is None or seen.personal < cfg.personal_min_score \
            or h["kind"] in ("personal", "personal_remove"):
        return False
    prods = skus_in(h)
    return bool(prods) and all(seen.scores.get(s, 0.0) < cfg.pair_seen_min_score for s in prods)


def hidden_pair(h: dict, vision: VisionSummary | None, cat, book, cfg: ReconcileConfig) -> bool:
    """k >= 2 units of one product from a burst with missed frames, when another product weighs
    the same: the missed frame may have shown it (one A and one look-alike B in, not two A)."""
    if h["kind"] != "add" or h.get("k", 1) < 2 or h.get("sku") is None or cat.items[h["sku"]].sold_by_weight:
        return False
    if vision is not None and vision.n_frames >= cfg.multi_unit_min_frames:
        return False
    return any_weight_alike(cat.idx[h["sku"]], cat, book, cfg.camera_fit_z, cfg.sensor_noise_g)


def units_seen_whole(h: dict, vision: VisionSummary | None, seen: Seen | None, lines: list[dict], cat, book,
                     cfg: ReconcileConfig) -> bool:
    """k >= 2 units of one packaged product A (one unit: accept_one_seen_whole, from
    one_seen_min_frames frames), and the camera saw A alone, surely, as the clear best of every frame
    of a full burst: the weight only has to fit (|z| <= camera_fit_z). The scorer
    weighs k units' prior and spread against single unseen products of the same weight; a person
    looking at the burst would not. Not when A has a look-alike of its weight in its family (the
    detector confuses them) that the burst scored above units_look_alike_max_score, or (k >= 2, with
    units_seen_whole_with_line off) a line of A is already in the basket (the camera may be looking
    at that one)."""
    sku, k = h.get("sku"), h.get("k", 1)
    on = cfg.accept_units_seen_whole if k >= 2 else cfg.accept_one_seen_whole
    if (not on or h["kind"] != "add" or sku is None
            or cat.items[sku].sold_by_weight or vision is None or seen is None):
        return False
    n = vision.n_frames
    have = any(ln["sku"] == sku and ln["status"] == "accepted" for ln in lines)
    need = cfg.multi_unit_min_frames if k >= 2 or have else cfg.one_seen_min_frames
    if n < max(1, need) or seen.top_frames.get(sku, 0) < n:
        return False    # (one unit, a line of it in: a swap "that one out, B in" with B's frame missed)
    if seen.scores.get(sku, 0.0) < cfg.camera_accept_score or abs(h["z"]) > cfg.camera_fit_z:
        return False
    if any(v >= cfg.pair_seen_min_score for s, v in seen.scores.items() if s != sku) or seen.personal >= cfg.personal_min_score:
        return False
    if k >= 2 and have and not cfg.units_seen_whole_with_line:
        return False    # (one unit from a full burst: "that one out, B in" would show B in a frame)
    sn = max(cfg.sensor_noise_g, cfg.min_sd_g)
    fam = getattr(cat.items[sku], "family", None)
    return not any(v > cfg.units_look_alike_max_score and s in cat.idx and not cat.items[s].sold_by_weight
                   and getattr(cat.items[s], "family", None) == fam and _look_alikes(sku, s, cat, book, sn, cfg)
                   for s, v in seen.scores.items() if s != sku)


def same_weight(a: str, b: str, book, sn: float, cfg: ReconcileConfig) -> bool:
    """One unit of `a` and one of `b` are not told apart by the scale (within camera_fit_z)."""
    (ma, sa), (mb, sb) = book.params(a), book.params(b)
    return abs(ma - mb) <= cfg.camera_fit_z * math.sqrt(sa * sa + sb * sb + sn * sn)


def _look_alikes(a: str, b: str, cat, book, sn: float, cfg: ReconcileConfig) -> bool:
    ia, ib = cat.items[a], cat.items[b]
    if ia.sold_by_weight or ib.sold_by_weight or getattr(ia, "family", None) != getattr(ib, "family", None):
        return False
    return same_weight(a, b, book, sn, cfg)


def _z(delta: float, mu: float, var: float) -> float:
    return (delta - mu) / math.sqrt(var)


def explain(delta_g: float, noise_g: float, seen: Seen | None, lines: list[dict], personal: list[dict],
            cat, book, produce: ProduceBook, cfg: ReconcileConfig) -> tuple[dict | None, str, list[dict]]:
    """The one explanation of this weight change built from what the camera saw, as an engine
    hypothesis, or None; why; and every combination of what was seen that fits the weight."""
    if seen is None:
        return None, "no vision", []
    sn = max(cfg.sensor_noise_g, float(noise_g))
    sn2 = sn * sn
    prods = seen.products
    packaged = [s for s in prods if not cat.items[s].sold_by_weight]
    loose = [s for s in prods if cat.items[s].sold_by_weight]
    accepted = [ln for ln in lines if ln["status"] == "accepted" and ln["sku"] in cat.idx]
    have = Counter()
    for ln in accepted:
        if not ln["by_weight"]:
            have[ln["sku"]] += ln["qty"]
    K = cfg.max_units
    out: list[tuple[dict, frozenset]] = []     # (hypothesis, what it explains of the seen)
    done: set = set()

    def mv(kind, ins: Counter, outs: Counter, extra=None):
        key = (tuple(sorted(ins.items())), tuple(sorted(outs.items())))
        if key in done:
            return         # k of A + one B with k = 1 is one B + one A
        done.add(key)
        mu = sum(q * book.params(s)[0] for s, q in ins.items()) - sum(q * book.params(s)[0] for s, q in outs.items())
        var = sum(q * book.params(s)[1] ** 2 for s, q in (ins + outs).items()) + sn2
        z = _z(delta_g, mu, var)
        if abs(z) > cfg.camera_fit_z:
            return
        skus = sorted(set(ins) | set(outs))
        h = {"kind": kind, "sku": skus[0], "k": (ins + outs)[skus[0]], "skus": [s for s in skus for _ in
             range((ins + outs)[s])], "in": dict(ins), "out": dict(outs), "target": None,
             "posterior": 1.0, "mu_g": round(mu, 3), "sd_g": round(math.sqrt(var), 3), "z": round(z, 3)}
        if extra:
            h.update(extra)
        if len(skus) == 1 and not outs:           # one product in: the engine's plain add (it teaches)
            h.update(kind="add", sku=skus[0], k=ins[skus[0]])
        elif len(skus) == 1 and not ins:
            ln = next((x for x in accepted if x["sku"] == skus[0] and not x["by_weight"]), None)
            h.update(kind="remove", sku=skus[0], k=outs[skus[0]], target=ln["line_id"])
        out.append((h, frozenset(skus)))

    if delta_g > 0:
        for a in packaged:
            for k in range(1, K + 1):
                mv("add_multi", Counter({a: k}), Counter())
            for b in packaged:
                if b != a:
                    for k in range(1, K + 1):
                        mv("add_multi", Counter({a: k, b: 1}), Counter())
        for p in loose:
            z = produce.z(p, delta_g) if produce.knows(p) else math.inf
            if any(ln["sku"] == p for ln in accepted) and not (cfg.produce_again_seen_whole and seen.whole(p, cfg)):
                # a bag of it is in the cart: seeing it may be that bag going out (a swap), unless it was
                # the clear best of every frame of a full burst (a swap's other product shows in a frame)
                z = math.inf
            if abs(z) <= cfg.produce_max_z:
                out.append(({"kind": "add", "sku": p, "k": 1, "target": None, "posterior": 1.0, "by_weight": True,
                             "mu_g": round(math.exp(produce.params(p)[0]), 1), "sd_g": 0.0, "z": round(z, 3)},
                            frozenset([p])))
        if seen.personal >= cfg.personal_min_score and 0 < delta_g <= cfg.personal_max_g:
            out.append(({"kind": "personal", "sku": None, "k": 1, "target": None, "posterior": 1.0,
                         "personal_class": seen.personal_class, "mu_g": round(delta_g, 1), "sd_g": 0.0, "z": 0.0},
                        frozenset(["personal"])))
    else:
        for a in packaged:
            for k in range(1, min(K, have[a]) + 1):
                mv("remove_multi", Counter(), Counter({a: k}))
            for b in packaged:
                if b > a and have[a] and have[b]:
                    mv("remove_multi", Counter(), Counter({a: 1, b: 1}))
        for p in loose:
            for ln in accepted:
                if ln["sku"] == p:
                    var = 2 * sn2 + (0.01 * ln["weight_g"]) ** 2
                    z = _z(delta_g, -ln["weight_g"], var)
                    if abs(z) <= cfg.camera_fit_z:
                        out.append(({"kind": "remove", "sku": p, "k": 1, "target": ln["line_id"], "posterior": 1.0,
                                     "mu_g": -ln["weight_g"], "sd_g": round(math.sqrt(var), 3), "z": round(z, 3)},
                                    frozenset([p])))
        if seen.personal >= cfg.personal_min_score:
            for it in personal:
                var = 2 * sn2 + (cfg.personal_match_rel * it["weight_g"]) ** 2
                z = _z(delta_g, -it["weight_g"], var)
                if abs(z) <= cfg.camera_fit_z and it.get("personal_class") in (None, seen.personal_class):
                    out.append(({"kind": "personal_remove", "sku": None, "k": 1, "target": it["pid"],
                                 "posterior": 1.0, "mu_g": -it["weight_g"], "sd_g": round(math.sqrt(var), 3),
                                 "z": round(z, 3)}, frozenset(["personal"])))
    # a swap: one unit of a basket line the camera saw out, another product it saw in (either sign)
    for a in packaged:
        if have[a]:
            for b in packaged:
                if b != a:
                    mv("swap_multi", Counter({b: 1}), Counter({a: 1}))
            if cfg.exchange_seen_whole and len(packaged) == 1 and seen.whole(a, cfg):
                # one unit of A out, another A in (a shopper picking a better one): only A, in every
                # frame of a full burst, and the weight barely changed; the receipt does not change
                mv("swap_multi", Counter({a: 1}), Counter({a: 1}), {"exchange": True})

    # a produce line out for a packaged product in (the line's weight is known), or a packaged
    # unit out for a produce bag in (the bag weighs what is left: it must be plausible)
    for p in loose:
        for ln in accepted:
            if ln["sku"] == p:
                for b in packaged:
                    mb, sb = book.params(b)
                    var = sb * sb + 2 * sn2 + (0.01 * ln["weight_g"]) ** 2
                    z = _z(delta_g, mb - ln["weight_g"], var)
                    if abs(z) <= cfg.camera_fit_z:
                        out.append(({"kind": "swap_multi", "sku": b, "k": 1, "skus": sorted([p, b]), "in": {b: 1},
                                     "out": {p: 1}, "target": None, "posterior": 1.0,
                                     "mu_g": round(mb - ln["weight_g"], 3), "sd_g": round(math.sqrt(var), 3),
                                     "z": round(z, 3)}, frozenset([p, b])))
        for a in packaged:
            if have[a] and produce.knows(p):
                bag = delta_g + book.params(a)[0]
                z = produce.z(p, bag)
                if bag > cfg.min_delta_g and abs(z) <= cfg.produce_max_z:
                    out.append(({"kind": "swap_multi", "sku": p, "k": 1, "skus": sorted([p, a]), "in": {p: 1},
                                 "out": {a: 1}, "target": None, "posterior": 1.0, "mu_g": round(delta_g, 3),
                                 "sd_g": 0.0, "z": round(z, 3)}, frozenset([p, a])))
    fits = [h for h, _ in out]
    if not out:
        return None, "nothing the camera saw fits the weight", fits
    universe = set(prods) | ({"personal"} if seen.personal >= cfg.personal_min_score else set())
    full = [(h, e) for h, e in out if e == universe]
    if not full:
        return None, "no combination of everything the camera saw fits the weight", fits
    cands = full
    if len(cands) > 1:
        cands.sort(key=lambda he: abs(he[0]["z"]))
        close = [h for h, _ in cands if abs(h["z"]) - abs(cands[0][0]["z"]) < cfg.camera_margin_z]
        if len(close) > 1 and not (cfg.personal_out_best_fit and all(h["kind"] == "personal_remove" for h in close)):
            return None, "what the camera saw fits the weight in more than one way", fits
        # several personal items fit a personal item seen going out: the receipt is the same whichever
        # it was, so the closest weight is taken (personal_out_best_fit)
    h, e = cands[0]
    several = [x for x in e if x != "personal"]
    if len(several) > 1 and any(seen.top_frames.get(x, 0) < 1 for x in several):
        # two products, one never the clear best of a frame: more likely a look-alike the detector
        # hesitated over than a second product (k of A taken for A + A')
        return None, "a product of the combination was never seen on its own in a frame", fits
    for i, a in enumerate(several):
        for b in several[i + 1:]:
            if _look_alikes(a, b, cat, book, sn, cfg) and not (
                    seen.top_score.get(a, 0.0) >= cfg.look_alikes_sure_score
                    and seen.top_score.get(b, 0.0) >= cfg.look_alikes_sure_score):
                # the committed detector names the wrong member of a family half the time it errs
                # (docs/model_card.md): two members of one weight are not split by the camera alone,
                # unless each was named surely in a frame of its own (look_alikes_sure_score)
                return None, f"{a} and {b} are look-alikes of one weight", fits
    if h["kind"] in ("add", "remove") and not h.get("by_weight") and h.get("sku") \
            and not cat.items[h["sku"]].sold_by_weight:
        # one packaged product: the scorer weighs it against every look-alike (the detector is often
        # confidently wrong between look-alikes of one weight: 14 -> 37 wrong per 1,000 on `hard` when
        # this path accepted them too)
        return None, "one packaged product: the posterior decides", fits
    mass = sum(prods.get(s, 0.0) for s in e) + (seen.personal if "personal" in e else 0.0)
    if mass < cfg.camera_accept_score:
        return None, f"the camera is not sure enough ({mass:.2f} < {cfg.camera_accept_score})", fits
    return h, "the camera saw " + (", ".join(sorted(x if x != "personal" else f"a personal item ({seen.personal_class})"
                                                    for x in e))) + " and the weight fits", fits


# --- a shopper's "it's my own item" against what was seen (answers.py; docs/reconciliation.md §4.5)

def product_seen_of_weight(delta_g: float, noise_g: float, vision: VisionSummary | None, cat, book,
                           produce: ProduceBook, cfg: ReconcileConfig) -> tuple[float, list[str]]:
    """The camera's own sureness that a product of this weight went in: the burst's mean scores
    summed over the products (k units of one, 1..max_units, within camera_fit_z; produce scored at
    least personal_claim_produce_score whose bag is plausible) whose weight fits the change, and those
    products, surest first. The weight
    only filters: a posterior is not used, since with a detector that names no product here it is
    the weight and the priors alone (issue 12: most honest personal items fit some product)."""
    if vision is None or not vision.scores:
        return 0.0, []
    sn2 = max(cfg.sensor_noise_g, float(noise_g)) ** 2
    fit = []
    for s, v in vision.scores.items():
        if s not in cat.idx or v <= 0:
            continue
        if cat.items[s].sold_by_weight:
            # a bag's plausible weights span a factor of ~50: the weight barely corroborates, so produce
            # can be made to count only above personal_claim_produce_score (docs/reconciliation.md §4.5)
            ok = v >= cfg.personal_claim_produce_score and produce.knows(s) \
                and abs(produce.z(s, delta_g)) <= cfg.produce_max_z
        else:
            mu, sd = book.params(s)
            ok = any(abs(delta_g - k * mu) <= cfg.camera_fit_z * math.sqrt(k * sd * sd + sn2)
                     for k in range(1, cfg.max_units + 1))
        if ok:
            fit.append((v, s))
    fit.sort(key=lambda x: (-x[0], x[1]))
    return sum(v for v, _ in fit), [s for _, s in fit]


def barcode_of_weight(delta_g: float, vision: VisionSummary | None, hyps: list[dict], cat,
                      cfg: ReconcileConfig) -> str | None:
    """A product whose barcode the camera read in this movement and that fits the weight (a
    hypothesis with it within accept_max_z), or None."""
    if vision is None:
        return None
    read = {cat.sku_of_barcode(b) for b in vision.barcodes} - {None}
    for h in hyps:
        if h["kind"] != "personal" and abs(h["z"]) <= cfg.accept_max_z and skus_in(h) & read:
            return sorted(skus_in(h) & read)[0]
    return None
