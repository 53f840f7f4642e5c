"""A movement's score read for an answer: the best hypothesis that names the SKU the shopper
chose, from the kept arrays, scoring again what the indexed scorer left out (adds outside
the weight windows, swaps to a SKU that was not a candidate) with the figures as scored."""
from __future__ import annotations

import math

import numpy as np

from .catindex import KINDS, LOG_SQRT_2PI, CatalogueIndex, Scored, target_of
from .swaps import swap_column


def _add_column(ad: dict, i: int):
    """The k = 1..K unit adds of SKU i, scored as in the full block (with the book's figures
    as they were when the movement was scored)."""
    K = len(ad["ck"])
    kf = np.arange(1, K + 1, dtype=float)
    mu = kf * ad["mean"][i]
    s = np.sqrt(kf * ad["sd"][i] ** 2 + ad["sn2"])
    z = (ad["delta"] - mu) / s
    ll = np.maximum(-0.5 * z * z - np.log(s) - LOG_SQRT_2PI, ad["floor"])
    lv = ad["logv"] if isinstance(ad["logv"], float) else ad["logv"][i]
    lb = ad["logb"][i] if ad["logb"] is not None else 0.0
    lp = ad["ck"] + lv + lb + ll
    return mu, s, z, np.exp(lp - ad["top"]) / ad["norm"]


def best_with_sku(sc: Scored, cat: CatalogueIndex, sku: str, removal: bool, max_z: float = math.inf) -> dict | None:
    """The most likely hypothesis that adds (or, for a removal, removes) `sku` and fits the
    weight within `max_z`; if none fits, the best-fitting one (its z says by how much)."""
    a = sc.arrays
    if not a or sku not in cat.idx:
        return None
    i = cat.idx[sku]
    kinds = [KINDS.index("remove")] if removal else [KINDS.index("add"), KINDS.index("swap")]
    kd_all = a["kind"]
    m = (kd_all == kinds[0]) if len(kinds) == 1 else ((kd_all == kinds[0]) | (kd_all == kinds[1]))
    m &= a["ski"] == i
    sw = a.get("swap")
    lazy = (not removal and sw is not None and cat.unit_pos[i] >= 0
            and not np.any(sw["cand"] == i))
    if lazy:              # `sku` was not a swap candidate: score its swaps now, with their weight fit
        m &= a["kind"] != KINDS.index("swap")
    ad = a.get("adds")
    lazy_add = not removal and ad is not None and cat.unit_pos[i] >= 0
    if lazy_add:          # adds of `sku` may have been left out: score its K adds again
        m &= a["kind"] != KINDS.index("add")
    cand = np.flatnonzero(m)
    kind, k, ln, aux = a["kind"][cand], a["k"][cand], a["line"][cand], a["aux"][cand]
    post, z, mu, sd = a["post"][cand], a["z"][cand], a["mu"][cand], a["sd"][cand]
    if lazy_add:          # first, in k order: the order of the full block
        amu, asd, az, apost = _add_column(ad, i)
        nk = len(az)
        kind = np.concatenate((np.full(nk, KINDS.index("add")), kind))
        k = np.concatenate((np.arange(1, nk + 1), k))
        ln = np.concatenate((np.full(nk, -1), ln))
        aux = np.concatenate((np.full(nk, -1), aux))
        post, z, mu, sd = (np.concatenate(x) for x in ((apost * a["post_scale"], post), (az, z), (amu, mu), (asd, sd)))
    if lazy:              # after the adds, in line order: the order of the full block
        cmu, csd, cz, cpost = swap_column(sw, i)
        nl = len(cz)
        kind = np.concatenate((kind, np.full(nl, KINDS.index("swap"))))
        k = np.concatenate((k, np.ones(nl, dtype=np.int64)))
        ln = np.concatenate((ln, sw["a_pos"]))
        aux = np.concatenate((aux, sw["a_i"]))
        post, z, mu, sd = (np.concatenate(x) for x in ((post, cpost * a["post_scale"]), (z, cz), (mu, cmu), (sd, csd)))
    if not len(z):
        return None
    fits = np.flatnonzero(np.abs(z) <= max_z)
    if len(fits):   # the shopper names the item; the posterior picks k, or add vs swap
        j = int(fits[np.argmax(post[fits])])
    else:
        j = int(np.argmin(np.abs(z)))
    kd = KINDS[int(kind[j])]
    h = {"kind": kd, "sku": sku, "k": int(k[j]), "target": target_of(kd, int(ln[j]), a["lines"], a["personal"]),
         "posterior": float(post[j]), "mu_g": round(float(mu[j]), 3),
         "sd_g": round(float(sd[j]), 3), "z": round(float(z[j]), 3)}
    if kd == "swap":
        h["remove_sku"] = cat.skus[int(aux[j])]
    return h


