"""The straightforward scoring, frozen as the reference for tests/test_scoring_identical.py.

This is reconcile/scoring.py:score as it was before it was tuned for speed
(commit d491f72), with two changes: a tie at the top-hypotheses cut goes to the
lowest index (argpartition's pick among equal posteriors there depends on the
whole array, and the tuned version's arrays are a pruned subset); and the swap
model of reconcile/swaps.py, computed densely: every (line, packaged SKU) pair is
scored, but only a pair whose added SKU is a candidate (the camera's
`swap_vision_top` highest-scored, a barcode read, a recent removal; when none of
those names a packaged SKU outside the lines' own, also each line's `swap_fit_top`
pairs of smallest |z| within the z bound) is a named
hypothesis with its weight fit; every other pair counts in the normaliser with its
weight likelihood at the floor. Those rows stay in the arrays (`named` False) with
their real weight fit, so best_with_sku answers a shopper who names such a SKU.
The tuned version must give the same results (see test_scoring_identical.py).
"""
from __future__ import annotations

import math

import numpy as np

from cart_gateway.reconcile.config import ReconcileConfig
from cart_gateway.reconcile.inputs import VisionSummary
from cart_gateway.reconcile.scoring import CatalogueIndex, Scored
from cart_gateway.reconcile.weightbook import WeightBook
from cart_gateway.reconcile.weightindex import z_bound

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
KINDS = ("add", "remove", "swap", "personal", "personal_remove")


def _normal_logpdf(x: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mu) / sd
    return -0.5 * z * z - np.log(sd) - _LOG_SQRT_2PI


def _swap_candidates(vision, cat: CatalogueIndex, known: list[int], recent_out, top_n: int) -> np.ndarray:
    """Per packaged SKU (in catalogue order): may a swap add it?"""
    c = np.zeros(cat.n, dtype=bool)
    if vision is not None and vision.n_frames > 0:
        scored = sorted(((v, s) for s, v in vision.scores.items() if s in cat.idx and v > 0
                         and not cat.by_weight[cat.idx[s]]), key=lambda t: (-t[0], cat.idx[t[1]]))
        for _, s in scored[:top_n]:
            c[cat.idx[s]] = True
    c[known] = True
    for s in recent_out or ():
        if s in cat.idx:
            c[cat.idx[s]] = True
    return c[~cat.by_weight]


def _named_nothing(vision, cat: CatalogueIndex, known: list[int], recent_out, a_i: np.ndarray) -> bool:
    """No packaged SKU outside the lines' SKUs scored above 0, no packaged barcode read, no
    packaged recent removal: the swap candidates then take in the SKUs whose weight fits."""
    named = np.zeros(cat.n, dtype=bool)
    if vision is not None and vision.n_frames > 0:
        for s, v in vision.scores.items():
            if s in cat.idx and v > 0:
                named[cat.idx[s]] = True
        named[a_i] = False
    named[known] = True
    for s in recent_out or ():
        if s in cat.idx:
            named[cat.idx[s]] = True
    return not named[~cat.by_weight].any()


