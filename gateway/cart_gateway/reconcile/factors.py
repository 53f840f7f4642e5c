"""The camera's and the barcode reader's factors per SKU, as the scorers weigh them."""
from __future__ import annotations

import math

import numpy as np

from .catindex import CatalogueIndex
from .config import ReconcileConfig
from .inputs import VisionSummary

# vision, cat, cfg -> vis, log(vis), derived, (base, ix, val) or None: the last vision_factor() result
_LAST_VISION: list = [None, None, None, None, None, {}, None]
SPARSE_MIN_SKUS = 5000      # smaller catalogues: the dense arithmetic is cheaper than the bookkeeping


def vision_factor(vision: VisionSummary | None, cat: CatalogueIndex, cfg: ReconcileConfig) -> np.ndarray | None:
    """Per SKU (index n = "no product"), the detector's scores mixed with a uniform floor;
    None when no frame was seen (every factor is then 1 / (n + 1)). The last result is kept:
    score() and score_multi() ask for the same movement's in turn (an O(catalogue) array)."""
    if vision is None or vision.n_frames <= 0:
        return None
    lv = _LAST_VISION
    if lv[0] is vision and lv[1] is cat and lv[2] is cfg:
        return lv[3]
    if cat.n < SPARSE_MIN_SKUS:
        vis, sparse = _vision_factor(vision, cat, cfg), None
    else:
        sparse = _vision_sparse(vision, cat, cfg)
        base, ix, val = sparse
        vis = np.full(cat.n + 1, base)
        vis[ix] = val
    lv[:] = [vision, cat, cfg, vis, None, {}, sparse]
    return vis


def log_vision(vis: np.ndarray) -> np.ndarray:
    """np.log(vis), kept for the last vision_factor() result (and for a read-only flat one).
    From the sparse form: log of the base and of the few scored entries, not of every SKU."""
    lv = _LAST_VISION
    if not vis.flags.writeable:
        if lv[3] is not vis:
            lv[:] = [None, None, None, vis, np.log(vis), {}, None]
        return lv[4]
    if lv[3] is vis:
        if lv[4] is None and lv[6] is None:
            lv[4] = np.log(vis)
        elif lv[4] is None:
            base, ix, val = lv[6]
            logs = np.log(np.concatenate(([base], val)))     # the array log, as np.log(vis) computes it
            lv[4] = np.full(len(vis), logs[0])
            lv[4][ix] = logs[1:]
        return lv[4]
    return np.log(vis)


def vision_sparse(vis: np.ndarray):
    """(base, ix, val) of the last vision_factor() array `vis` (every SKU's factor is base but at
    the sorted indices ix), None for any other array."""
    lv = _LAST_VISION
    return lv[6] if lv[3] is vis and vis.flags.writeable else None     # (None also below SPARSE_MIN_SKUS)


def units_sum(vis: np.ndarray, cat: CatalogueIndex) -> float:
    """The sum of `vis` over the packaged SKUs; O(scores) for a vision_factor() array."""
    sp = vision_sparse(vis)
    if sp is None:
        return float(vis[cat.units].sum())
    base, ix, val = sp
    on_units = ix < cat.n
    on_units[on_units] = cat.unit_pos[ix[on_units]] >= 0
    return base * (len(cat.units) - int(on_units.sum())) + float(val[on_units].sum())


def vision_derived(vis: np.ndarray, key, compute):
    """compute(), an O(catalogue) reduction of `vis`, kept with the last vision_factor() array:
    one burst's movement is scored by score() and score_multi(), again for its answer, and
    again when a late frame or the timer re-opens it (docs/reconciliation.md §8)."""
    lv = _LAST_VISION
    if lv[3] is not vis:
        return compute()
    d = lv[5]
    if key not in d:
        d[key] = compute()
    return d[key]


def _vision_factor(vision: VisionSummary, cat: CatalogueIndex, cfg: ReconcileConfig) -> np.ndarray:
    """The dense computation (the reference the sparse form is tested against)."""
    n = cat.n
    agg = np.zeros(n + 1)
    for s, v in vision.scores.items():
        i = cat.idx.get(s)
        if i is not None:
            agg[i] = v
    agg[n] = vision.none_score
    agg = sharpened(agg, cfg.vision_power)
    rest = max(0.0, 1.0 - float(agg.sum()))
    agg = agg / max(1.0, float(agg.sum())) + rest / (n + 1)
    return (1.0 - cfg.vision_floor) * agg + cfg.vision_floor / (n + 1)


