"""Swap hypotheses: one unit of a basket line out, one unit of a packaged SKU in.

The removed side is any packaged basket line; the added side is a candidate: one of the
`swap_vision_top` packaged SKUs the camera scored highest for this movement, a SKU whose
barcode was read, or one taken out of this basket moments ago (`recent_out`). Every other
pair (line, SKU) stays in the model with its prior and its vision x barcode factor but with
the weight likelihood at the floor (`weight_lik_floor`): the camera did not name that SKU,
so its weight is not looked at. Those pairs are never named as a hypothesis; their mass goes
into the normaliser in closed form (hidden_weight), so posteriors stay normalised and the cost
is lines x candidates, not lines x catalogue (docs/reconciliation.md §2).

When the camera named nothing that could be the added side (`camera_named_nothing`: no
packaged SKU outside the swapped lines' SKUs scored above 0, no packaged SKU's barcode read,
no packaged recent removal), each packaged line's `swap_fit_top` best-fitting swap pairs
(line a, packaged SKU b != a, smallest |z| within the bound `swap_fit_bound`) are scored one
by one too, found through the weight index's windows (`weight_fit_pairs`): a product the
camera could not see is still scored by its weight (config `swap_weight_fallback`). The other
pairs stay at the floor: at 30,000 SKUs ~1,900 SKUs fit a line within the bound, and scoring
them all (lines x window, ~80,000 pairs) cost ~10 ms an event on the weight-only stream.

A shopper who names a SKU outside the candidates is answered by scoring that SKU's swaps
with their real weight fit (swap_column), on the movement's normaliser.
"""
from __future__ import annotations

import math

import numpy as np

from . import fitkernel
from .catindex import LOG_SQRT_2PI, CatalogueIndex
from .factors import units_sum, vision_derived
from .inputs import VisionSummary
from .weightindex import WeightIndex, member_sorted, z_bound


SMALL_WINDOWS = 4096     # fewer pairs than this in the lines' windows at zb: no narrowing first


def swap_candidates(vision: VisionSummary | None, cat: CatalogueIndex, known, recent_out,
                    top_n: int) -> np.ndarray:
    """The packaged SKUs a swap may add (sorted catalogue indices): the camera's `top_n`
    highest-scored (ties to the lowest index), every barcode read, every recent removal."""
    ix = set()
    if vision is not None and vision.n_frames > 0 and top_n > 0:
        seen = sorted((-v, i) for s, v in vision.scores.items()
                      if v > 0 and (i := cat.idx.get(s)) is not None and cat.unit_pos[i] >= 0)
        ix.update(i for _, i in seen[:top_n])
    ix.update(int(i) for i in known if cat.unit_pos[i] >= 0)
    for s in recent_out or ():
        i = cat.idx.get(s)
        if i is not None and cat.unit_pos[i] >= 0:
            ix.add(i)
    return np.array(sorted(ix), dtype=np.int64)


def camera_named_nothing(vision: VisionSummary | None, cat: CatalogueIndex, known, recent_out,
                         a_i: np.ndarray) -> bool:
    """True when nothing names a product that could be a swap's added side: no packaged SKU
    other than the swapped lines' own (a_i) scored above 0 by the camera, no barcode read of
    a packaged SKU, no packaged SKU among the recent removals."""
    if any(cat.unit_pos[i] >= 0 for i in known):
        return False
    for s in recent_out or ():
        i = cat.idx.get(s)
        if i is not None and cat.unit_pos[i] >= 0:
            return False
    if vision is not None and vision.n_frames > 0:
        own = set(a_i.tolist())
        for s, v in vision.scores.items():
            i = cat.idx.get(s)
            if v > 0 and i is not None and cat.unit_pos[i] >= 0 and i not in own:
                return False
    return True


def swap_fit_bound(floor: float, book, units: np.ndarray, a_i: np.ndarray, sn2: float) -> float:
    """|z| bound of the weight fallback: beyond it every swap pair's weight likelihood is below
    the floor (the smallest pair sd), so the fallback scores every pair the floor would not hide."""
    return z_bound(floor, math.sqrt(book.min_sd(units) ** 2 + float(book.sd[a_i].min()) ** 2 + sn2))