def score(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
          lines: list[dict], personal: list[dict], vision: VisionSummary | None,
          cfg: ReconcileConfig, recent_out=None) -> Scored:
    n = cat.n
    sn = max(cfg.sensor_noise_g, float(noise_g))
    floor = math.log(cfg.weight_lik_floor) if cfg.weight_lik_floor > 0 else -np.inf
    mean, sd = book.mean, book.sd
    evidence = ["weight", "context"]

    # vision factor per SKU (index n = "no product"), mixed with a uniform floor
    if vision is not None and vision.n_frames > 0:
        agg = np.zeros(n + 1)
        for s, v in vision.scores.items():
            i = cat.idx.get(s)
            if i is not None:
                agg[i] = v
        agg[n] = vision.none_score
        rest = max(0.0, 1.0 - float(agg.sum()))
        agg = agg / max(1.0, float(agg.sum())) + rest / (n + 1)
        vis = (1.0 - cfg.vision_floor) * agg + cfg.vision_floor / (n + 1)
        evidence.append("vision")
    else:
        vis = np.full(n + 1, 1.0 / (n + 1))
    logv = np.log(vis)

    # barcode factor: a read is near-certain evidence for its SKU
    logb = np.zeros(n + 1)
    unknown = []
    known = []
    if vision is not None and vision.barcodes:
        hits = [cat.sku_of_barcode(b) for b in vision.barcodes]
        unknown = [b for b, h in zip(vision.barcodes, hits) if h is None]
        known = sorted({cat.idx[h] for h in hits if h is not None})
        if known:
            logb[:] = math.log(cfg.barcode_other)
            logb[known] = 0.0
            evidence.append("barcode")

    parts = []  # (logpost, mu, sd, kind, sku_idx, k, line_pos, aux_idx, named, logpost with the real weight fit)

    def add_part(lp, mu, s, kind, ski, k, line, aux, named=None, lp_fit=None):
        m = len(lp)
        parts.append((lp, mu, s, np.full(m, KINDS.index(kind)), ski, np.full(m, k) if np.isscalar(k) else k,
                      np.full(m, line) if np.isscalar(line) else line, aux if not np.isscalar(aux) else np.full(m, aux),
                      np.ones(m, dtype=bool) if named is None else named, lp if lp_fit is None else lp_fit))

    units = np.flatnonzero(~cat.by_weight)
    produce = np.flatnonzero(cat.by_weight)
    log_n = math.log(n)
    if delta_g > 0:
        for k in range(1, cfg.max_units + 1):
            mu = k * mean[units]
            s = np.sqrt(k * sd[units] ** 2 + sn * sn)
            ll = np.maximum(_normal_logpdf(delta_g, mu, s), floor)
            lp = math.log(cfg.unit_prior_of(k)) - log_n + logv[units] + logb[units] + ll
            add_part(lp, mu, s, "add", units, k, -1, -1)
        if len(produce):
            # any quantity of loose produce: the weight says little, vision names it
            mu = np.full(len(produce), delta_g)
            s = np.full(len(produce), cfg.produce_max_g / math.sqrt(12))
            ll = -math.log(cfg.produce_max_g) if delta_g <= cfg.produce_max_g else floor
            lp = math.log(cfg.prior_produce) - log_n + logv[produce] + logb[produce] + ll
            add_part(lp, mu, s, "add", produce, 1, -1, -1)
        if cfg.prior_personal > 0:
            ll = -math.log(cfg.personal_max_g) if delta_g <= cfg.personal_max_g else floor
            lp = np.array([math.log(cfg.prior_personal) + logv[n] + logb[n] + ll])
            add_part(lp, np.array([delta_g]), np.array([cfg.personal_max_g / math.sqrt(12)]),
                     "personal", np.array([-1]), 1, -1, -1)

    pos = [p for p, ln in enumerate(lines) if ln["status"] == "accepted" and ln["sku"] in cat.idx]
    n_t = len(pos) + len(personal)
    if n_t:
        log_nt = math.log(n_t)
        lpos = np.array(pos, dtype=int)
        li = np.array([cat.idx[lines[p]["sku"]] for p in pos], dtype=int)
        lq = np.array([lines[p]["qty"] for p in pos], dtype=int)
        lbw = np.array([bool(lines[p]["by_weight"]) for p in pos], dtype=bool)
        lw = np.array([float(lines[p]["weight_g"]) for p in pos])
        if len(pos):
            # whole produce lines out
            m = lbw
            if m.any():
                mu = -lw[m]
                s = np.full(int(m.sum()), sn * math.sqrt(2.0))
                ll = np.maximum(_normal_logpdf(delta_g, mu, s), floor)
                lp = -log_nt + logv[li[m]] + logb[li[m]] + ll
                add_part(lp, mu, s, "remove", li[m], 1, lpos[m], -1)
            # k units out of a packaged line
            for k in range(1, cfg.max_units + 1):
                m = ~lbw & (lq >= k)
                if not m.any():
                    break
                mu = -k * mean[li[m]]
                s = np.sqrt(k * sd[li[m]] ** 2 + sn * sn)
                ll = np.maximum(_normal_logpdf(delta_g, mu, s), floor)
                lp = math.log(cfg.unit_prior_of(k)) - log_nt + logv[li[m]] + logb[li[m]] + ll
                add_part(lp, mu, s, "remove", li[m], k, lpos[m], -1)
            # swap: one unit of a packaged line out, one unit of another SKU in (lines x SKUs)
            m = ~lbw
            if cfg.prior_swap > 0 and m.any() and len(units):
                a_i, a_pos = li[m], lpos[m]
                cand = _swap_candidates(vision, cat, known, recent_out, cfg.swap_vision_top)
                mu = mean[units][None, :] - mean[a_i][:, None]
                s = np.sqrt(sd[units][None, :] ** 2 + sd[a_i][:, None] ** 2 + sn * sn)
                if cfg.swap_weight_fallback and _named_nothing(vision, cat, known, recent_out, a_i):
                    # nothing names the added side: every swap pair whose weight fits is named too
                    zb = z_bound(floor, math.sqrt(float(sd[units].min()) ** 2 + float(sd[a_i].min()) ** 2 + sn * sn))
                    fits = (np.abs((delta_g - (mean[units][None, :] - mean[a_i][:, None]))
                                   / np.sqrt(sd[units][None, :] ** 2 + sd[a_i][:, None] ** 2 + sn * sn)) <= zb)
                    fits &= (units[None, :] != a_i[:, None]) & ~cand[None, :]
                    # per line, the swap_fit_top best |z| among them (ties to the lowest index)
                    az = np.where(fits, np.abs((delta_g - mu) / s), np.inf)
                    best = np.argsort(az, axis=1, kind="stable")[:, :cfg.swap_fit_top]
                    top_fits = np.zeros_like(fits)
                    np.put_along_axis(top_fits, best, True, axis=1)
                    named_pair = cand[None, :] | (top_fits & fits)
                else:
                    named_pair = np.broadcast_to(cand[None, :], (len(a_i), len(units)))
                ll = np.maximum(_normal_logpdf(delta_g, mu, s), floor)
                lv = np.log(0.5 * (vis[units][None, :] + vis[a_i][:, None]))
                lb = np.maximum(logb[units][None, :], logb[a_i][:, None])
                same = units[None, :] == a_i[:, None]
                c_swap = math.log(cfg.prior_swap) - log_n - log_nt
                # a SKU that is not a candidate: its weight is not looked at (likelihood at the floor)
                lp = np.where(same, -np.inf, c_swap + lv + lb + np.where(named_pair, ll, floor))
                lp_fit = np.where(same, -np.inf, c_swap + lv + lb + ll)   # a swap for the same SKU is no swap
                shape = lp.shape
                add_part(lp.ravel(), mu.ravel(), s.ravel(), "swap", np.broadcast_to(units[None, :], shape).ravel(),
                         1, np.broadcast_to(a_pos[:, None], shape).ravel(),
                         np.broadcast_to(a_i[:, None], shape).ravel(),
                         np.ascontiguousarray(named_pair).ravel(), lp_fit.ravel())
        if delta_g < 0:
            for p, it in enumerate(personal):
                s = sn * math.sqrt(2.0)
                ll = max(float(_normal_logpdf(delta_g, np.array([-it["weight_g"]]), np.array([s]))[0]), floor)
                lp = -log_nt + logv[n] + ll
                add_part(np.array([lp]), np.array([-it["weight_g"]]), np.array([s]), "personal_remove",
                         np.array([-1]), 1, p, -1)

    if not parts:
        return Scored([], evidence, math.inf, unknown, {})
    cols = [np.concatenate([p[j] for p in parts]) for j in range(10)]
    lp, mu, s, kind, ski, kk, line, aux, named, lp_fit = cols
    z = (delta_g - mu) / s
    top = float(lp.max())
    norm = float(np.exp(lp - top).sum())
    log_z = top + math.log(norm)    # posterior_j = exp(lp_j - log_z)
    post_model = np.exp(lp - top) / norm
    hidden_post = float(post_model[~named].sum())
    # the rows of a SKU that is not a candidate: the posterior its swaps would have with it a
    # candidate (its rows' fit in the normaliser instead of their floor), as best_with_sku reads them
    post = post_model.copy()
    un = np.flatnonzero(~named)
    if len(un):
        top_b = np.full(n, top)
        np.maximum.at(top_b, ski[un], lp_fit[un])
        tb = top_b[ski[un]]
        fit_b = np.bincount(ski[un], weights=np.exp(lp_fit[un] - tb), minlength=n)
        flo_b = np.bincount(ski[un], weights=np.exp(lp[un] - tb), minlength=n)
        norm_b = norm * np.exp(top - top_b) + fit_b - flo_b
        post[un] = np.exp(lp_fit[un] - tb) / norm_b[ski[un]]
    m_top = max(cfg.ask_top_k, 5)
    ranked = np.where(named, post, -1.0)       # only named hypotheses are ranked
    order = np.argsort(-ranked, kind="stable")[:m_top]
    order = order[ranked[order] >= 0]
    product = (kind != KINDS.index("personal")) & named
    best_fit = float(np.abs(z[product]).min()) if product.any() else math.inf
    hyps = []
    for j in order:
        kd = KINDS[int(kind[j])]
        h = {"kind": kd, "sku": cat.skus[int(ski[j])] if ski[j] >= 0 else None, "k": int(kk[j]),
             "target": _target(kd, int(line[j]), lines, personal), "posterior": float(post[j]), "mu_g": round(float(mu[j]), 3),
             "sd_g": round(float(s[j]), 3), "z": round(float(z[j]), 3)}
        if kd == "swap":
            h["remove_sku"] = cat.skus[int(aux[j])]
        hyps.append(h)
    arrays = {"post": post, "kind": kind, "ski": ski, "k": kk, "line": line, "aux": aux, "z": z, "mu": mu, "sd": s,
              "lines": lines, "personal": personal, "log_z": log_z, "named": named, "hidden_post": hidden_post}
    return Scored(hyps, evidence, best_fit, unknown, arrays)




def _target(kind: str, pos: int, lines: list[dict], personal: list[dict]) -> str | None:
    """The basket line (or personal item) a removal / swap hypothesis acts on."""
    if kind in ("remove", "swap"):
        return lines[pos]["line_id"]
    if kind == "personal_remove":
        return personal[pos]["pid"]
    return None
