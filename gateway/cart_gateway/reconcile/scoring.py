"""Fusion of weight, vision, barcode and basket context into a posterior.

posterior(h) ∝ prior(h | basket) × vision(h) × barcode(h) × weight_lik(delta | h)

Vectorised with numpy over the catalogue, so one weight event costs a few
array operations whatever the catalogue size (docs/reconciliation.md §2).
Swap hypotheses (one unit of a basket line out, one unit of a packaged SKU in)
are lines x SKUs; only the pairs whose weight can fit the change are scored
one by one, the rest are counted in at the likelihood floor (see _SwapWindows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import ReconcileConfig
from .inputs import VisionSummary
from .weightbook import WeightBook

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
KINDS = ("add", "remove", "swap", "personal", "personal_remove")


class CatalogueIndex:
    """The catalogue as arrays, in catalogue iteration order."""

    def __init__(self, catalogue):
        items = list(catalogue)
        if not items:
            raise ValueError("CatalogueIndex: the catalogue is empty")
        self.items = {s.sku: s for s in items}
        self.skus = [s.sku for s in items]
        self.idx = {s: i for i, s in enumerate(self.skus)}
        self.by_weight = np.array([bool(s.sold_by_weight) for s in items])
        self.ean = {s.ean13: s.sku for s in items if s.ean13}
        self.n = len(items)
        # scoring's index arrays, built once: packaged SKUs, produce, and where each
        # SKU sits among the packaged ones (-1 for produce)
        self.units = np.flatnonzero(~self.by_weight)
        self.produce = np.flatnonzero(self.by_weight)
        self.unit_pos = np.full(self.n, -1, dtype=np.int64)
        self.unit_pos[self.units] = np.arange(len(self.units))
        self.swap_windows: _SwapWindows | None = None    # built on first use, per WeightBook figures

    def sku_of_barcode(self, code: str) -> str | None:
        return self.ean.get(code)


@dataclass
class Scored:
    hyps: list[dict]            # top hypotheses, best first, each with "posterior"
    evidence: list[str]         # which evidence counted
    best_fit_z: float           # smallest |z| of any product hypothesis (weight fit)
    unknown_barcodes: list[str]
    arrays: dict                # all hypotheses (not serialised): for answer checks


def _normal_logpdf(x: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mu) / sd
    return -0.5 * z * z - np.log(sd) - _LOG_SQRT_2PI


# ---- swap pruning
# A swap pair (one unit of line a out, one unit of SKU b in) whose |z| is beyond the window
# bound has its weight likelihood at the floor (weight_lik_floor), so its posterior is a
# known constant times its vision x barcode factor: such pairs are not scored one by one,
# their sum goes into the normaliser in closed form. When that cannot be shown harmless for
# an event (no floor configured, nothing fits the weight, a pruned pair could be among the
# top hypotheses or above HIDDEN_MAX_POSTERIOR), the event is scored in full.
SD_BANDS = 6                    # packaged SKUs split by weight sd, each band sorted by mean weight
PRUNE_MIN_PAIRS = 4000          # fewer swap pairs (~14 lines) than this: scoring all is cheaper (measured)
Z_WINDOW_MIN = 8.0              # never prune a pair that fits within this many sd
Z_WINDOW_NO_FLOOR = 12.0        # the bound when weight_lik_floor is 0 (no floor to count pruned pairs at)
HIDDEN_MAX_POSTERIOR = 1e-10    # no pruned pair may reach this posterior
HIDDEN_MAX_MASS = 1e-16         # without a floor: all pruned pairs together, relative to the best
REBUILD_DRIFT_G = 2.0           # sort the SKUs again once a learned mean moved this far
STATS = {"pruned": 0, "full": 0, "fallback": 0, "reused": 0}   # events scored each way (bench figures)


class _SwapWindows:
    """Packaged SKUs in SD_BANDS bands of weight sd, each band sorted by mean weight, so the
    SKUs b that a swap (a -> b) can fit are one contiguous run per band (binary search).
    Built for one set of WeightBook figures; learning changes them, so it is rebuilt then."""

    def __init__(self, cat: CatalogueIndex, mean: np.ndarray, sd: np.ndarray):
        units = cat.units
        nu = len(units)
        nb = min(SD_BANDS, nu)
        rank = np.empty(nu, dtype=np.int64)
        rank[np.argsort(sd[units], kind="stable")] = np.arange(nu)
        band_u = rank * nb // nu                                  # equal-count bands of sd
        order = np.lexsort((mean[units], band_u))                 # by band, then by mean weight
        self.perm = units[order]                                  # catalogue index at each sorted position
        off = np.searchsorted(band_u[order], np.arange(nb + 1))
        self.band_starts = off[:-1]
        # where each catalogue index sits: its sorted position and its band (-1: not packaged)
        self.pos_of = np.full(cat.n, -1, dtype=np.int64)
        self.pos_of[self.perm] = np.arange(nu)
        self.band_of = np.full(cat.n, -1, dtype=np.int64)
        self.band_of[self.perm] = band_u[order]
        # one sorted key array for all bands: band k's means shifted by k x span, so one
        # searchsorted call answers every (line, band) query; queries are clipped into the
        # band's range. The shift rounds keys by ~1e-11 g, far inside the window's margin.
        m = self.mean_built = mean[self.perm]
        self.lim = (float(m.min()) - 1.0, float(m.max()) + 1.0)
        span = self.lim[1] - self.lim[0] + 2.0
        self.base = np.arange(nb) * span
        self.keys = m + np.repeat(self.base, np.diff(off))
        self.drift = 0.0
        self.sdmax2 = np.maximum.reduceat(sd[self.perm], self.band_starts) ** 2   # per band, now
        self.seen = (-1, 0)         # (book.reset_count, len(book.changed)) already folded in

    @classmethod
    def of(cls, cat: CatalogueIndex, book: WeightBook) -> "_SwapWindows":
        """The windows for the book's current figures. Learning moves a few means by a few
        grams per event: the windows then widen by the largest move since they were sorted
        (still exact), and are sorted again once that exceeds REBUILD_DRIFT_G."""
        sw = cat.swap_windows
        if sw is not None and len(book.mean) == cat.n and sw.book is book:
            if sw.seen[0] == book.reset_count:      # fold in only the SKUs learned since
                moved = book.changed[sw.seen[1]:]
                if moved:
                    ix = np.array(moved, dtype=np.int64)
                    ix = ix[sw.pos_of[ix] >= 0]
                    if len(ix):
                        sw.drift = max(sw.drift, float(np.abs(book.mean[ix] - sw.mean_built[sw.pos_of[ix]]).max()))
                        # a band's largest sd only grows here (a smaller one keeps the window wider: still exact)
                        np.maximum.at(sw.sdmax2, sw.band_of[ix], book.sd[ix] ** 2)
            else:
                sw.drift = float(np.abs(book.mean[sw.perm] - sw.mean_built).max())
                sw.sdmax2 = np.maximum.reduceat(book.sd[sw.perm], sw.band_starts) ** 2
            sw.seen = (book.reset_count, len(book.changed))
            if sw.drift <= REBUILD_DRIFT_G:
                return sw
        sw = cat.swap_windows = cls(cat, book.mean, book.sd)
        sw.book, sw.seen = book, (book.reset_count, len(book.changed))
        return sw

    def windows(self, delta: float, mean_a: np.ndarray, var_a: np.ndarray, sd: np.ndarray, zb: float):
        """Per line (row) and band, the sorted positions [lo, hi) of the SKUs b with
        |delta - (mean_b - mean_a)| <= zb x (the band's largest pair sd now) + drift: every
        pair outside has |z| > zb."""
        half = zb * np.sqrt(self.sdmax2 + var_a[:, None]) + self.drift
        return self._search((delta + mean_a)[:, None], half)

    def unit_windows(self, delta: float, K: int, sn2: float, sd: np.ndarray, zb: float):
        """Per k = 1..K (row) and band, the sorted positions [lo, hi) of the SKUs i with
        |delta / k - mean_i| <= zb x sqrt(k x (the band's largest sd now)^2 + sn2) / k + drift:
        every k-unit add outside has |z| > zb (z = (delta - k mean_i) / sqrt(k sd_i^2 + sn2))."""
        ks = np.arange(1, K + 1, dtype=float)[:, None]
        half = zb * np.sqrt(ks * self.sdmax2[None, :] + sn2) / ks + self.drift
        return self._search(delta / ks, half)

    def _search(self, centre: np.ndarray, half: np.ndarray):
        lo = self.keys.searchsorted((np.clip(centre - half, *self.lim) + self.base).ravel(), "left")
        hi = self.keys.searchsorted((np.clip(centre + half, *self.lim) + self.base).ravel(), "right")
        return lo.reshape(half.shape), hi.reshape(half.shape)

    def pairs(self, lo: np.ndarray, hi: np.ndarray, n: int):
        """The (row, catalogue index) pairs inside the windows, row by row (not in catalogue
        order within a row: ties are broken by the full block's position, `dense position`)."""
        c = (hi - lo).ravel()
        rows = np.repeat(np.repeat(np.arange(lo.shape[0]), lo.shape[1]), c)
        pos = np.repeat(lo.ravel() - (np.cumsum(c) - c), c) + np.arange(len(rows))
        return rows, self.perm[pos]

    def outside(self, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """For (row, packaged catalogue index) pairs: True where the pair is not in the windows."""
        p, b = self.pos_of[cols], self.band_of[cols]
        return (p < lo[rows, b]) | (p >= hi[rows, b])


def top_with_ties(v: np.ndarray, cut: float, m: int, pos: np.ndarray | None) -> np.ndarray:
    """Indices of the m largest v, best first, ties to the lowest `pos` (default the index),
    given `cut`, the m-th largest value. Only the values above the cut are sorted; of the
    (often many) ties at the cut only the lowest-positioned needed are picked."""
    above = np.flatnonzero(v > cut)
    above = above[np.lexsort((above if pos is None else pos[above], -v[above]))]
    need = m - len(above)
    if need <= 0:
        return above[:m]
    ties = np.flatnonzero(v == cut)
    if pos is not None and len(ties) > need:
        tp = pos[ties]
        first = np.argpartition(tp, need - 1)[:need] if len(ties) > need else np.arange(len(ties))
        ties = ties[first[np.argsort(tp[first], kind="stable")]]
    return np.concatenate((above, ties[:need]))


def _z_bound(floor: float, s_lo: float) -> float:
    """Beyond this many sd every weight likelihood of sd >= s_lo is below the floor."""
    if floor == -np.inf:
        return Z_WINDOW_NO_FLOOR
    return max(Z_WINDOW_MIN, math.sqrt(max(0.0, 2 * (-floor - math.log(s_lo) - _LOG_SQRT_2PI))) + 0.5)


def _special_units(vision: VisionSummary | None, cat: CatalogueIndex, known) -> np.ndarray:
    """Packaged SKUs whose vision or barcode factor differs from the rest's: scored by the
    camera, or read as a barcode (sorted catalogue indices)."""
    ix = set(known)
    if vision is not None and vision.n_frames > 0:
        ix.update(cat.idx[k] for k in vision.scores if k in cat.idx)
    ix = [i for i in ix if cat.unit_pos[i] >= 0]
    return np.array(sorted(ix), dtype=np.int64)


def _pair_weight_total(a_i: np.ndarray, a_unit: np.ndarray, units: np.ndarray, vis: np.ndarray,
                       known: np.ndarray | None, bo: float) -> float:
    """Sum over every swap pair (line SKU a -> packaged b, b != a) of its vision x barcode
    factor 0.5 (vis_b + vis_a) x (1 if a or b had a barcode read, else barcode_other).
    `a_unit`: which line SKUs are packaged (those have a pair with themselves to leave out)."""
    nu = float(len(units))
    vu = vis[units]
    v = float(vu.sum())
    va = vis[a_i]
    if known is None:
        w = 0.5 * (v + va * nu)
        w_self = va
    else:
        ku = known[units]
        nk, vk = float(ku.sum()), float(vu[ku].sum())
        ka = known[a_i]
        w = np.where(ka, 0.5 * (v + va * nu), 0.5 * (bo * (v - vk) + vk + va * (bo * (nu - nk) + nk)))
        w_self = np.where(ka, va, bo * va)
    return float(w.sum() - (w_self * a_unit).sum())


_LAST_VISION: list = [None, None, None, None, None]   # vision, cat, cfg -> vis, log(vis)


def vision_factor(vision: VisionSummary | None, cat: CatalogueIndex, cfg: ReconcileConfig) -> np.ndarray | None:
    """Per SKU (index n = "no product"), the detector's scores mixed with a uniform floor;
    None when no frame was seen (every factor is then 1 / (n + 1)). The last result is kept:
    score() and score_multi() ask for the same movement's in turn (an O(catalogue) array)."""
    if vision is None or vision.n_frames <= 0:
        return None
    lv = _LAST_VISION
    if lv[0] is vision and lv[1] is cat and lv[2] is cfg:
        return lv[3]
    vis = _vision_factor(vision, cat, cfg)
    lv[:] = [vision, cat, cfg, vis, None]
    return vis


def log_vision(vis: np.ndarray) -> np.ndarray:
    """np.log(vis), kept for the last vision_factor() result (and for a read-only flat one)."""
    lv = _LAST_VISION
    if not vis.flags.writeable:
        if lv[3] is not vis:
            lv[:] = [None, None, None, vis, np.log(vis)]
        return lv[4]
    if lv[3] is vis:
        if lv[4] is None:
            lv[4] = np.log(vis)
        return lv[4]
    return np.log(vis)


def _vision_factor(vision: VisionSummary, cat: CatalogueIndex, cfg: ReconcileConfig) -> np.ndarray:
    n = cat.n
    agg = np.zeros(n + 1)
    for s, v in vision.scores.items():
        i = cat.idx.get(s)
        if i is not None:
            agg[i] = v
    agg[n] = vision.none_score
    rest = max(0.0, 1.0 - float(agg.sum()))
    agg = agg / max(1.0, float(agg.sum())) + rest / (n + 1)
    return (1.0 - cfg.vision_floor) * agg + cfg.vision_floor / (n + 1)


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


def score(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
          lines: list[dict], personal: list[dict], vision: VisionSummary | None,
          cfg: ReconcileConfig) -> Scored:
    sc = _score(delta_g, noise_g, cat, book, lines, personal, vision, cfg, prune=True)
    if sc is None:       # pruning could change this event's result: score every pair
        STATS["fallback"] += 1
        sc = _score(delta_g, noise_g, cat, book, lines, personal, vision, cfg, prune=False)
    return sc


def _score(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
           lines: list[dict], personal: list[dict], vision: VisionSummary | None,
           cfg: ReconcileConfig, prune: bool) -> Scored | None:
    # Speed notes (results are those of the straightforward form to float precision, see
    # gateway/tests/test_scoring_identical.py): every hypothesis block is written
    # straight into preallocated columns (no per-block np.full / concatenate), the
    # k = 1..K unit blocks are one K x U array, a factor that is the same for every
    # hypothesis (uniform vision, no barcode) stays a scalar instead of an array, and
    # swap pairs that cannot fit the weight are pruned (above). Returns None when
    # `prune` was asked for but could change the result.
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
    pos = [p for p, ln in enumerate(lines) if ln["status"] == "accepted" and ln["sku"] in cat.idx]
    n_t = len(pos) + len(personal)
    n_add = K * nu if delta_g > 0 else 0
    n_prod = npr if delta_g > 0 else 0
    n_pers = 1 if delta_g > 0 and cfg.prior_personal > 0 else 0
    add_pruned = False              # some k-unit adds left out (counted at the floor)
    if n_add and prune and n_add >= PRUNE_MIN_PAIRS:
        sw = _SwapWindows.of(cat, book)
        s_lo_add = math.sqrt(float(sd[units].min()) ** 2 + sn2)     # the smallest sd of any add
        zb_add = _z_bound(floor, s_lo_add)
        lo, hi = sw.unit_windows(delta_g, K, sn2, sd, zb_add)
        add_r, add_c = sw.pairs(lo, hi, n)
        # the SKUs the vision or a barcode scored are always kept: the hidden ones then all
        # have the same (base) vision and barcode factor
        spec = _special_units(vision, cat, known)
        if len(spec):
            er, ec = np.repeat(np.arange(K), len(spec)), np.tile(spec, K)
            out = sw.outside(lo, hi, er, ec)
            add_r, add_c = np.concatenate((add_r, er[out])), np.concatenate((add_c, ec[out]))
        add_pruned = len(add_r) < n_add
        n_add = len(add_r)
    n_rw = n_sw = n_pr = 0
    n_rk = 0
    pruned = False                  # some swap pairs left out (counted at the floor)
    if n_t:
        lpos = np.array(pos, dtype=int)
        li = np.array([cat.idx[lines[p]["sku"]] for p in pos], dtype=int)
        lq = np.array([lines[p]["qty"] for p in pos], dtype=int)
        lbw = np.array([bool(lines[p]["by_weight"]) for p in pos], dtype=bool)
        lw = np.array([float(lines[p]["weight_g"]) for p in pos])
        if len(pos):
            n_rw = int(lbw.sum())
            # (k, line) for k units out of a packaged line, k-major: the order of one block per k
            rk_k, rk_l = np.nonzero((lq[None, :] >= np.arange(1, K + 1)[:, None]) & ~lbw[None, :])
            n_rk = len(rk_l)
            pk = ~lbw
            n_pk = int(pk.sum())
            if cfg.prior_swap > 0 and n_pk and nu:
                a_i, a_pos = li[pk], lpos[pk]
                if prune and n_pk * nu >= PRUNE_MIN_PAIRS:
                    sw = _SwapWindows.of(cat, book)
                    var_a = sd[a_i] ** 2 + sn2
                    # the swap sd is at least s_lo, so beyond zb sd the likelihood is below the floor
                    s_lo = math.sqrt(float(sd[units].min()) ** 2 + float(var_a.min()))
                    zb = _z_bound(floor, s_lo)
                    lo, hi = sw.windows(delta_g, mean[a_i], var_a, sd, zb)
                    sw_rows, sw_cols = sw.pairs(lo, hi, n)
                    pruned = len(sw_rows) < n_pk * nu
                else:
                    sw_rows = np.repeat(np.arange(n_pk), nu)
                    sw_cols = np.tile(units, n_pk)
                n_sw = len(sw_rows)
        if delta_g < 0:
            n_pr = len(personal)
    total = n_add + n_prod + n_pers + n_rw + n_rk + n_sw + n_pr
    if total == 0:
        if pruned:       # every pair was pruned: nothing left to compare them with
            return None
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
        return np.maximum(-0.5 * zz * zz - np.log(s_) - _LOG_SQRT_2PI, floor)

    ck_units = np.array([math.log(cfg.unit_prior_of(k)) - log_n for k in range(1, K + 1)])
    if n_add and add_pruned:
        # the k-unit adds that can fit (or that the camera named), in the full block's order
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
        ck = np.array([math.log(cfg.unit_prior_of(k)) - log_n for k in range(1, K + 1)])[:, None]
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
    same, wv = np.zeros(0, dtype=bool), None     # the kept swap pairs: for the same SKU, vision factors
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
            c_k = np.array([math.log(cfg.unit_prior_of(k)) - log_nt for k in range(1, K + 1)])
            lp[a:b] = c_k[rk_k] + lv_at(ix) + lb_at(ix) + ll
            meta(a, b, "remove", ix, rk_k + 1, lpos[rk_l], -1)
            at = b
        if n_sw:
            # swap: one unit of a packaged line (ra) out, one unit of a packaged SKU (cb) in
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
            dense_shift[0] += n_pk * nu - n_sw
        if n_pr:
            lvn = logv if uniform else logv[n]
            for p, it in enumerate(personal):
                sp = sn * math.sqrt(2.0)
                ll = max(float(_normal_logpdf(delta_g, np.array([-it["weight_g"]]), np.array([sp]))[0]), floor)
                lp[at] = -log_nt + lvn + ll
                mu[at] = -it["weight_g"]
                s[at] = sp
                np.divide(np.subtract(delta_g, mu[at:at + 1]), s[at:at + 1], out=z[at:at + 1])
                meta(at, at + 1, "personal_remove", -1, 1, p, -1)
                at += 1

    top = float(lp.max())
    post = np.exp(lp - top)
    norm = float(post.sum())
    visv = None
    lp_hidden = -np.inf             # the best any left-out hypothesis can score
    zb_min = math.inf               # every left-out hypothesis has |z| beyond this
    if pruned or add_pruned:
        visv = vis if not uniform else np.full(n + 1, u)
    if add_pruned:
        ll_max = floor if floor > -np.inf else -0.5 * zb_add * zb_add - math.log(s_lo_add) - _LOG_SQRT_2PI
        hid = np.ones(nu, dtype=bool)
        hid[cat.unit_pos[spec]] = False
        lv_h = math.log(float(visv[units][hid].max())) if hid.any() else -np.inf
        lb_h = math.log(cfg.barcode_other) if barcode else 0.0
        lp_hidden = max(lp_hidden, float(ck_units.max()) + lv_h + lb_h + ll_max)
        zb_min = min(zb_min, zb_add)
        if lp_hidden - top > math.log(HIDDEN_MAX_POSTERIOR):
            return None
        if floor > -np.inf:
            # a left-out add sits at the floor: exp(ck_k + floor - top) x its vision x barcode factor
            wu = visv[units] if not barcode else visv[units] * np.where(logb[units] == 0.0, 1.0, cfg.barcode_other)
            w_all = float(wu.sum())
            wk = visv[add_c] if not barcode else visv[add_c] * np.where(logb[add_c] == 0.0, 1.0, cfg.barcode_other)
            w_kept = np.bincount(add_r, weights=wk, minlength=K)
            norm += float(np.sum(np.exp(ck_units + floor - top) * (w_all - w_kept)))
        elif (K * nu - n_add) * math.exp(lp_hidden - top) > HIDDEN_MAX_MASS:
            return None
    if pruned:
        # the best any pruned pair can score: the floor (or the window's edge), the best vision, lb <= 0
        ll_max = floor if floor > -np.inf else -0.5 * zb * zb - math.log(s_lo) - _LOG_SQRT_2PI
        lp_hidden_sw = c_swap + math.log(float(visv[:n].max())) + ll_max
        lp_hidden = max(lp_hidden, lp_hidden_sw)
        zb_min = min(zb_min, zb)
        if lp_hidden_sw - top > math.log(HIDDEN_MAX_POSTERIOR):
            return None
        if floor > -np.inf:
            # every pruned pair sits at the floor, so together they add exp(c_swap + floor - top)
            # x their vision x barcode factors: all pairs' factors minus the kept pairs'
            a_unit = cat.unit_pos[a_i] >= 0
            if uniform and not barcode:
                w_pruned = u * (n_pk * nu - int(a_unit.sum()) - (n_sw - int(same.sum())))
            else:
                kn = None
                bo = cfg.barcode_other
                if barcode:
                    kn = np.zeros(n + 1, dtype=bool)
                    kn[known] = True
                w_pruned = _pair_weight_total(a_i, a_unit, units, visv, kn, bo)
                if n_sw:
                    kept = np.full(n_sw, u) if uniform else wv
                    if barcode:
                        kept = kept * np.where(kn[cb] | kn[ra], 1.0, bo)
                    w_pruned -= float(kept.sum() - kept[same].sum())
            norm += math.exp(c_swap + floor - top) * w_pruned
        elif (n_pk * nu - n_sw) * math.exp(lp_hidden_sw - top) > HIDDEN_MAX_MASS:
            return None
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
    if (pruned or add_pruned) and (len(order) < m_top or lp[order[-1]] <= lp_hidden + 1e-9 or best_fit > zb_min):
        return None          # a left-out hypothesis could be among the top ones or the best fit
    STATS["pruned" if pruned or add_pruned else "full"] += 1
    hyps = []
    for j in order:
        kd = KINDS[int(kind[j])]
        h = {"kind": kd, "sku": cat.skus[int(ski[j])] if ski[j] >= 0 else None, "k": int(kk[j]),
             "target": _target(kd, int(line[j]), lines, personal), "posterior": float(post[j]), "mu_g": round(float(mu[j]), 3),
             "sd_g": round(float(s[j]), 3), "z": round(float(z[j]), 3)}
        if kd == "swap":
            h["remove_sku"] = cat.skus[int(aux[j])]
        hyps.append(h)
    swap = None
    # the book's figures as scored: a kept score may be asked again after the book learned
    snap = (mean.copy(), sd.copy()) if pruned or add_pruned else None
    if pruned:   # what best_with_sku needs to score a pruned swap again
        swap = {"delta": delta_g, "sn2": sn2, "floor": floor, "c_swap": c_swap, "top": top, "norm": norm,
                "mean": snap[0], "sd": snap[1], "vis": vis, "lv_swap": lv_swap,
                "logb": logb if barcode else None, "a_i": a_i, "a_pos": a_pos}
    adds = None
    if add_pruned:   # what best_with_sku needs to score a left-out add again
        adds = {"delta": delta_g, "sn2": sn2, "floor": floor, "ck": ck_units, "top": top, "norm": norm,
                "mean": snap[0], "sd": snap[1], "logv": logv, "logb": logb if barcode else None}
    # log_z: the log normaliser, posterior_j = exp(lp_j - log_z) (score_multi merges on this scale)
    arrays = {"adds": adds, "post_scale": 1.0, "post": post, "kind": kind, "ski": ski, "k": kk, "line": line, "aux": aux, "z": z, "mu": mu, "sd": s,
              "lines": lines, "personal": personal, "swap": swap, "log_z": top + math.log(norm)}
    return Scored(hyps, evidence, best_fit, unknown, arrays)


def _swap_column(sw: dict, i: int):
    """Every swap hypothesis that adds SKU i (one per packaged line), scored as in the full block."""
    a_i, mean, sd = sw["a_i"], sw["mean"], sw["sd"]
    mu = mean[i] - mean[a_i]
    s = np.sqrt(sd[i] ** 2 + sd[a_i] ** 2 + sw["sn2"])
    z = (sw["delta"] - mu) / s
    ll = np.maximum(-0.5 * z * z - np.log(s) - _LOG_SQRT_2PI, sw["floor"])
    vis, logb = sw["vis"], sw["logb"]
    lv = sw["lv_swap"] if vis is None else np.log(0.5 * (vis[i] + vis[a_i]))
    lb = np.maximum(logb[i], logb[a_i]) if logb is not None else 0.0
    lp = sw["c_swap"] + lv + lb + ll
    lp[a_i == i] = -np.inf
    return mu, s, z, np.exp(lp - sw["top"]) / sw["norm"]


def _add_column(ad: dict, i: int):
    """The k = 1..K unit adds of SKU i, scored as in the full block (with the book's figures
    as they were when the movement was scored)."""
    K = len(ad["ck"])
    kf = np.arange(1, K + 1, dtype=float)
    mu = kf * ad["mean"][i]
    s = np.sqrt(kf * ad["sd"][i] ** 2 + ad["sn2"])
    z = (ad["delta"] - mu) / s
    ll = np.maximum(-0.5 * z * z - np.log(s) - _LOG_SQRT_2PI, ad["floor"])
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
    lazy = not removal and sw is not None and cat.unit_pos[i] >= 0
    if lazy:              # swaps into `sku` may have been pruned: take its whole column instead
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
        cmu, csd, cz, cpost = _swap_column(sw, i)
        nl = len(cz)
        kind = np.concatenate((kind, np.full(nl, KINDS.index("swap"))))
        k = np.concatenate((k, np.ones(nl, dtype=np.int64)))
        ln = np.concatenate((ln, sw["a_pos"]))
        aux = np.concatenate((aux, sw["a_i"]))
        post, z, mu, sd = (np.concatenate(x) for x in ((post, cpost), (z, cz), (mu, cmu), (sd, csd)))
    if not len(z):
        return None
    fits = np.flatnonzero(np.abs(z) <= max_z)
    if len(fits):   # the shopper names the item; the posterior picks k, or add vs swap
        j = int(fits[np.argmax(post[fits])])
    else:
        j = int(np.argmin(np.abs(z)))
    kd = KINDS[int(kind[j])]
    h = {"kind": kd, "sku": sku, "k": int(k[j]), "target": _target(kd, int(ln[j]), a["lines"], a["personal"]),
         "posterior": float(post[j]), "mu_g": round(float(mu[j]), 3),
         "sd_g": round(float(sd[j]), 3), "z": round(float(z[j]), 3)}
    if kd == "swap":
        h["remove_sku"] = cat.skus[int(aux[j])]
    return h


def _target(kind: str, pos: int, lines: list[dict], personal: list[dict]) -> str | None:
    """The basket line (or personal item) a removal / swap hypothesis acts on."""
    if kind in ("remove", "swap"):
        return lines[pos]["line_id"]
    if kind == "personal_remove":
        return personal[pos]["pid"]
    return None


class MovementScores:
    """One cart's scored movements, kept while they may be scored again: a movement that
    asked the shopper is scored again when the answer comes, and if what the score reads of
    the cart has not changed since (the basket, the personal items, the vision, recent
    removals) the decision's score is the answer's. Transient (not part of the cart's state): after a
    restart the answer is simply scored again. Entries live only while their movement is
    open (waiting, asked or answered), so memory is bounded by the open prompts.

    The WeightBook is not part of the key: learning from other carts between a decision and
    its answer moves a few SKUs' figures by a gram or so, and the answer is checked against
    the evidence the shopper was asked about (the simulator's decisions are the same either
    way, docs/gateway.md)."""

    def __init__(self, book: WeightBook):
        self.book = book
        self._by_move: dict[str, tuple[tuple, Scored]] = {}

    @staticmethod
    def _inputs(delta_g, noise_g, lines, personal, vision, recent_out) -> tuple:
        lf = tuple((ln["line_id"], ln["sku"], ln["qty"], ln["status"], ln["by_weight"], ln["weight_g"]) for ln in lines)
        pf = tuple((p["pid"], p["weight_g"]) for p in personal)
        vf = None if vision is None else (tuple(vision.scores.items()), vision.none_score, tuple(vision.barcodes),
                                          vision.n_frames)
        return (float(delta_g), float(noise_g), lf, pf, vf, tuple(recent_out or ()))

    def get(self, move_id: str, open_moves: set, compute, delta_g, noise_g, lines, personal, vision,
            recent_out=None) -> Scored:
        """The score of `move_id` for these inputs: the kept one if they are unchanged, else
        `compute()`. Drops the entries of movements not in `open_moves`."""
        for mid in [m for m in self._by_move if m not in open_moves and m != move_id]:
            del self._by_move[mid]
        key = self._inputs(delta_g, noise_g, lines, personal, vision, recent_out)
        kept = self._by_move.get(move_id)
        if kept is not None and kept[0] == key:
            STATS["reused"] += 1
            sc = kept[1]
            arrays = dict(sc.arrays, lines=lines, personal=personal) if sc.arrays else sc.arrays
            return Scored(_copy_hyps(sc.hyps), list(sc.evidence), sc.best_fit_z, list(sc.unknown_barcodes), arrays)
        sc = compute()
        self._by_move[move_id] = (key, Scored(_copy_hyps(sc.hyps), list(sc.evidence), sc.best_fit_z,
                                               list(sc.unknown_barcodes), sc.arrays))
        return sc


def _copy_hyps(hyps: list[dict]) -> list[dict]:
    """Copies the engine may change without touching the kept ones (a hypothesis holds
    scalars and, for multi-product ones, lists of SKUs and dicts of counts)."""
    out = []
    for h in hyps:
        c = dict(h)
        for k, v in c.items():
            if isinstance(v, (list, dict)):
                c[k] = type(v)(v)
        out.append(c)
    return out
