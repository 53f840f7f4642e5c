"""swaps.weight_fit_pairs' search as one compiled loop (numba): per row, the `top_k` SKUs b
of smallest |z| <= zb, ties to the lowest unit position.

The numpy version enumerates every pair in a row's window (narrowed first, then widened)
and partitions them: ~20 array passes per call. Here each row walks its band's sorted means
outward from the row's centre and stops a direction once the window bound itself (the
band's largest sd now, plus the drift since the sort, as WeightIndex.windows uses) says no
later SKU can beat the row's k-th best: the same pairs, a few top_k SKUs looked at per row.
|z| is computed with the same floating-point operations as the numpy version, so the pairs
kept (ties included) are the same, and both give them in the same order (by row, then
catalogue index): the sums downstream are the same to the bit whichever search ran.

`add_block`: scoring's pruned k-unit add block (the adds inside the weight windows, then the
camera's SKUs outside them) filled in one loop over the index's sorted figures, the same
expressions in the same order as the numpy block (scoring.gauss): the same bits.

Numba compiles on first use (cached next to this file); without numba, or with
CART_FIT_KERNEL=0, weight_fit_pairs keeps its numpy path (the comparison test's reference).
"""
from __future__ import annotations

import os
import threading

import numpy as np

_KERNEL = None          # the compiled function, False when numba is not there / disabled


def available() -> bool:
    return _kernel() is not False


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        if os.environ.get("CART_FIT_KERNEL", "1") == "0":
            _KERNEL = False
        else:
            try:
                import numba
            except ImportError:
                _KERNEL = False
            else:
                # _best_fits calls _offer by its global name: the compiled one must be there first
                globals()["_offer"] = numba.njit(cache=True, nogil=True, inline="always")(_offer_py)
                globals()["_ADD_FILL"] = numba.njit(cache=True, nogil=True)(_add_fill)
                _KERNEL = numba.njit(cache=True, nogil=True)(_best_fits)
    return _KERNEL


_READY = threading.Event()      # compiled (or loaded from the cache): callers may use it
_WARM_LOCK = threading.Lock()
_WARMING = False                # a warm_in_background thread was started


def warm() -> bool:
    """Compile (or load from the cache) now. False: no kernel (numba missing or disabled)."""
    k = _kernel()
    if k is False:
        return False
    if _READY.is_set():
        return True
    i1, f1 = np.zeros(1, dtype=np.int64), np.zeros(1)
    k(0.0, i1, i1, False, np.ones(1, dtype=np.bool_), i1, f1, i1, np.ones(1, dtype=np.int64), np.ones(1), 0.0,
      np.zeros(1, dtype=np.bool_), np.zeros(0, dtype=np.int64), f1, np.ones(1), f1, np.ones(1), i1, 1.0, 8.0, 1)
    _ADD_FILL(0.0, 1.0, -1.0, i1, i1, i1, i1, f1, f1, i1, 1, f1, 0.0, 0.0, 0.0, i1[:0], np.zeros(1, dtype=np.bool_),
              f1[:0], f1[:0], f1[:0], f1, f1, f1, f1, i1, i1, i1, f1, i1)
    from . import pairkernel            # score_multi's pair loops: compiled with these
    pairkernel.compile_all()
    _READY.set()
    return True


def warm_in_background() -> None:
    """The gateway's start: compile off the core thread (~2 CPU-s from the cache, ~6 cold), so
    start-up does not wait; until it is ready weight_fit_pairs runs its numpy search, which
    gives the same pairs in the same order."""
    global _WARMING
    with _WARM_LOCK:            # many gateways in one process (tests): one compile thread
        if _WARMING or _kernel() is False or _READY.is_set():
            return
        _WARMING = True
    threading.Thread(target=warm, name="fit-kernel-warm", daemon=True).start()


def ready() -> bool:
    return _READY.is_set()