def weight_fit_pairs(delta: float, a_i: np.ndarray, cand: np.ndarray, cat: CatalogueIndex, book, sn2: float,
                     zb: float, top_k: int, add_k: np.ndarray | None = None,
                     kernel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per row (a line, a_i), the `top_k` swap pairs (row, packaged catalogue index b) with the
    smallest |z| = |delta - (mean_b - mean_a)| / sqrt(sd_b^2 + sd_a^2 + sn2) <= zb, b != a, b no
    candidate; ties to the lowest catalogue index. The weight index's windows (supersets) give
    the pairs to test, plus its `moved` SKUs. A line whose window at zb holds many more pairs
    than top_k (thousands at 30,000 SKUs) is first searched within the narrowest bound zb / 2^j
    whose windows hold twice the pairs needed; if fewer than top_k fit there, within one 4x
    wider, up to zb: the cost is lines x a few top_k, not lines x window.

    `add_k` (multi.py's add2_fit_top): rows are k units of A (a_i) in with one B, |z| = |delta -
    (k mean_a + mean_b)| / sqrt(k sd_a^2 + sd_b^2 + sn2); B == A is left to `cand`.
    `kernel=False`: the numpy search below even when the compiled one (fitkernel.py) is there."""
    mean, sd = book.mean, book.sd
    wi = WeightIndex.of(cat, book)
    if add_k is None:
        var_a = sd[a_i] ** 2 + sn2
        m_a = mean[a_i]
    else:
        var_a = add_k * sd[a_i] ** 2 + sn2
        m_a = -(add_k * mean[a_i])
    if kernel and fitkernel.ready():     # the same pairs, same order, from one compiled loop (fitkernel.py)
        return fitkernel.best_fits(delta, a_i, add_k, cand, wi, mean, sd, sn2, zb, top_k)
    not_cand = np.ones(cat.n, dtype=bool)
    not_cand[cand] = False
    # per line, the narrowest of the bounds zb / 2^j whose windows (counted by binary search,
    # no pair enumerated) hold twice the pairs needed
    need = 2 * (top_k + 1 + len(cand))
    L = len(a_i)
    lo, hi = wi.windows(delta, m_a, var_a, sd, zb)
    at_zb = None
    if int((hi - lo).sum()) <= SMALL_WINDOWS:      # a small catalogue: one pass at zb is cheaper
        zl = np.full(L, zb)
        at_zb = (lo, hi)                           # the first pass's windows: these ones
    else:
        grid = zb / 2.0 ** np.arange(9)                    # zb, zb / 2, ..., zb / 256
        lo, hi = wi.windows(delta, np.tile(m_a, len(grid)), np.tile(var_a, len(grid)), sd,
                            np.repeat(grid, L)[:, None])
        enough = ((hi - lo).sum(axis=1) + len(wi.moved)).reshape(len(grid), L) >= need
        enough[0] = True
        zl = grid[len(grid) - 1 - np.argmax(enough[::-1], axis=0)]   # the narrowest bound with enough

    def eligible(ix: np.ndarray, bound: np.ndarray, windows=None):
        lo, hi = windows or wi.windows(delta, m_a[ix], var_a[ix], sd, bound[:, None])
        rows, cols = wi.pairs(lo, hi, cat.n)
        if len(wi.moved):
            er, ec = np.repeat(np.arange(len(ix)), len(wi.moved)), np.tile(wi.moved, len(ix))
            out = wi.outside(lo, hi, er, ec)
            rows, cols = np.concatenate((rows, er[out])), np.concatenate((cols, ec[out]))
        ra = a_i[ix[rows]]
        if add_k is None:
            az = np.abs((delta - (mean[cols] - mean[ra])) / np.sqrt(sd[cols] ** 2 + sd[ra] ** 2 + sn2))
            keep = (az <= bound[rows]) & (cols != ra) & not_cand[cols]
        else:
            kr = add_k[ix[rows]]
            az = np.abs((delta - (kr * mean[ra] + mean[cols])) / np.sqrt(kr * sd[ra] ** 2 + sd[cols] ** 2 + sn2))
            keep = (az <= bound[rows]) & not_cand[cols]
        return ix[rows[keep]], cols[keep], az[keep]

    rows, cols, az = eligible(np.arange(len(a_i)), zl, at_zb)
    while True:                 # too few fit within a line's bound: that line again, 4x wider (up to zb)
        short = (np.bincount(rows, minlength=len(a_i)) < top_k) & (zl < zb)
        if not short.any():
            break
        again = np.flatnonzero(short)
        zl[again] = np.minimum(zb, 4.0 * zl[again])
        r2, c2, z2 = eligible(again, zl[again])
        k = ~short[rows]
        rows, cols, az = np.concatenate((rows[k], r2)), np.concatenate((cols[k], c2)), np.concatenate((az[k], z2))
    rows, cols = best_per_row(rows, cols, az, cat.unit_pos, top_k, len(a_i))
    o = np.lexsort((cols, rows))        # by row, then catalogue index: the kernel's order
    return rows[o], cols[o]


def best_per_row(rows: np.ndarray, cols: np.ndarray, az: np.ndarray, unit_pos: np.ndarray, k: int,
                 n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs (rows, cols) with their |z| `az`, per row the k smallest |z|, ties to the
    lowest unit position: the k-th value per row by a partition, a sort only of the ties at
    it (a three-key lexsort of every pair cost ~3 ms at 14,000 pairs). Any order out."""
    cnt = np.bincount(rows, minlength=n_rows)
    big = np.flatnonzero(cnt > k)
    if not len(big):
        return rows, cols
    slot = np.full(n_rows, -1)
    slot[big] = np.arange(len(big))
    inb = slot[rows] >= 0
    o = np.flatnonzero(inb)
    o = o[np.argsort(rows[o], kind="stable")]
    r_b = slot[rows[o]]
    pos = np.arange(len(o)) - (np.cumsum(cnt[big]) - cnt[big])[r_b]
    pad = np.full((len(big), int(cnt[big].max())), np.inf)
    pad[r_b, pos] = az[o]
    kth = np.full(n_rows, np.inf)
    kth[big] = np.partition(pad, k - 1, axis=1)[:, k - 1]
    cut = kth[rows]
    keep = az < cut                       # rows with at most k pairs: every pair (cut inf)
    ti = np.flatnonzero(az == cut)
    if len(ti):
        need = k - np.bincount(rows[keep], minlength=n_rows)
        ti = ti[np.lexsort((unit_pos[cols[ti]], rows[ti]))]
        rank = np.arange(len(ti)) - np.searchsorted(rows[ti], rows[ti])
        keep[ti[rank < need[rows[ti]]]] = True
    return rows[keep], cols[keep]


def hidden_weight(a_i: np.ndarray, cand: np.ndarray, cat: CatalogueIndex, vis: np.ndarray | None, u: float,
                  known: np.ndarray | None, barcode_other: float,
                  fit: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Sum over every pair (line SKU a -> packaged b not a candidate, b != a) of its vision x
    barcode factor 0.5 (vis_b + vis_a) x (1 if a had a barcode read, else barcode_other; b
    had none: every read SKU is a candidate). `vis` None: every factor is u. `fit`: pairs
    (rows into a_i, b) scored one by one though b is no candidate (the weight fallback), left
    out of the sum. O(lines + SKUs + fit pairs)."""
    units = cat.units
    n_hid = float(len(units) - len(cand))
    a_hid = (cat.unit_pos[a_i] >= 0) & ~member_sorted(a_i, cand)      # a is itself a hidden b: no pair with itself
    if vis is None:
        w = u * (n_hid - a_hid)
    else:
        v_hid = vision_derived(vis, "units_sum", lambda: units_sum(vis, cat)) - float(vis[cand].sum())
        va = vis[a_i]
        w = 0.5 * ((v_hid - va * a_hid) + va * (n_hid - a_hid))
    if fit is not None and len(fit[0]):
        fr, fc = fit
        wf = np.full(len(fr), u) if vis is None else 0.5 * (vis[fc] + vis[a_i[fr]])
        w = w - np.bincount(fr, weights=wf, minlength=len(a_i))
    if known is not None:
        w = w * np.where(known[a_i], 1.0, barcode_other)
    return float(np.sum(w))


def swap_column(sw: dict, i: int):
    """Every swap hypothesis that adds SKU i (one per packaged line), scored with its real
    weight fit: (mu, sd, z, posterior). The posterior is the one i's swaps would have had with
    i among the candidates (its pairs' floor mass in the normaliser replaced by their fit); the
    pairs the weight fallback named keep the posterior they were scored with."""
    a_i, mean, sd = sw["a_i"], sw["mean"], sw["sd"]
    mu = mean[i] - mean[a_i]
    s = np.sqrt(sd[i] ** 2 + sd[a_i] ** 2 + sw["sn2"])
    z = (sw["delta"] - mu) / s
    ll = -0.5 * z * z - np.log(s) - LOG_SQRT_2PI
    floor = sw["floor"]
    vis, logb = sw["vis"], sw["logb"]
    lv = sw["lv_swap"] if vis is None else np.log(0.5 * (vis[i] + vis[a_i]))
    lb = np.maximum(logb[i], logb[a_i]) if logb is not None else 0.0
    base = sw["c_swap"] + lv + lb + np.zeros(len(a_i))
    same = a_i == i
    lp = np.where(same, -np.inf, base + np.maximum(ll, floor))
    lp_floor = np.where(same, -np.inf, base + floor)       # what the normaliser holds for them
    fr = sw["fit_r"][sw["fit_c"] == i]
    lp_floor[fr] = lp[fr]              # scored one by one already (weight fallback): held with their fit
    top = max(sw["top"], float(lp.max()))
    norm = sw["norm"] * np.exp(sw["top"] - top) + float(np.exp(lp - top).sum()) - float(np.exp(lp_floor - top).sum())
    post = np.exp(lp - top) / norm
    post[fr] = np.exp(lp[fr] - sw["top"]) / sw["norm"]   # named already: the posterior they were scored with
    return mu, s, z, post
