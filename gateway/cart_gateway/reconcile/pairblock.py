"""The two-product pair block of multi.score_multi: rows (A, k), k units of one of the camera's
top SKUs, times columns B, one unit of any packaged SKU; each pair's log score, their total mass
and the best few.

Dense (`_pairs_dense`: every (A, k) x B cell; the comparison tests' reference and the small
catalogue's path) or indexed (`_pairs_indexed`: only the pairs whose weight can fit, the camera's
and the barcode's SKUs, and each row's first tied SKUs are scored one by one; every other pair
sits at the likelihood floor with the base factors and is counted in closed form). The camera's
top units come from its few scores (`_top_units_of`). docs/reconciliation.md §2, §8.
"""
from __future__ import annotations

import math

import numpy as np

from .catindex import CatalogueIndex
from .factors import barcode_factor
from .inputs import VisionSummary
from .swaps import weight_fit_pairs
from .weightindex import WeightIndex, member_sorted, special_units, top_with_ties, z_bound

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _logsumexp(x: np.ndarray) -> float:
    """log(sum(exp(x))): np.logaddexp.reduce is a sequential loop (~10x slower on 50k pairs)."""
    if not len(x):
        return -math.inf
    m = float(np.max(x))
    if m == -math.inf:
        return m
    return m + math.log(float(np.sum(np.exp(x - m))))


def _logpdf(x, mu, sd):
    z = (x - mu) / sd
    return -0.5 * z * z - np.log(sd) - _LOG_SQRT_2PI


PAIR_PRUNE_MIN_CELLS = 20000   # fewer (A, k) x B cells (~830 packaged SKUs) than this: the dense block


def _top_units(v: np.ndarray, units: np.ndarray, m: int) -> np.ndarray:
    """The m packaged SKUs the camera scored highest, ties to the lowest index (as a stable
    argsort of -v would give), without sorting the whole catalogue."""
    if len(v) <= m:
        return units[np.argsort(-v, kind="stable")]
    cut = np.partition(v, len(v) - m)[len(v) - m]
    above = np.flatnonzero(v > cut)
    above = above[np.lexsort((above, -v[above]))]
    ties = np.flatnonzero(v == cut)[: m - len(above)]
    return units[np.concatenate((above, ties))]


def _top_units_of(vis: np.ndarray, cat: CatalogueIndex, vision: VisionSummary, m: int) -> np.ndarray:
    """_top_units over the packaged SKUs from the camera's few scores: every SKU the camera did
    not score has the same factor (factors._vision_factor), and none scores below it, so the
    top m are the scored ones above it, then the lowest-indexed of the rest. O(scores), not
    O(catalogue); the full partition when scored SKUs make up most of the catalogue."""
    units = cat.units
    sc = np.array(sorted({i for s in vision.scores if (i := cat.idx.get(s)) is not None
                          and cat.unit_pos[i] >= 0}), dtype=np.int64)
    if len(sc) + m >= len(units):
        return _top_units(vis[units], units, m)
    head = units[: len(sc) + 1]
    base = vis[head[~member_sorted(head, sc)][0]]          # an unscored packaged SKU's factor
    v = vis[sc]
    if np.any(v < base):        # not the shape factors gives: the full partition
        return _top_units(vis[units], units, m)
    above = sc[v > base]
    above = above[np.lexsort((above, -vis[above]))]
    if len(above) >= m:
        return above[:m]
    rest = units[: m + len(above)]
    return np.concatenate((above, rest[~member_sorted(rest, np.sort(above))][: m - len(above)]))


def _pick(lp: np.ndarray, keep: int, dense_pos: np.ndarray | None = None) -> np.ndarray:
    """Indices of the `keep` largest finite lp, best first, ties to the lowest position in the
    dense block (`dense_pos`, default the index), so the dense and the indexed block agree."""
    if len(lp) > keep:
        cut = np.partition(lp, len(lp) - keep)[len(lp) - keep]
        best = top_with_ties(lp, cut, keep, dense_pos)
    else:
        cand = np.arange(len(lp))
        best = cand[np.lexsort((cand if dense_pos is None else dense_pos[cand], -lp[cand]))][:keep]
    return best[np.isfinite(lp[best])]


