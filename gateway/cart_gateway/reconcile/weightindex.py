"""The weight index: packaged SKUs sorted by mean weight within bands of weight sd, so the
SKUs whose weight can fit a change are one contiguous run per band (binary search), and the
helpers the indexed scorers share (docs/reconciliation.md §8)."""
from __future__ import annotations

import math

import numpy as np

from .catindex import LOG_SQRT_2PI, CatalogueIndex
from .inputs import VisionSummary
from .weightbook import WeightBook

# A k-unit add (or a two-product pair) whose |z| is beyond the window bound has its weight
# likelihood at the floor (weight_lik_floor), so its posterior is a known constant times its
# vision x barcode factor: the scorer scores the hypotheses inside the windows one by one and
# counts the rest in closed form.
SD_BANDS = 6                    # packaged SKUs split by weight sd, each band sorted by mean weight
Z_WINDOW_MIN = 8.0              # never leave out a hypothesis that fits within this many sd
Z_WINDOW_NO_FLOOR = 12.0        # the bound when weight_lik_floor is 0 (no floor to count the rest at)
REBUILD_DRIFT_G = 2.0           # a learned mean moved further than this: the SKU is `moved`, always scored
MOVED_MAX = 256                 # sort the SKUs again once this many are `moved`


class WeightIndex:
    """Packaged SKUs in SD_BANDS bands of weight sd, each band sorted by mean weight, so the
    SKUs b that a change (an offset such as -k x mean_A, plus b) can fit are one contiguous
    run per band (binary search).
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
        # the figures now and the unit positions in sorted order: the compiled add block reads
        # them in a row instead of gathering them (fitkernel.add_block); of() keeps them current
        self.mean_p, self.sd_p = mean[self.perm], sd[self.perm]
        self.unit_pos_p = cat.unit_pos[self.perm]
        self.seen = (-1, 0)         # (book.reset_count, len(book.changed)) already folded in
        # SKUs whose mean moved more than REBUILD_DRIFT_G since the sort: the windows do not
        # cover them, so every caller scores them one by one (sorted catalogue indices)
        self.moved = np.zeros(0, dtype=np.int64)

    def _fold(self, ix: np.ndarray, book: WeightBook) -> None:
        """Take in SKUs (catalogue indices, packaged) whose figures changed since the sort: a
        small move widens the windows (drift, a band's largest sd), a larger one makes it `moved`."""
        d = np.abs(book.mean[ix] - self.mean_built[self.pos_of[ix]])
        small = d <= REBUILD_DRIFT_G
        if small.any():
            self.drift = max(self.drift, float(d[small].max()))
            # a band's largest sd only grows here (a smaller one keeps the window wider: still exact)
            np.maximum.at(self.sdmax2, self.band_of[ix[small]], book.sd[ix[small]] ** 2)
        if not small.all():
            self.moved = np.union1d(self.moved, ix[~small])

    @classmethod
    def of(cls, cat: CatalogueIndex, book: WeightBook) -> "WeightIndex":
        """The windows for the book's current figures. Learning moves a few means by a few
        grams per event: the windows then widen by the largest move since they were sorted
        (still exact); a SKU that moved further is scored one by one (`moved`), and the SKUs
        are sorted again only once MOVED_MAX of them did (a sort is ~100 ms at 30,000 SKUs)."""
        sw = cat.weight_index
        if sw is not None and len(book.mean) == cat.n and sw.book is book:
            if sw.seen[0] == book.reset_count:      # fold in only the SKUs learned since
                changed = book.changed[sw.seen[1]:]
                if changed:
                    ix = np.unique(np.array(changed, dtype=np.int64))
                    ix = ix[sw.pos_of[ix] >= 0]
                    if len(ix):
                        sw._fold(ix, book)
                        sw.mean_p[sw.pos_of[ix]] = book.mean[ix]
                        sw.sd_p[sw.pos_of[ix]] = book.sd[ix]
            else:
                sw.drift, sw.moved = 0.0, np.zeros(0, dtype=np.int64)
                sw.sdmax2 = np.maximum.reduceat(book.sd[sw.perm], sw.band_starts) ** 2
                sw._fold(sw.perm, book)
                sw.mean_p, sw.sd_p = book.mean[sw.perm], book.sd[sw.perm]
            sw.seen = (book.reset_count, len(book.changed))
            if len(sw.moved) <= MOVED_MAX:
                return sw
        sw = cat.weight_index = cls(cat, book.mean, book.sd)
        sw.book, sw.seen = book, (book.reset_count, len(book.changed))
        return sw

    def windows(self, delta: float, mean_a: np.ndarray, var_a: np.ndarray, sd: np.ndarray, zb: float):
        """Per row (an offset mean_a to take off, with its variance var_a) and band, the sorted
        positions [lo, hi) of the SKUs b with |delta - (mean_b - mean_a)| <= zb x (the band's
        largest pair sd now) + drift: every pair outside has |z| > zb."""
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


def weighs_as(cols: np.ndarray, i: int, book: WeightBook, z: float, sn: float) -> np.ndarray:
    """Per SKU in `cols`: |mean_j - mean_i| <= z x sqrt(sd_j^2 + sd_i^2 + sn^2), the book's figures now."""
    mean, sd = book.mean, book.sd
    return np.abs(mean[cols] - mean[i]) <= z * np.sqrt(sd[cols] ** 2 + sd[i] ** 2 + sn * sn)


def weight_alikes(i: int, cat: CatalogueIndex, book: WeightBook, z: float, sn: float) -> np.ndarray:
    """The packaged SKUs j != i that weigh the same as SKU i: |mean_j - mean_i| <= z x
    sqrt(sd_j^2 + sd_i^2 + sn^2), with the book's figures now (sorted catalogue indices). From
    the index's windows (a superset, tested exactly) and its `moved` SKUs. On a store-shaped
    catalogue a pack size is shared by thousands of SKUs (~2,300 at 30,000), so this costs
    about a dense scan: callers that need only whether there is one use any_weight_alike."""
    wi = WeightIndex.of(cat, book)
    lo, hi = wi.windows(0.0, np.array([book.mean[i]]), np.array([book.sd[i] ** 2 + sn * sn]), book.sd, z)
    cols = np.union1d(wi.pairs(lo, hi, cat.n)[1], wi.moved)
    cols = cols[cols != i]
    return cols[weighs_as(cols, i, book, z, sn)]


def any_weight_alike(i: int, cat: CatalogueIndex, book: WeightBook, z: float, sn: float) -> bool:
    """len(weight_alikes(...)) > 0, answered first from the SKUs next to i's weight in each sd
    band (at 30,000 SKUs a pack size is shared by ~2,300: one of them fits), the full search only
    when none of those does."""
    wi = WeightIndex.of(cat, book)
    m = float(np.clip(book.mean[i], *wi.lim))
    at = wi.keys.searchsorted(m + wi.base)                     # per band: the first mean >= i's
    ends = np.append(wi.band_starts[1:], len(wi.keys))
    probe = np.clip((at[:, None] + np.arange(-2, 2)).ravel(), np.repeat(wi.band_starts, 4), np.repeat(ends - 1, 4))
    cols = wi.perm[probe]
    cols = cols[cols != i]
    if weighs_as(cols, i, book, z, sn).any():
        return True
    return len(weight_alikes(i, cat, book, z, sn)) > 0


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
    if pos is not None and len(ties) > 1:      # array order is not `pos` order (window pairs)
        tp = pos[ties]
        first = np.argpartition(tp, need - 1)[:need] if len(ties) > need else np.arange(len(ties))
        ties = ties[first[np.argsort(tp[first], kind="stable")]]
    return np.concatenate((above, ties[:need]))


def z_bound(floor: float, s_lo: float) -> float:
    """Beyond this many sd every weight likelihood of sd >= s_lo is below the floor."""
    if floor == -np.inf:
        return Z_WINDOW_NO_FLOOR
    return max(Z_WINDOW_MIN, math.sqrt(max(0.0, 2 * (-floor - math.log(s_lo) - LOG_SQRT_2PI))) + 0.5)


def special_units(vision: VisionSummary | None, cat: CatalogueIndex, known) -> np.ndarray:
    """Packaged SKUs whose vision or barcode factor differs from the rest's: scored by the
    camera, or read as a barcode (sorted catalogue indices)."""
    ix = set(known)
    if vision is not None and vision.n_frames > 0:
        ix.update(cat.idx[k] for k in vision.scores if k in cat.idx)
    ix = [i for i in ix if cat.unit_pos[i] >= 0]
    return np.array(sorted(ix), dtype=np.int64)


def hidden_max(visv: np.ndarray, cat: CatalogueIndex, spec: np.ndarray) -> float:
    """log of the largest vision factor among the packaged SKUs not in `spec` (-inf: none).
    `spec` holds every SKU the camera scored, so the rest share one factor: the first of them
    is read (O(spec), not O(catalogue))."""
    if len(spec) < len(cat.units):     # one of the first len(spec) + 1 units is not in spec
        return math.log(float(visv[first_unit_not_in(cat, spec)]))
    hid = np.ones(len(cat.units), dtype=bool)
    hid[cat.unit_pos[spec]] = False
    return math.log(float(visv[cat.units][hid].max())) if hid.any() else -np.inf


def first_unit_not_in(cat: CatalogueIndex, spec: np.ndarray) -> int:
    """The lowest-indexed packaged SKU not in `spec` (sorted), -1 if none: its factors are the base ones."""
    head = cat.units[: len(spec) + 1]
    rest = head[~member_sorted(head, spec)]
    return int(rest[0]) if len(rest) else -1


def member_sorted(x: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """np.isin(x, sorted_set) for a small sorted set, by binary search (np.isin sorts both)."""
    if not len(sorted_set):
        return np.zeros(len(x), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, x), len(sorted_set) - 1)
    return sorted_set[at] == x
