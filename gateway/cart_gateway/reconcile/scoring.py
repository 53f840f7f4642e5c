"""Fusion of weight, vision, barcode and basket context into a posterior.

posterior(h) ∝ prior(h | basket) × vision(h) × barcode(h) × weight_lik(delta | h)

Vectorised with numpy, so one weight event costs a few array operations whatever the
catalogue size (docs/reconciliation.md §2, §8). The k-unit adds are looked up in the weight
index (weightindex.py): only the SKUs whose weight can fit are scored one by one, the rest
counted in at the likelihood floor. Swaps (swaps.py) add only a candidate SKU (the camera's
top few, a barcode read, a recent removal; when none names one, each line's best weight fits
too); the other pairs are counted in closed form.
"""
from __future__ import annotations

import math

import numpy as np

from . import fitkernel
from .answerfit import best_with_sku
from .catindex import KINDS, LOG_SQRT_2PI, CatalogueIndex, Scored, normal_logpdf, target_of
from .config import ReconcileConfig
from .context import BasketArrays, unit_log_priors
from .factors import barcode_factor, log_vision, units_sum, vision_derived, vision_factor
from .inputs import VisionSummary
from .movescores import STATS, MovementScores
from .swaps import camera_named_nothing, hidden_weight, swap_candidates, swap_fit_bound, weight_fit_pairs
from .weightbook import WeightBook
from .weightindex import WeightIndex, first_unit_not_in, hidden_max, special_units, top_with_ties, z_bound

__all__ = ["KINDS", "STATS", "CatalogueIndex", "MovementScores", "Scored", "best_with_sku", "score"]

PRUNE_MIN_PAIRS = 4000          # fewer k-unit adds (K x packaged SKUs) than this: scoring all is cheaper
HIDDEN_MAX_POSTERIOR = 1e-10    # no left-out add may reach this posterior
HIDDEN_MAX_MASS = 1e-16         # without a floor: all left-out adds together, relative to the best


def score(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
          lines: list[dict], personal: list[dict], vision: VisionSummary | None,
          cfg: ReconcileConfig, recent_out: list[str] | None = None, basket: BasketArrays | None = None) -> Scored:
    """`recent_out`: SKUs taken out of this basket moments ago (swap candidates). `basket`:
    BasketArrays.of(lines, cat), when the caller has it already."""
    basket = BasketArrays.of(lines, cat) if basket is None else basket
    sc = _score(delta_g, noise_g, cat, book, lines, basket, personal, vision, cfg, recent_out, prune=True)
    if sc is None:       # leaving adds out could change this event's result: score every add
        STATS["fallback"] += 1
        sc = _score(delta_g, noise_g, cat, book, lines, basket, personal, vision, cfg, recent_out, prune=False)
    return sc


