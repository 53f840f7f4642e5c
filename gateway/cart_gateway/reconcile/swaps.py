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
no packaged recent removal), every swap pair (line a, packaged SKU b != a) whose weight fits
within the bound `swap_fit_bound` (|z|) is scored one by one too, found through the weight
index's windows (`weight_fit_pairs`): a product the camera could not see is still scored by
its weight, and the cost lands only on those movements (config `swap_weight_fallback`). The
pairs outside the bound are at the floor either way.

A shopper who names a SKU outside the candidates is answered by scoring that SKU's swaps
with their real weight fit (swap_column), on the movement's normaliser.
"""
from __future__ import annotations

import math

import numpy as np

from .catindex import LOG_SQRT_2PI, CatalogueIndex
from .inputs import VisionSummary
from .weightindex import WeightIndex, z_bound


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


def swap_fit_bound(floor: float, sd: np.ndarray, units: np.ndarray, a_i: np.ndarray, sn2: float) -> float:
    """|z| bound of the weight fallback: beyond it every swap pair's weight likelihood is below
    the floor (the smallest pair sd), so the fallback scores every pair the floor would not hide."""
    return z_bound(floor, math.sqrt(float(sd[units].min()) ** 2 + float(sd[a_i].min()) ** 2 + sn2))


def weight_fit_pairs(delta: float, a_i: np.ndarray, cat: CatalogueIndex, book, sn2: float,
                     zb: float) -> tuple[np.ndarray, np.ndarray]:
    """The swap pairs (row into a_i, packaged catalogue index b) with |delta - (mean_b - mean_a)|
    <= zb x sqrt(sd_b^2 + sd_a^2 + sn2) and b != a. The weight index's windows (a superset)
    give the pairs to test, plus its `moved` SKUs; the cost is lines x window, not catalogue."""
    mean, sd = book.mean, book.sd
    wi = WeightIndex.of(cat, book)
    lo, hi = wi.windows(delta, mean[a_i], sd[a_i] ** 2 + sn2, sd, zb)
    rows, cols = wi.pairs(lo, hi, cat.n)
    if len(wi.moved):
        er, ec = np.repeat(np.arange(len(a_i)), len(wi.moved)), np.tile(wi.moved, len(a_i))
        out = wi.outside(lo, hi, er, ec)
        rows, cols = np.concatenate((rows, er[out])), np.concatenate((cols, ec[out]))
    ra = a_i[rows]
    z = (delta - (mean[cols] - mean[ra])) / np.sqrt(sd[cols] ** 2 + sd[ra] ** 2 + sn2)
    keep = (np.abs(z) <= zb) & (cols != ra)
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
    a_hid = (cat.unit_pos[a_i] >= 0) & ~np.isin(a_i, cand)      # a is itself a hidden b: no pair with itself
    if vis is None:
        w = u * (n_hid - a_hid)
    else:
        v_hid = float(vis[units].sum()) - float(vis[cand].sum())
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
    i among the candidates (its pairs' floor mass in the normaliser replaced by their fit)."""
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
    return mu, s, z, np.exp(lp - top) / norm