def best_fits(delta: float, a_i: np.ndarray, add_k: np.ndarray | None, cand: np.ndarray, wi, mean: np.ndarray,
              sd: np.ndarray, sn2: float, zb: float, top_k: int):
    """(rows, cols) as weight_fit_pairs returns them (by row, then catalogue index). The walk reads
    each SKU's figures, candidacy and unit position in the index's sorted order (wi.mean_p, wi.sd_p:
    the book's now, the same values as mean[b], sd[b]): a gather by catalogue index there cost a
    cache miss per SKU looked at."""
    k = _kernel()
    L = len(a_i)
    is_add = add_k is not None
    kk = np.asarray(add_k, dtype=np.int64) if is_add else np.zeros(L, dtype=np.int64)
    band_ends = np.append(wi.band_starts[1:], len(wi.perm)).astype(np.int64)
    nu = len(wi.perm)
    moved_pos = wi.pos_of[wi.moved]
    moved_p = np.zeros(nu, dtype=np.bool_)
    moved_p[moved_pos] = True
    cand_pos = wi.pos_of[cand]
    not_cand_p = np.ones(nu, dtype=np.bool_)
    not_cand_p[cand_pos[cand_pos >= 0]] = False       # (a non-packaged candidate is never in the walk)
    return k(float(delta), np.asarray(a_i, dtype=np.int64), kk, is_add, not_cand_p, wi.perm, wi.mean_built,
             wi.band_starts.astype(np.int64), band_ends, wi.sdmax2, float(wi.drift), moved_p,
             moved_pos.astype(np.int64), mean, sd, wi.mean_p, wi.sd_p, wi.unit_pos_p, float(sn2), float(zb), int(top_k))


def _best_fits(delta, a_i, add_k, is_add, not_cand_p, perm, mean_built, band_starts, band_ends, sdmax2, drift,
               moved_p, moved_pos, mean, sd, mean_p, sd_p, unit_pos_p, sn2, zb, top_k):
    L = a_i.shape[0]
    out_r = np.empty(L * top_k, dtype=np.int64)
    out_c = np.empty(L * top_k, dtype=np.int64)
    n_out = 0
    baz = np.empty(top_k)
    bcol = np.empty(top_k, dtype=np.int64)
    bup = np.empty(top_k, dtype=np.int64)
    for r in range(L):
        a = a_i[r]
        if is_add:
            kr = add_k[r]
            m_a = -(kr * mean[a])
            var_a = kr * sd[a] ** 2 + sn2
        else:
            kr = 0
            m_a = mean[a]
            var_a = sd[a] ** 2 + sn2
        centre = delta + m_a
        cnt = 0
        for bnd in range(band_starts.shape[0]):
            s0 = band_starts[bnd]
            e0 = band_ends[bnd]
            if s0 >= e0:
                continue
            scale = np.sqrt(sdmax2[bnd] + var_a)
            p0 = s0 + np.searchsorted(mean_built[s0:e0], centre)
            for direction in range(2):
                p = p0 if direction == 0 else p0 - 1
                while s0 <= p < e0:
                    gap = mean_built[p] - centre if direction == 0 else centre - mean_built[p]
                    lb = (gap - drift) / scale
                    thr = zb if cnt < top_k else baz[top_k - 1]
                    if lb > thr * (1.0 + 1e-9) + 1e-12:     # margin: rounding never drops a tie
                        break
                    if not moved_p[p]:
                        cnt = _offer(p, perm[p], a, kr, is_add, delta, mean, sd, mean_p, sd_p, sn2, zb, not_cand_p,
                                     unit_pos_p, baz, bcol, bup, cnt, top_k)
                    p = p + 1 if direction == 0 else p - 1
        for j in range(moved_pos.shape[0]):
            q = moved_pos[j]
            cnt = _offer(q, perm[q], a, kr, is_add, delta, mean, sd, mean_p, sd_p, sn2, zb, not_cand_p, unit_pos_p,
                         baz, bcol, bup, cnt, top_k)
        for j in range(1, cnt):        # the row's SKUs in catalogue order (the order the caller sums in)
            c = bcol[j]
            i = j
            while i > 0 and bcol[i - 1] > c:
                bcol[i] = bcol[i - 1]
                i -= 1
            bcol[i] = c
        for j in range(cnt):
            out_r[n_out] = r
            out_c[n_out] = bcol[j]
            n_out += 1
    return out_r[:n_out], out_c[:n_out]