def _score(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
           lines: list[dict], basket: BasketArrays, personal: list[dict], vision: VisionSummary | None,
           cfg: ReconcileConfig, recent_out, prune: bool) -> Scored | None:
    # Speed notes (results are those of a dense computation of the same model to float
    # precision, see gateway/tests/test_scoring_identical.py): every hypothesis block is
    # written straight into preallocated columns (no per-block np.full / concatenate), the
    # k = 1..K unit blocks are one K x U array, a factor that is the same for every
    # hypothesis (uniform vision, no barcode) stays a scalar instead of an array, and
    # k-unit adds that cannot fit the weight are left out (counted at the floor). Returns
    # None when `prune` was asked for but could change the result.
    n = cat.n
    sn = max(cfg.sensor_noise_g, float(noise_g))
    sn2 = sn * sn
    floor = math.log(cfg.weight_lik_floor) if cfg.weight_lik_floor > 0 else -np.inf
    mean, sd = book.mean, book.sd
    evidence = ["weight", "context"]

    # vision factor per SKU (index n = "no product"), mixed with a uniform floor
    vis = vision_factor(vision, cat, cfg)
    if vis is not None:
        evidence.append("vision")
        logv = log_vision(vis)
        uniform = False
        lv_swap = None
    else:
        u = 1.0 / (n + 1)
        vis = None
        logv = float(np.log(np.array([u]))[0])      # the same for every SKU: a scalar
        lv_swap = float(np.log(np.array([0.5 * (u + u)]))[0])
        uniform = True

    # barcode factor: a read is near-certain evidence for its SKU
    logb, known, unknown = barcode_factor(vision, cat, cfg)
    if logb is None:
        logb = 0.0                                   # scalar unless a known barcode was read
    else:
        evidence.append("barcode")
    barcode = not isinstance(logb, float)

    def lv_at(ix):
        return logv if uniform else logv[ix]

    def lb_at(ix):
        return logb[ix] if barcode else 0.0

    units, produce = cat.units, cat.produce
    nu, npr = len(units), len(produce)
    K = cfg.max_units
    log_n = math.log(n)

    # ---- block sizes, so every column is allocated once
    n_t = len(basket) + len(personal)
    n_add = K * nu if delta_g > 0 else 0
    n_prod = npr if delta_g > 0 else 0
    n_pers = 1 if delta_g > 0 and cfg.prior_personal > 0 else 0
    add_pruned = False              # some k-unit adds left out (counted at the floor)
    if n_add and prune and n_add >= PRUNE_MIN_PAIRS:
        sw = WeightIndex.of(cat, book)
        s_lo_add = math.sqrt(book.min_sd(units) ** 2 + sn2)     # the smallest sd of any add
        zb_add = z_bound(floor, s_lo_add)
        lo, hi = sw.unit_windows(delta_g, K, sn2, sd, zb_add)
        # the SKUs the vision or a barcode scored are always kept: the hidden ones then all
        # have the same (base) vision and barcode factor; so are the ones learning moved far
        spec = np.union1d(special_units(vision, cat, known), sw.moved)   # moved: not in the windows
        er = ec = np.zeros(0, dtype=np.int64)
        if len(spec):
            er, ec = np.repeat(np.arange(K), len(spec)), np.tile(spec, K)
            out = sw.outside(lo, hi, er, ec)
            er, ec = er[out], ec[out]
        n_kept = int((hi - lo).sum()) + len(er)
        add_pruned = n_kept < n_add
        n_add = n_kept
    n_rw = n_sw = n_pr = n_rk = n_pk = 0
    cand = np.zeros(0, dtype=np.int64)   # the SKUs a swap may add (swaps.py)
    fit_r = fit_c = np.zeros(0, dtype=np.int64)   # other swap pairs scored: the weight fallback
    if n_t:
        lpos, li, lq, lbw, lw = basket.pos, basket.sku_ix, basket.qty, basket.by_weight, basket.weight_g
        if len(basket):
            n_rw = int(lbw.sum())
            # (k, line) for k units out of a packaged line, k-major: the order of one block per k
            rk_k, rk_l = np.nonzero((lq[None, :] >= np.arange(1, K + 1)[:, None]) & ~lbw[None, :])
            n_rk = len(rk_l)
            pk = ~lbw
            n_pk = int(pk.sum())
            if cfg.prior_swap > 0 and n_pk and nu:
                a_i, a_pos = li[pk], lpos[pk]
                cand = swap_candidates(vision, cat, known, recent_out, cfg.swap_vision_top)
                sw_rows = np.repeat(np.arange(n_pk), len(cand))
                sw_cols = np.tile(cand, n_pk)
                if cfg.swap_weight_fallback and camera_named_nothing(vision, cat, known, recent_out, a_i):
                    # nothing names the added side: the swap pairs whose weight fits are scored too
                    fit_r, fit_c = weight_fit_pairs(delta_g, a_i, cand, cat, book, sn2,
                                                    swap_fit_bound(floor, book, units, a_i, sn2), cfg.swap_fit_top)
                    sw_rows, sw_cols = np.concatenate((sw_rows, fit_r)), np.concatenate((sw_cols, fit_c))
                    STATS["swap_weight_fallback"] += 1
                n_sw = len(sw_rows)
        if delta_g < 0:
            n_pr = len(personal)
    total = n_add + n_prod + n_pers + n_rw + n_rk + n_sw + n_pr
    if total == 0:
        STATS["full"] += 1
        return Scored([], evidence, math.inf, unknown, {})
    lp = np.empty(total)
    mu = np.empty(total)
    s = np.empty(total)
    z = np.empty(total)
    kind = np.empty(total, dtype=np.int64)
    dk = np.empty(total, dtype=np.int64)   # each hypothesis' position in the full (unpruned) layout: breaks ties
    ski = np.empty(total, dtype=np.int64)
    kk = np.empty(total, dtype=np.int64)
    line = np.empty(total, dtype=np.int64)
    aux = np.empty(total, dtype=np.int64)
    at = 0
    personal_at = -1
    dense_shift = [0]      # full layout position minus array position, for the blocks kept whole

    def meta(a, b, kd, sk, k, ln, ax, dpos=None):
        dk[a:b] = np.arange(a, b) + dense_shift[0] if dpos is None else dpos
        kind[a:b] = KINDS.index(kd)
        ski[a:b] = sk
        kk[a:b] = k
        line[a:b] = ln
        aux[a:b] = ax

    def gauss(a, b, m_, s_):
        """z and the floored weight log-likelihood of hypotheses a..b (mu, sd already in place)."""
        zz = np.subtract(delta_g, m_, out=z[a:b].reshape(np.shape(m_)))
        np.divide(zz, s_, out=zz)
        return np.maximum(-0.5 * zz * zz - np.log(s_) - LOG_SQRT_2PI, floor)

    ck_units = unit_log_priors(cfg, K, n)
    add_w = None                    # per k: the kept adds' summed vision x barcode weight (the kernel's)
    if n_add and add_pruned and fitkernel.ready():
        # the same columns from one compiled loop (fitkernel.add_block): the window pairs, then the
        # special SKUs outside them; every SKU not in `spec` has the base factors
        b0 = first_unit_not_in(cat, spec)
        if barcode:     # a kept add's weight in the hidden adds' sum: vision x barcode factor
            def w_of(ix):
                return (u if uniform else vis[ix]) * np.where(logb[ix] == 0.0, 1.0, cfg.barcode_other)
        else:
            def w_of(ix):
                return (u if uniform else vis[ix]) + np.zeros(len(ix))
        at_b0 = np.array([max(b0, 0)])
        cnt_k, add_w = fitkernel.add_block(
            delta_g, sn2, floor, lo, hi, sw, ck_units, lv_at(at_b0)[0] if not uniform else logv,
            lb_at(at_b0)[0] if barcode else 0.0, float(w_of(at_b0)[0]), spec,
            lv_at(spec) + np.zeros(len(spec)), lb_at(spec) + np.zeros(len(spec)), w_of(spec),
            er, ec, mu, s, z, lp, dk, ski, kk)
        kind[:n_add] = KINDS.index("add")
        line[:n_add] = -1
        aux[:n_add] = -1
        add_r = np.repeat(np.arange(K), cnt_k)          # (rows only: counted per k below)
        at = n_add
        dense_shift[0] = K * nu - n_add
    elif n_add and add_pruned:
        # the k-unit adds that can fit (or that the camera named), in the full block's order
        add_r, add_c = sw.pairs(lo, hi, n)
        add_r, add_c = np.concatenate((add_r, er)), np.concatenate((add_c, ec))
        ix = add_c
        kf = (add_r + 1).astype(float)
        np.multiply(kf, mean[ix], out=mu[:n_add])
        np.sqrt(kf * sd[ix] ** 2 + sn2, out=s[:n_add])
        ll = gauss(0, n_add, mu[:n_add], s[:n_add])
        lp[:n_add] = ck_units[add_r] + lv_at(ix) + lb_at(ix) + ll
        meta(0, n_add, "add", ix, add_r + 1, -1, -1, add_r * nu + cat.unit_pos[ix])
        at = n_add
        dense_shift[0] = K * nu - n_add
    elif n_add:
        # k = 1..K units of one packaged SKU: one K x U block, rows in k order
        ks = np.arange(1, K + 1, dtype=float)[:, None]
        m2 = np.multiply(ks, mean[units][None, :], out=mu[:n_add].reshape(K, nu))
        sdu2 = sd[units] ** 2
        s2 = np.sqrt(ks * sdu2[None, :] + sn2, out=s[:n_add].reshape(K, nu))
        ll = gauss(0, n_add, m2, s2)
        ck = ck_units[:, None]
        lp[:n_add].reshape(K, nu)[...] = ck + lv_at(units) + lb_at(units) + ll
        meta(0, n_add, "add", np.tile(units, K), np.repeat(np.arange(1, K + 1), nu), -1, -1)
        at = n_add
    if n_prod:
        # any quantity of loose produce: the weight says little, vision names it
        a, b = at, at + n_prod
        mu[a:b] = delta_g
        s[a:b] = cfg.produce_max_g / math.sqrt(12)
        np.divide(np.subtract(delta_g, mu[a:b]), s[a:b], out=z[a:b])
        ll = -math.log(cfg.produce_max_g) if delta_g <= cfg.produce_max_g else floor
        lp[a:b] = math.log(cfg.prior_produce) - log_n + lv_at(produce) + lb_at(produce) + ll
        meta(a, b, "add", produce, 1, -1, -1)
        at = b
    if n_pers:
        ll = -math.log(cfg.personal_max_g) if delta_g <= cfg.personal_max_g else floor
        lvn = logv if uniform else logv[n]
        lbn = logb[n] if barcode else 0.0
        lp[at:at + 1] = np.array([math.log(cfg.prior_personal) + lvn + lbn + ll])
        mu[at] = delta_g
        s[at] = cfg.personal_max_g / math.sqrt(12)
        np.divide(np.subtract(delta_g, mu[at:at + 1]), s[at:at + 1], out=z[at:at + 1])
        meta(at, at + 1, "personal", -1, 1, -1, -1)
        personal_at = at
        at += 1
    c_swap = 0.0
    if n_t:
        log_nt = math.log(n_t)
        c_swap = math.log(cfg.prior_swap) - log_n - log_nt if cfg.prior_swap > 0 else 0.0
        if n_rw:
            # whole produce lines out
            a, b = at, at + n_rw
            ix = li[lbw]
            np.negative(lw[lbw], out=mu[a:b])
            s[a:b] = sn * math.sqrt(2.0)
            ll = gauss(a, b, mu[a:b], s[a:b])
            lp[a:b] = -log_nt + lv_at(ix) + lb_at(ix) + ll
            meta(a, b, "remove", ix, 1, lpos[lbw], -1)
            at = b
        if n_rk:
            # k units out of a packaged line
            a, b = at, at + n_rk
            ix = li[rk_l]
            kf = (rk_k + 1).astype(float)
            np.multiply(-kf, mean[ix], out=mu[a:b])
            np.sqrt(kf * sd[ix] ** 2 + sn2, out=s[a:b])
            ll = gauss(a, b, mu[a:b], s[a:b])
            c_k = unit_log_priors(cfg, K, n_t)
            lp[a:b] = c_k[rk_k] + lv_at(ix) + lb_at(ix) + ll
            meta(a, b, "remove", ix, rk_k + 1, lpos[rk_l], -1)
            at = b
        if n_sw:
            # swap: one unit of a packaged line (ra) out, one unit of a candidate SKU (cb) in
            a, b = at, at + n_sw
            ra, cb = a_i[sw_rows], sw_cols
            np.subtract(mean[cb], mean[ra], out=mu[a:b])
            s2 = s[a:b]
            np.add(sd[cb] ** 2, sd[ra] ** 2, out=s2)
            np.add(s2, sn2, out=s2)
            np.sqrt(s2, out=s2)
            ll = gauss(a, b, mu[a:b], s2)
            wv = None if uniform else 0.5 * (vis[cb] + vis[ra])
            lv = lv_swap if uniform else np.log(wv)
            lb = np.maximum(logb[cb], logb[ra]) if barcode else 0.0
            lp[a:b] = c_swap + lv + lb + ll
            same = cb == ra
            lp[a:b][same] = -np.inf          # a swap for the same SKU is no swap
            meta(a, b, "swap", cb, 1, a_pos[sw_rows], ra, a + dense_shift[0] + sw_rows * nu + cat.unit_pos[cb])
            at = b
        if cfg.prior_swap > 0 and n_pk and nu:
            dense_shift[0] += n_pk * nu - n_sw     # the dense layout holds every (line, SKU) pair
        if n_pr:
            lvn = logv if uniform else logv[n]
            for p, it in enumerate(personal):
                sp = sn * math.sqrt(2.0)
                ll = max(float(normal_logpdf(delta_g, np.array([-it["weight_g"]]), np.array([sp]))[0]), floor)
                lp[at] = -log_nt + lvn + ll
                mu[at] = -it["weight_g"]
                s[at] = sp
                np.divide(np.subtract(delta_g, mu[at:at + 1]), s[at:at + 1], out=z[at:at + 1])
                meta(at, at + 1, "personal_remove", -1, 1, p, -1)
                at += 1

    top = float(lp.max())
    post = np.exp(lp - top)
    norm = float(post.sum())
    lp_hidden = -np.inf             # the best any left-out hypothesis can score
    zb_min = math.inf               # every left-out hypothesis has |z| beyond this
    if add_pruned:
        visv = vis if not uniform else np.full(n + 1, u) if barcode else None   # None: u everywhere
        ll_max = floor if floor > -np.inf else -0.5 * zb_add * zb_add - math.log(s_lo_add) - LOG_SQRT_2PI
        if visv is None:
            lv_h = math.log(u) if len(spec) < nu else -np.inf
        else:           # the best vision factor of a left-out add: once per burst and spec
            lv_h = vision_derived(visv, ("hidden_max", tuple(spec.tolist())), lambda: hidden_max(visv, cat, spec))
        lb_h = math.log(cfg.barcode_other) if barcode else 0.0
        lp_hidden = max(lp_hidden, float(ck_units.max()) + lv_h + lb_h + ll_max)
        zb_min = min(zb_min, zb_add)
        if lp_hidden - top > math.log(HIDDEN_MAX_POSTERIOR):
            return None
        if floor > -np.inf:
            # a left-out add sits at the floor: exp(ck_k + floor - top) x its vision x barcode factor
            if visv is None:          # no camera, no barcode: every factor is u
                w_all = nu * u
                w_kept = np.bincount(add_r, minlength=K) * u
            else:
                if barcode:     # every packaged SKU's factor times barcode_other, but the ones read
                    ku = np.array([i for i in known if cat.unit_pos[i] >= 0], dtype=np.int64)
                    w_all = (cfg.barcode_other * vision_derived(visv, "units_sum", lambda: units_sum(visv, cat))
                             + (1.0 - cfg.barcode_other) * float(visv[ku].sum()))
                else:
                    w_all = vision_derived(visv, "units_sum", lambda: units_sum(visv, cat))
                if add_w is not None:   # summed by the kernel, in the pairs' order (as bincount does)
                    w_kept = add_w
                else:
                    wk = visv[add_c] if not barcode else visv[add_c] * np.where(logb[add_c] == 0.0, 1.0,
                                                                                 cfg.barcode_other)
                    w_kept = np.bincount(add_r, weights=wk, minlength=K)
            norm += float(np.sum(np.exp(ck_units + floor - top) * (w_all - w_kept)))
        elif (K * nu - n_add) * math.exp(lp_hidden - top) > HIDDEN_MAX_MASS:
            return None
    swapping = cfg.prior_swap > 0 and n_pk > 0 and nu > 0
    hidden = 0.0            # the posterior of every swap to a SKU that is not a candidate
    if swapping and floor > -np.inf:
        kn = None
        if barcode:
            kn = np.zeros(n + 1, dtype=bool)
            kn[known] = True
        w_hid = hidden_weight(a_i, cand, cat, None if uniform else vis, 1.0 / (n + 1), kn, cfg.barcode_other,
                              (fit_r, fit_c))
        hidden = math.exp(c_swap + floor - top) * w_hid
        norm += hidden
    post /= norm
    m_top = max(cfg.ask_top_k, 5)
    if len(post) > 4 * m_top:   # partial sort first; ties (also at the cut) go to the lowest index
        cut = np.partition(post, len(post) - m_top)[len(post) - m_top]
        order = top_with_ties(post, cut, m_top, dk)
    else:
        order = np.lexsort((dk, -post))[:m_top]
    az = np.abs(z)
    if personal_at >= 0:
        az[personal_at] = math.inf          # best fit is over product hypotheses only
    best_fit = float(az.min()) if total > (personal_at >= 0) else math.inf
    if add_pruned and (len(order) < m_top or lp[order[-1]] <= lp_hidden + 1e-9 or best_fit > zb_min):
        return None          # a left-out hypothesis could be among the top ones or the best fit
    STATS["pruned" if add_pruned else "full"] += 1
    hyps = []
    for j in order:
        kd = KINDS[int(kind[j])]
        h = {"kind": kd, "sku": cat.skus[int(ski[j])] if ski[j] >= 0 else None, "k": int(kk[j]),
             "target": target_of(kd, int(line[j]), lines, personal), "posterior": float(post[j]), "mu_g": round(float(mu[j]), 3),
             "sd_g": round(float(s[j]), 3), "z": round(float(z[j]), 3)}
        if kd == "swap":
            h["remove_sku"] = cat.skus[int(aux[j])]
        hyps.append(h)
    swap = None
    # the book's figures as scored: a kept score may be asked again after the book learned
    snap = book.snapshot() if swapping or add_pruned else None
    if swapping:   # what best_with_sku needs to score a swap to a SKU that was not a candidate
        swap = {"delta": delta_g, "sn2": sn2, "floor": floor, "c_swap": c_swap, "top": top, "norm": norm,
                "mean": snap[0], "sd": snap[1], "vis": vis, "lv_swap": lv_swap,
                "logb": logb if barcode else None, "a_i": a_i, "a_pos": a_pos, "cand": cand,
                "fit_r": fit_r, "fit_c": fit_c}
    adds = None
    if add_pruned:   # what best_with_sku needs to score a left-out add again
        adds = {"delta": delta_g, "sn2": sn2, "floor": floor, "ck": ck_units, "top": top, "norm": norm,
                "mean": snap[0], "sd": snap[1], "logv": logv, "logb": logb if barcode else None}
    # log_z: the log normaliser, posterior_j = exp(lp_j - log_z) (score_multi merges on this scale)
    arrays = {"adds": adds, "post_scale": 1.0, "post": post, "kind": kind, "ski": ski, "k": kk, "line": line, "aux": aux, "z": z, "mu": mu, "sd": s,
              "lines": lines, "personal": personal, "swap": swap, "log_z": top + math.log(norm),
              "hidden_post": hidden / norm}
    return Scored(hyps, evidence, best_fit, unknown, arrays)