def _pairs_dense(delta_g, sn, floor, units, mean, sd, a_r, k_r, c_r, top, logv, logb, keep, cap=0, always=None):
    """Every (A, k) x B pair: (log of their total mass, the best `keep` as (row, B, mu, sd, lp)).
    `cap` (add2_fit_top): per row only the `cap` best |z| B (ties to the lowest position) and
    the `always` SKUs (camera- or barcode-scored, the top set) have their weight looked at;
    every other pair's likelihood is the floor."""
    mu = k_r[:, None] * mean[a_r][:, None] + mean[units][None, :]
    s = np.sqrt(k_r[:, None] * sd[a_r][:, None] ** 2 + sd[units][None, :] ** 2 + sn * sn)
    ll = np.maximum(_logpdf(delta_g, mu, s), floor)
    if cap:
        kept = np.isin(units, always)
        az = np.where(kept[None, :], np.inf, np.abs((delta_g - mu) / s))
        if cap < az.shape[1]:     # per row the cap smallest |z|, ties to the lowest position
            kth = np.partition(az, cap - 1, axis=1)[:, cap - 1:cap]
            named = az < kth
            tie = az == kth
            named |= tie & (np.cumsum(tie, axis=1) <= cap - named.sum(axis=1, keepdims=True))
            ll = np.where(named | kept[None, :], ll, floor)
    lp = (c_r[:, None] + logv[units][None, :] + np.maximum(logb[a_r][:, None], logb[units][None, :]) + ll)
    # A == B is a k+1 units hypothesis; {A, B} both in the top set with k=1: count the pair once
    in_top = np.isin(units, top)
    bad = (units[None, :] == a_r[:, None]) | ((k_r[:, None] == 1) & in_top[None, :] & (units[None, :] < a_r[:, None]))
    lp = np.where(bad, -np.inf, lp).ravel()
    best = []
    for j in _pick(lp, keep):
        r, c = divmod(int(j), len(units))
        best.append((r, int(units[c]), float(mu[r, c]), float(s[r, c]), float(lp[j])))
    return _logsumexp(lp), best


def _pairs_indexed(delta_g, sn, floor, cat, book, vision, cfg, a_r, k_r, c_r, top, logv, logb, keep):
    """The pairs whose weight can fit (the weight index), plus those naming a SKU the camera
    or a barcode scored, scored one by one; every other pair sits at the likelihood floor with
    the base vision and barcode factor, so each row's rest is (count) x one value. None when
    that could change the result (no floor to count the rest at)."""
    if floor == -np.inf:
        return None
    units, n = cat.units, cat.n
    mean, sd = book.mean, book.sd
    sn2 = sn * sn
    sw = WeightIndex.of(cat, book)
    var_a = k_r * sd[a_r] ** 2 + sn2
    zb = z_bound(floor, math.sqrt(book.min_sd(units) ** 2 + float(var_a.min())))
    spec = special_units(vision, cat, barcode_factor(vision, cat, cfg)[1])
    R = len(a_r)
    kept = None
    if cfg.add2_fit_top:      # per row the add2_fit_top best |z| B by weight; the rest at the floor
        rows, cols, er, ec, kept, extra = _cap_rows(delta_g, sn2, cat, book, zb, spec, top, a_r, k_r,
                                                    cfg.add2_fit_top)
    else:
        lo, hi = sw.windows(delta_g, -(k_r * mean[a_r]), var_a, sd, zb)
        rows, cols = sw.pairs(lo, hi, n)
        # always scored: the special SKUs and the pairs the dense block excludes (kept at -inf)
        extra = np.unique(np.concatenate((spec, top, sw.moved)))     # moved: not in the windows
        er, ec = np.repeat(np.arange(R), len(extra)), np.tile(extra, R)
        out = sw.outside(lo, hi, er, ec)
        er, ec = er[out], ec[out]
    # the rest of each row sits at the floor with the base factors (any packaged SKU not
    # special, not in the top set): all tied. Its first `keep` in catalogue order are scored
    # too, so whatever the dense block would pick among those ties is here.
    # (the packaged SKUs not in `extra`, in catalogue order: the first keep + 64 of them, O(extra))
    head = units[: len(extra) + keep + 64]
    base = head[~member_sorted(head, extra)]
    if not len(base):
        return None
    first = base[: keep + 64]
    fr, fc = np.repeat(np.arange(R), len(first)), np.tile(first, R)
    if kept is None:
        fo = sw.outside(lo, hi, fr, fc).reshape(R, len(first))
    else:
        fo = ~member_sorted(fr * n + fc, kept).reshape(R, len(first))     # kept is sorted: binary search
    take = fo & (np.cumsum(fo, axis=1) <= keep)
    n_taken = take.sum(axis=1)
    n_in_row = np.bincount(rows, minlength=R) + np.bincount(er, minlength=R) + n_taken
    if np.any((n_taken < keep) & (n_in_row < len(units))):
        return None          # a row's ties could not be filled from the first SKUs: dense block
    take = take.ravel()
    rows, cols = np.concatenate((rows, er, fr[take])), np.concatenate((cols, ec, fc[take]))
    # per-row parts computed once per row, in place (the same floating-point operations, in
    # the same order, as the dense block: results equal to the bit)
    mu = (k_r * mean[a_r])[rows]
    mu += mean[cols]
    s = (k_r * sd[a_r] ** 2)[rows]
    sb = sd[cols]
    sb *= sb
    s += sb
    s += sn2
    np.sqrt(s, out=s)
    ll = np.subtract(delta_g, mu, out=sb)       # z, then the floored log-likelihood (_logpdf)
    ll /= s
    zz = ll * -0.5
    zz *= ll
    zz -= np.log(s, out=ll)
    zz -= _LOG_SQRT_2PI
    np.maximum(zz, floor, out=zz)
    if kept is not None:        # the rest's first SKUs may be capped-out window pairs: at the floor
        zz[len(zz) - int(take.sum()):] = floor
    lp = c_r[rows]
    lp += logv[cols]
    if logb.flags.writeable:        # a barcode was read (else logb is the flat zeros: adds nothing)
        lp += np.maximum(logb[a_r[rows]], logb[cols])
    lp += zz
    # the pairs the dense block excludes (B == A; {A, B} both in the top set counted once) all
    # have B in the top set: only those few are tested
    top_mask = np.zeros(n, dtype=bool)
    top_mask[top] = True
    t = np.flatnonzero(top_mask[cols])
    ar, ct = a_r[rows[t]], cols[t]
    lp[t[(ct == ar) | ((k_r == 1)[rows[t]] & (ct < ar))]] = -np.inf
    b0 = int(base[0])
    lp_h = c_r + logv[b0] + np.maximum(logb[a_r], logb[b0]) + floor
    n_h = len(units) - n_in_row
    if len(lp) > keep:     # the dense positions (tie order) only of the pairs at or above the cut
        cut = np.partition(lp, len(lp) - keep)[len(lp) - keep]
        sel = np.flatnonzero(lp >= cut)
        best = sel[top_with_ties(lp[sel], cut, keep, rows[sel] * len(units) + cat.unit_pos[cols[sel]])]
        best = best[np.isfinite(lp[best])]
    else:
        best = _pick(lp, keep, rows * len(units) + cat.unit_pos[cols])
    with np.errstate(divide="ignore"):
        mass = np.logaddexp(_logsumexp(lp), _logsumexp(lp_h + np.log(n_h)))
    return float(mass), [(int(rows[j]), int(cols[j]), float(mu[j]), float(s[j]), float(lp[j])) for j in best]


