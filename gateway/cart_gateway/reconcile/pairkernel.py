"""Compiled loops (numba) for score_multi's two-product blocks, beside their numpy versions in
pairblock.py, which stay the reference and the path without numba (or with CART_FIT_KERNEL=0).

`line_pairs`: `remove2`, one unit each of two different basket lines out together. The numpy
block builds every (i < j) pair of packaged lines (~14,000 at 170 lines) in ~20 array passes
and picks its best with np.partition, which is slow when most pairs tie at the likelihood
floor (1.7 ms for 14,000 tied values against 0.15 ms for distinct ones). Here one loop scores
each pair with the same expressions in the same order (lp to the bit, up to libm's last bit),
keeps the best few (ties to the lowest pair index, as _pick does) and sums their mass
(sequentially: within rounding of numpy's pairwise sum).

Compiled with fitkernel's kernels (fitkernel.warm); used only once those are ready.
"""
from __future__ import annotations

import numpy as np

from . import fitkernel

_LINE_PAIRS = None      # the compiled _line_pairs, set by compile_all()


def compile_all() -> None:
    """Compile (or load from numba's cache); fitkernel.warm calls this before it says ready."""
    global _LINE_PAIRS
    if _LINE_PAIRS is None:
        import numba
        _LINE_PAIRS = numba.njit(cache=True, nogil=True)(_line_pairs)
    i1, f1 = np.zeros(2, dtype=np.int64), np.ones(2)
    ro = np.ones(2)
    ro.flags.writeable = False      # the flat factors are read-only: numba compiles that type apart
    for logv in (f1, ro):
        for logb in (f1, ro):
            _LINE_PAIRS(i1, f1, f1, 1.0, -1.0, -20.0, 0.0, 0.0, logv, logb, 1)


def ready() -> bool:
    return fitkernel.ready() and _LINE_PAIRS is not None


def line_pairs(li: np.ndarray, mean: np.ndarray, sd: np.ndarray, sn2: float, delta: float, floor: float,
               c0: float, log_n1: float, logv: np.ndarray, logb: np.ndarray, keep: int):
    """(log of the total mass, best `keep` as (i, j, mu, sd, lp)) over the pairs i < j of lines
    `li` (catalogue indices), as pairblock.line_pairs returns them."""
    mass, bi, bj, bmu, bs, blp = _LINE_PAIRS(np.asarray(li, dtype=np.int64), mean, sd, float(sn2), float(delta),
                                             float(floor), float(c0), float(log_n1), logv, logb, int(keep))
    return float(mass), [(int(bi[t]), int(bj[t]), float(bmu[t]), float(bs[t]), float(blp[t]))
                         for t in range(len(bi))]


def _line_pairs(li, mean, sd, sn2, delta, floor, c0, log_n1, logv, logb, keep):
    L = li.shape[0]
    n_pairs = L * (L - 1) // 2
    lps = np.empty(n_pairs)
    bv = np.empty(keep)       # the best lp so far, best first; pairs counted row-major (np.triu_indices)
    bi = np.empty(keep, dtype=np.int64)
    bj = np.empty(keep, dtype=np.int64)
    bmu = np.empty(keep)
    bs = np.empty(keep)
    cnt = 0
    top = -np.inf
    q = 0
    for i in range(L):
        a = li[i]
        ma = mean[a]
        va = sd[a] ** 2
        for j in range(i + 1, L):
            b = li[j]
            # multi.py's expressions in their order: mu, s, _logpdf, the floor, then lp
            mu = -(ma + mean[b])
            s = np.sqrt(va + sd[b] ** 2 + sn2)
            z = (delta - mu) / s
            ll = -0.5 * z * z - np.log(s) - 0.9189385332046727       # LOG_SQRT_2PI
            if ll < floor:
                ll = floor
            lbm = logb[a] if logb[a] >= logb[b] else logb[b]
            lp = c0 + logv[a] + logv[b] + log_n1 + lbm + ll
            if a == b:                      # two units of one line: a k = 2 removal, not a pair
                lp = -np.inf
            lps[q] = lp
            if lp > top:
                top = lp
            # the best `keep`: a later equal value never displaces an earlier one (ties to the
            # lowest pair index)
            if cnt < keep or lp > bv[keep - 1]:
                t = cnt if cnt < keep else keep - 1
                while t > 0 and bv[t - 1] < lp:
                    if t < keep:
                        bv[t] = bv[t - 1]
                        bi[t] = bi[t - 1]
                        bj[t] = bj[t - 1]
                        bmu[t] = bmu[t - 1]
                        bs[t] = bs[t - 1]
                    t -= 1
                bv[t] = lp
                bi[t] = i
                bj[t] = j
                bmu[t] = mu
                bs[t] = s
                if cnt < keep:
                    cnt += 1
            q += 1
    mass = -np.inf
    if n_pairs and top > -np.inf:           # pairblock._logsumexp
        acc = 0.0
        for t in range(n_pairs):
            acc += np.exp(lps[t] - top)
        mass = top + np.log(acc)
    elif n_pairs:
        mass = top
    m = 0
    while m < cnt and bv[m] > -np.inf:      # finite only (as _pick)
        m += 1
    return mass, bi[:m], bj[:m], bmu[:m], bs[:m], bv[:m]
