"""Hypotheses that name more than one product, on top of scoring.score().

scoring.score() covers one SKU per movement (k units), a swap, personal items
and whole produce lines. This module adds, on the same log scale:

- `add2`: k units of A and one unit of B went in together (A != B);
- `remove2`: one unit each of two different basket lines came out together;
- `remove_part`: part of a loose-produce line came out (some of the bananas).

The candidate set is bounded so a weight event stays cheap: A ranges over the
top `pair_vision_top` SKUs by vision score (a pair is only proposed when the
camera saw at least one of the two), B over every packaged SKU (the pair block,
pairblock.py); removals range over pairs of basket lines (a basket holds at most
a few dozen).

To merge with score()'s normalised posteriors we take score()'s log normaliser
(`arrays["log_z"]`: posterior_j = exp(lp_j - log_z)), and its vision and barcode
factors (factors.vision_factor / barcode_factor), so the two cannot drift apart.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .catindex import CatalogueIndex, Scored
from .config import ReconcileConfig
from .context import BasketArrays
from .factors import barcode_factor, family_smoothed, log_vision, vision_derived, vision_factors  # noqa: F401 (family_smoothed: decide, answers)
from .inputs import VisionSummary
from . import pairkernel
from .pairblock import (PAIR_PRUNE_MIN_CELLS, _logpdf, _logsumexp, _pairs_dense, _pairs_indexed, _top_units_of,
                        line_pairs)
from .scoring import score
from .weightindex import special_units
from .weightbook import WeightBook

MULTI_KINDS = ("add2", "remove2", "remove_part")


def score_multi(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
                lines: list[dict], personal: list[dict], vision: VisionSummary | None,
                cfg: ReconcileConfig, recent_out: list[str] | None = None, prune: bool = True) -> Scored:
    """score() plus the multi-product hypotheses, renormalised together.

    `recent_out`: packaged SKUs taken out of this basket moments ago; putting one
    back (`readd`) is far likelier than any other SKU of that weight. `prune=False`: the
    dense pair block (the comparison tests' reference)."""
    basket = BasketArrays.of(lines, cat)        # once, for score() and the removal pairs
    sc = score(delta_g, noise_g, cat, book, lines, personal, vision, cfg, recent_out, basket)
    if cfg.prior_two <= 0 and cfg.prior_partial_produce <= 0 and not (recent_out and cfg.prior_readd > 0):
        return sc
    n = cat.n
    sn = max(cfg.sensor_noise_g, float(noise_g))
    floor = math.log(cfg.weight_lik_floor) if cfg.weight_lik_floor > 0 else -np.inf
    vis, logb = vision_factors(vision, cat, cfg)
    logv = log_vision(vis)
    mean, sd = book.mean, book.sd
    seen = vision is not None and vision.n_frames > 0
    hyps: list[dict] = []
    lps: list[float] = []
    pos = basket.pos.tolist()
    n_t = len(pos) + len(personal)

    extra_mass = []   # log-sums of every multi hypothesis scored (not only the ones kept)
    keep = max(cfg.ask_top_k, 5)
    if delta_g > 0 and cfg.prior_two > 0 and seen:
        units = cat.units
        m_top = cfg.pair_vision_top      # an O(catalogue) partition: once per burst
        top = vision_derived(vis, ("top_units", m_top), lambda: _top_units_of(vis, cat, vision, m_top))
        ks = np.arange(1, cfg.max_units + 1)
        # rows: (A, k) for A in the top set, k = 1..K; columns: B over every packaged SKU
        a_r = np.repeat(top, len(ks))
        k_r = np.tile(ks, len(top))
        lup = np.log([cfg.unit_prior_of(int(k)) for k in k_r])
        c_r = math.log(cfg.prior_two) - 2 * math.log(n) + math.log(n + 1) + lup + logv[a_r]
        pairs = None
        if prune and len(a_r) * len(units) >= PAIR_PRUNE_MIN_CELLS:
            pairs = _pairs_indexed(delta_g, sn, floor, cat, book, vision, cfg, a_r, k_r, c_r, top, logv, logb, keep)
        if pairs is None:
            always = (np.union1d(special_units(vision, cat, barcode_factor(vision, cat, cfg)[1]), top)
                      if cfg.add2_fit_top else None)
            pairs = _pairs_dense(delta_g, sn, floor, units, mean, sd, a_r, k_r, c_r, top, logv, logb, keep,
                                 cfg.add2_fit_top, always)
        mass, best = pairs
        extra_mass.append(mass)
        for r, b, mu_, s_, lp_ in best:
            a, k = int(a_r[r]), int(k_r[r])
            hyps.append(_h("add2", [cat.skus[a]] * k + [cat.skus[b]], None, mu_, s_, delta_g, cat.skus[a], k))
            lps.append(lp_)

    if delta_g > 0 and recent_out and cfg.prior_readd > 0:
        back = sorted({s for s in recent_out if s in cat.idx and not cat.by_weight[cat.idx[s]]})
        for sku in back:
            i = cat.idx[sku]
            s_ = math.sqrt(sd[i] ** 2 + sn * sn)
            ll = max(float(_logpdf(delta_g, mean[i], s_)), floor)
            lp = math.log(cfg.prior_readd) - math.log(len(back)) + logv[i] + logb[i] + ll
            hyps.append(_h("readd", [sku], None, float(mean[i]), s_, delta_g, sku, 1))
            lps.append(lp)
            extra_mass.append(lp)

    if delta_g < 0 and n_t:
        log_nt = math.log(n_t)
        packaged = ~basket.by_weight
        pk = basket.pos[packaged].tolist()
        if cfg.prior_two > 0 and len(pk) >= 2:
            li = basket.sku_ix[packaged]
            pairs = pairkernel.line_pairs if pairkernel.ready() else line_pairs
            mass, best = pairs(li, mean, sd, sn * sn, delta_g, floor, math.log(cfg.prior_two) - 2 * log_nt,
                               math.log(n + 1), logv, logb, keep)
            extra_mass.append(mass)
            for i, j, mu_, s_, lp_ in best:
                la, lb = lines[pk[i]], lines[pk[j]]
                h = _h("remove2", [la["sku"], lb["sku"]], la["line_id"], mu_, s_, delta_g, la["sku"], 1)
                h["target2"] = lb["line_id"]
                hyps.append(h)
                lps.append(lp_)
        if cfg.prior_partial_produce > 0:
            for p in pos:
                ln = lines[p]
                w = float(ln["weight_g"])
                # taking out some of it: anything from min_delta_g up to the line's weight less a
                # bag's worth (the whole line out is score()'s "remove")
                rest = w + delta_g
                if not ln["by_weight"] or rest < cfg.partial_min_left_g:
                    continue
                i = cat.idx[ln["sku"]]
                lp = math.log(cfg.prior_partial_produce) - log_nt + logv[i] + logb[i] - math.log(w)
                h = _h("remove_part", [ln["sku"]], ln["line_id"], -w / 2.0, w / math.sqrt(12.0), delta_g,
                       ln["sku"], 1)
                h["z"] = 0.0    # any amount in range fits equally
                hyps.append(h)
                lps.append(float(lp))
                extra_mass.append(float(lp))

    if not hyps:
        return sc
    lz = sc.arrays["log_z"] if sc.hyps else None
    lz_m = _logsumexp(np.array(extra_mass))
    if lz is None:
        z_all = lz_m
        f_single = 0.0
    else:
        z_all = float(np.logaddexp(lz, lz_m))
        f_single = math.exp(lz - z_all)
    for h, lp in zip(hyps, lps):
        h["posterior"] = math.exp(lp - z_all)
    singles = [dict(h, posterior=h["posterior"] * f_single) for h in sc.hyps]
    # a put-back changes the basket exactly as adding one unit of that SKU: one outcome, one posterior
    for h in [h for h in hyps if h["kind"] == "readd"]:
        same = next((x for x in singles if x["kind"] == "add" and x["sku"] == h["sku"] and x["k"] == 1), None)
        if same is not None:
            same["posterior"] += h["posterior"]
            same["context"] = "put back"
            hyps.remove(h)
    merged = sorted(singles + hyps, key=lambda h: -h["posterior"])[: max(cfg.ask_top_k, 5)]
    arrays = dict(sc.arrays) if sc.arrays else {}
    if arrays:
        arrays["post"] = arrays["post"] * f_single
        arrays["post_scale"] = arrays.get("post_scale", 1.0) * f_single   # for adds scored again on demand
    evidence = list(sc.evidence)
    best_fit = min([sc.best_fit_z] + [abs(h["z"]) for h in hyps])
    return Scored(merged, evidence, best_fit, sc.unknown_barcodes, arrays)


def _h(kind, skus, target, mu, s, delta_g, sku, k) -> dict:
    return {"kind": kind, "sku": sku, "k": k, "skus": list(skus), "target": target, "posterior": 0.0,
            "mu_g": round(mu, 3), "sd_g": round(s, 3), "z": round((delta_g - mu) / s, 3)}


def skus_of(h: dict) -> list[str]:
    """Every product unit a hypothesis names (a swap names what went out and what came in)."""
    if "skus" in h:
        return list(h["skus"])
    if h["kind"] == "swap":
        return [h["remove_sku"], h["sku"]]
    if h["sku"] is None:
        return []
    return [h["sku"]] * (1 if h["kind"] == "add" and h.get("by_weight") else h["k"])


def fit_skus(skus: list[str], delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
             lines: list[dict], cfg: ReconcileConfig, produce_z=None) -> list[dict]:
    """Hypotheses that move exactly the units `skus` (a shopper's multi-product answer),
    best weight fit first: all in, all out of basket lines, or a swap (some out, the rest in).

    Produce has no unit weight: a produce line out weighs what the line holds; a produce bag
    in takes whatever weight the packaged units leave (it must be > 0), and `produce_z(sku, grams)`
    (ProduceBook.z) says how plausible that bag is."""
    sn = max(cfg.sensor_noise_g, float(noise_g))
    cnt = Counter(skus)
    if any(s not in cat.idx for s in cnt):
        return []
    in_basket = Counter()
    produce_w: dict[str, list[float]] = {}
    for ln in lines:
        if ln["status"] != "accepted":
            continue
        if ln["by_weight"]:
            produce_w.setdefault(ln["sku"], []).append(float(ln["weight_g"]))
            in_basket[ln["sku"]] += 1
        else:
            in_basket[ln["sku"]] += ln["qty"]
    out = []
    distinct = sorted(cnt)
    loose = {s for s in cnt if cat.by_weight[cat.idx[s]]}
    if sum(cnt[s] for s in loose) > 1:
        return []      # two produce bags in one answer: which weighs what is the reviewer's
    # every split of the named units into "out" (must be in the basket) and "in"
    splits = [Counter()]
    for s in distinct:
        splits = [dict_add(sp, s, m) for sp in splits for m in range(0, cnt[s] + 1)]
    for out_c in splits:
        in_c = cnt - out_c
        if any(out_c[s] > in_basket[s] for s in out_c):
            continue
        mu = sum(in_c[s] * book.params(s)[0] for s in in_c if s not in loose) \
            - sum(out_c[s] * book.params(s)[0] for s in out_c if s not in loose)
        var = sum((in_c[s] + out_c[s]) * book.params(s)[1] ** 2 for s in cnt if s not in loose) + sn * sn
        for s in loose:
            if out_c[s]:    # the line that came out: the one whose weight fits best
                w = min(produce_w[s], key=lambda g: abs(delta_g - (mu - g)))
                mu -= w
                var += sn * sn
            elif delta_g - mu <= cfg.min_delta_g:
                mu = math.inf     # a bag in that weighs nothing: does not fit
            else:
                bag_z = produce_z(s, delta_g - mu) if produce_z else 0.0
                mu = delta_g - bag_z * math.sqrt(var)    # a bag in: it weighs what the rest leaves
        z = (delta_g - mu) / math.sqrt(var)
        kind = "add_multi" if not +out_c else ("remove_multi" if not +in_c else "swap_multi")
        out.append({"kind": kind, "sku": distinct[0], "k": cnt[distinct[0]], "skus": list(skus),
                    "in": dict(+in_c), "out": dict(+out_c), "target": None, "posterior": 1.0,
                    "mu_g": round(mu, 3) if math.isfinite(mu) else None, "sd_g": round(math.sqrt(var), 3),
                    "z": round(z, 3) if math.isfinite(z) else 1e9})
    out.sort(key=lambda h: abs(h["z"]))
    return out


def dict_add(c: Counter, key, m: int) -> Counter:
    d = Counter(c)
    if m:
        d[key] = m
    return d