def line_pairs(li, mean, sd, sn2, delta, floor, c0, log_n1, logv, logb, keep):
    """`remove2` over the pairs i < j of packaged basket lines (catalogue indices `li`): (log of
    their total mass, the best `keep` as (i, j, mu, sd, lp)). Two lines of one SKU are no pair
    (a k = 2 removal). pairkernel.line_pairs is this as one compiled loop."""
    ii, jj = np.triu_indices(len(li), 1)
    a_i, b_i = li[ii], li[jj]
    mu = -(mean[a_i] + mean[b_i])
    s = np.sqrt(sd[a_i] ** 2 + sd[b_i] ** 2 + sn2)
    ll = np.maximum(_logpdf(delta, mu, s), floor)
    lp = c0 + logv[a_i] + logv[b_i] + log_n1 + np.maximum(logb[a_i], logb[b_i]) + ll
    lp = np.where(a_i != b_i, lp, -np.inf)
    best = _pick(lp, keep)      # a partition, not a sort of every pair (~14,000 at 170 lines)
    return _logsumexp(lp), [(int(ii[j]), int(jj[j]), float(mu[j]), float(s[j]), float(lp[j])) for j in best]


def _cap_rows(delta_g, sn2, cat, book, zb, spec, top, a_r, k_r, cap):
    """add2_fit_top: per row the `cap` pairs of smallest |z| <= zb (ties to the lowest unit
    position), found by swaps.weight_fit_pairs' narrowed windows (not every window pair), not
    the always-scored SKUs (camera- or barcode-scored, the top set), which come back whole as
    (er, ec). Also the kept pairs' keys (row x n + B, sorted) and the always-scored SKUs."""
    n, R = cat.n, len(a_r)
    always = np.union1d(spec, top)
    rows, cols = weight_fit_pairs(delta_g, a_r, always, cat, book, sn2, zb, cap, add_k=k_r)
    er, ec = np.repeat(np.arange(R), len(always)), np.tile(always, R)
    return rows, cols, er, ec, np.sort(rows * n + cols), always