def _offer_py(p, b, a, kr, is_add, delta, mean, sd, mean_p, sd_p, sn2, zb, not_cand_p, unit_pos_p, baz, bcol, bup,
              cnt, top_k):
    """Insert b (sorted position p) into the row's best list (sorted by |z|, then unit position)
    if it belongs. Compiled inline: as a call, its ~10 array arguments cost more than its work."""
    if not not_cand_p[p]:
        return cnt
    if is_add:
        az = abs((delta - (kr * mean[a] + mean_p[p])) / np.sqrt(kr * sd[a] ** 2 + sd_p[p] ** 2 + sn2))
    else:
        if b == a:
            return cnt
        az = abs((delta - (mean_p[p] - mean[a])) / np.sqrt(sd_p[p] ** 2 + sd[a] ** 2 + sn2))
    if not az <= zb:
        return cnt
    up = unit_pos_p[p]
    if cnt == top_k and (az > baz[top_k - 1] or (az == baz[top_k - 1] and up > bup[top_k - 1])):
        return cnt
    i = cnt if cnt < top_k else top_k - 1
    while i > 0 and (baz[i - 1] > az or (baz[i - 1] == az and bup[i - 1] > up)):
        if i < top_k:
            baz[i] = baz[i - 1]
            bcol[i] = bcol[i - 1]
            bup[i] = bup[i - 1]
        i -= 1
    baz[i] = az
    bcol[i] = b
    bup[i] = up
    return cnt + 1 if cnt < top_k else cnt


_offer = _offer_py      # replaced by its compiled version in _kernel()
_ADD_FILL = None        # _add_fill compiled, set in _kernel()


def add_block(delta, sn2, floor, lo, hi, wi, ck, lv_base, lb_base, w_base, spec, spec_lv, spec_lb, spec_w,
              er, ec, mu, s, z, lp, dk, ski, kk):
    """scoring's pruned k-unit add block (the pairs in the windows [lo, hi) row by row, then the
    extra pairs (er, ec)) written into the columns as the numpy block writes them, with the same
    floating-point operations in the same order. The weight index's figures are read in sorted
    order (wi.mean_p, wi.sd_p: the book's now). Returns (per k: kept adds, their summed vision x
    barcode weight). Vision and barcode factors: the base ones, except for the `spec` SKUs (sorted)."""
    K = lo.shape[0]
    # one run of sorted positions per (k, band) window, then one per extra pair (its SKU's position)
    p_ex = wi.pos_of[ec]
    seg_k = np.concatenate((np.repeat(np.arange(K, dtype=np.int64), lo.shape[1]), er.astype(np.int64)))
    seg_lo = np.concatenate((lo.ravel(), p_ex)).astype(np.int64)
    seg_hi = np.concatenate((hi.ravel(), p_ex + 1)).astype(np.int64)
    cnt = np.zeros(K, dtype=np.int64)
    wsum = np.zeros(K)
    mask_p = np.zeros(len(wi.perm), dtype=np.bool_)
    mask_p[wi.pos_of[spec]] = True
    _ADD_FILL(float(delta), float(sn2), float(floor), seg_k, seg_lo, seg_hi, wi.perm, wi.mean_p, wi.sd_p,
              wi.unit_pos_p, len(wi.perm), ck.copy(), float(lv_base), float(lb_base), float(w_base), spec, mask_p,
              spec_lv, spec_lb, spec_w, mu, s, z, lp, dk, ski, kk, wsum, cnt)
    return cnt, wsum


def _add_fill(delta, sn2, floor, seg_k, seg_lo, seg_hi, perm, mean_p, sd_p, unit_pos_p, nu, ck, lv_base, lb_base,
              w_base, spec, mask_p, spec_lv, spec_lb, spec_w, mu, s, z, lp, dk, ski, kk, wsum, cnt):
    j = 0
    ns = spec.shape[0]
    for g in range(seg_k.shape[0]):
        k = seg_k[g]
        kf = float(k + 1)
        ckk = ck[k]
        for p in range(seg_lo[g], seg_hi[g]):
            # numpy's expressions (scoring.gauss and the add block), in their order
            m_ = kf * mean_p[p]
            sdp = sd_p[p]
            s_ = np.sqrt(kf * (sdp * sdp) + sn2)
            zz = (delta - m_) / s_
            ll = -0.5 * zz * zz - np.log(s_) - 0.9189385332046727      # LOG_SQRT_2PI
            if ll < floor:
                ll = floor
            lv = lv_base
            lb = lb_base
            w = w_base
            i = perm[p]
            if mask_p[p]:           # a SKU the camera or a barcode scored: its own factors
                a, c = 0, ns
                while a < c:
                    h = (a + c) >> 1
                    if spec[h] < i:
                        a = h + 1
                    else:
                        c = h
                lv = spec_lv[a]
                lb = spec_lb[a]
                w = spec_w[a]
            mu[j] = m_
            s[j] = s_
            z[j] = zz
            lp[j] = ckk + lv + lb + ll
            dk[j] = k * nu + unit_pos_p[p]
            ski[j] = i
            kk[j] = k + 1
            wsum[k] += w
            cnt[k] += 1
            j += 1