def sharpened(agg: np.ndarray, power: float) -> np.ndarray:
    """The burst's mean scores raised to `power` and scaled back to their sum: the same mass
    for the labels scored (products and "no product"), shared more sharply. A mean of per-frame scores is underconfident when
    the frames agree (the per-frame calibration does not know there were several); power 1: as is."""
    if power == 1.0:
        return agg
    w = np.power(agg, power)
    s = float(w.sum())
    return w * (float(agg.sum()) / s) if s > 0 else agg


def _vision_sparse(vision: VisionSummary, cat: CatalogueIndex, cfg: ReconcileConfig):
    """_vision_factor as (base, ix, val): the camera scores a few SKUs; every other SKU has the
    same factor, `base`. The same expressions per entry as the dense one; the scores' sum is
    taken over the few (the dense pass sums them among zeros: equal to a rounding)."""
    n = cat.n
    sc = {}
    for s, v in vision.scores.items():
        i = cat.idx.get(s)
        if i is not None:
            sc[i] = v
    sc[n] = vision.none_score
    ix = np.array(sorted(sc), dtype=np.int64)
    agg = sharpened(np.array([sc[i] for i in ix.tolist()], dtype=float), cfg.vision_power)
    total = float(agg.sum())
    rest = max(0.0, 1.0 - total)
    parts = np.concatenate(([0.0], agg)) / max(1.0, total) + rest / (n + 1)
    parts = (1.0 - cfg.vision_floor) * parts + cfg.vision_floor / (n + 1)
    return float(parts[0]), ix, parts[1:]


def barcode_factor(vision: VisionSummary | None, cat: CatalogueIndex, cfg: ReconcileConfig):
    """(logb, known, unknown): a read is near-certain evidence for its SKU. logb per SKU
    (index n = "no product"), None when no known barcode was read; the catalogue indices
    read; the barcodes the catalogue does not know."""
    if vision is None or not vision.barcodes:
        return None, [], []
    hits = [cat.sku_of_barcode(b) for b in vision.barcodes]
    unknown = [b for b, h in zip(vision.barcodes, hits) if h is None]
    known = sorted({cat.idx[h] for h in hits if h is not None})
    if not known:
        return None, known, unknown
    logb = np.zeros(cat.n + 1)
    logb[:] = math.log(cfg.barcode_other)
    logb[known] = 0.0
    return logb, known, unknown


def vision_factors(vision: VisionSummary | None, cat: CatalogueIndex, cfg: ReconcileConfig):
    """(vis, logb): score()'s vision and barcode factors as arrays over every SKU."""
    n = cat.n
    flat = getattr(cat, "_flat_factors", None)
    if flat is None:        # no frame / no barcode: the same for every SKU (read-only, built once)
        flat = cat._flat_factors = (np.full(n + 1, 1.0 / (n + 1)), np.zeros(n + 1))
        for a in flat:
            a.flags.writeable = False
    vis = vision_factor(vision, cat, cfg)
    if vis is None:
        vis = flat[0]
    logb = barcode_factor(vision, cat, cfg)[0]
    return vis, (flat[1] if logb is None else logb)


def family_smoothed(vision: VisionSummary | None, cat: CatalogueIndex, c: float) -> VisionSummary | None:
    """Give a look-alike family's unscored members their share of the detector's doubt.

    A calibrated score v for SKU s leaves 1 - v for "not s"; the scoring spreads that
    evenly over the catalogue. But the detector's mistakes are mostly within the family
    (flavour text a few pixels tall, the same pack in another size): a fraction `c` of
    the doubt goes to s's siblings, so each gets at least c·(1 − v)/(|family| − 1).
    The weight (or the shopper) then decides within the family."""
    if vision is None or c <= 0 or not vision.scores:
        return vision
    fam = getattr(cat, "_families", None)
    if fam is None:
        fam = {}
        for s in cat.skus:
            fam.setdefault(cat.items[s].family, []).append(s)
        cat._families = fam
    out = dict(vision.scores)
    best: dict[str, tuple[float, str]] = {}
    for s, v in vision.scores.items():
        if s in cat.idx:
            f = cat.items[s].family
            if f not in best or (v, s) > best[f]:
                best[f] = (v, s)
    for f, (v, s) in best.items():
        members = fam[f]
        if len(members) < 2:
            continue
        share = c * max(0.0, 1.0 - v) / (len(members) - 1)
        for m in members:
            if m != s:
                out[m] = max(out.get(m, 0.0), share)
    return VisionSummary(vision.mono_ms, {k: out[k] for k in sorted(out)}, vision.none_score,
                         list(vision.barcodes), list(vision.frame_ids), vision.ref, vision.n_frames)


