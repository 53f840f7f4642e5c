"""Learned per-SKU weight distributions (store-wide, separate serialisable state).

Each SKU's catalogue weight (mean, sd) is a Normal-Inverse-Gamma prior worth
`prior_strength` pseudo-observations. Confirmed single-unit events add
observations (Welford running mean / M2); the posterior predictive
(Student-t, used as a Normal with the same variance) replaces the catalogue
figures, so tolerances tighten as the store is used.
"""
from __future__ import annotations

import math

import numpy as np

CHANGED_KEEP = 1 << 16


class WeightBook:
    def __init__(self, skus: list[str], prior_mean: np.ndarray, prior_sd: np.ndarray,
                 prior_strength: float, min_sd_g: float):
        self.skus = list(skus)
        self._idx = {s: i for i, s in enumerate(self.skus)}
        self.prior_mean = np.asarray(prior_mean, dtype=float)
        self.prior_sd = np.maximum(np.asarray(prior_sd, dtype=float), min_sd_g)
        self.n0 = float(prior_strength)
        self.min_sd_g = float(min_sd_g)
        self.stats: dict[str, list[float]] = {}   # sku -> [n, mean, m2]
        self.mean = self.prior_mean.copy()
        self.sd = self.prior_sd.copy()
        # bumped whenever mean / sd change; `changed` lists the SKU indices observe() moved since
        # the last reset (load_dict), so scoring's weight index follows them without a full pass
        self.version = 0
        self.changed: list[int] = []
        self.reset_count = 0
        self._snap: tuple | None = None
        self._min_sd: dict[int, tuple] = {}

    @classmethod
    def for_catalogue(cls, catalogue, prior_strength: float = 4.0, min_sd_g: float = 1.0) -> "WeightBook":
        items = list(catalogue)
        return cls([s.sku for s in items], np.array([s.weight_mean_g for s in items], float),
                   np.array([s.weight_sd_g for s in items], float), prior_strength, min_sd_g)

    def index(self, sku: str) -> int:
        return self._idx[sku]

    def observe(self, sku: str, weight_g: float) -> None:
        """One confirmed unit of `sku` weighed `weight_g` on the scale."""
        if sku not in self._idx:
            raise KeyError(f"WeightBook.observe: unknown sku {sku!r}")
        w = float(weight_g)
        if not math.isfinite(w) or w <= 0:
            raise ValueError(f"WeightBook.observe: weight_g must be finite and > 0, got {weight_g!r}")
        n, mean, m2 = self.stats.get(sku, [0.0, 0.0, 0.0])
        n += 1.0
        d = w - mean
        mean += d / n
        m2 += d * (w - mean)
        self.stats[sku] = [n, mean, m2]
        self._refresh(self._idx[sku])
        self.version += 1
        self.changed.append(self._idx[sku])
        if len(self.changed) > CHANGED_KEEP:      # bounded: readers that fall behind rebuild
            self.changed = []
            self.reset_count += 1

    def _refresh(self, i: int) -> None:
        n, xbar, m2 = self.stats.get(self.skus[i], [0.0, 0.0, 0.0])
        mu0, sd0, k0 = self.prior_mean[i], self.prior_sd[i], self.n0
        a0 = k0 / 2.0
        b0 = a0 * sd0 * sd0 * k0 / (k0 + 1.0)   # predictive sd at n=0 equals sd0
        kn = k0 + n
        mun = (k0 * mu0 + n * xbar) / kn
        an = a0 + n / 2.0
        bn = b0 + m2 / 2.0 + k0 * n * (xbar - mu0) ** 2 / (2.0 * kn)
        self.mean[i] = mun
        self.sd[i] = max(math.sqrt(bn * (kn + 1.0) / (an * kn)), self.min_sd_g)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (mean, sd) as they are now, shared by every caller until the next change
        (a kept score reads the figures it was scored with; copying both per event is
        2 x O(catalogue)). Read-only."""
        key = (self.version, self.reset_count)
        if self._snap is None or self._snap[0] != key:
            m, s = self.mean.copy(), self.sd.copy()
            m.flags.writeable = s.flags.writeable = False
            self._snap = (key, m, s)
        return self._snap[1], self._snap[2]

    def min_sd(self, ix: np.ndarray) -> float:
        """min(sd[ix]) for an index array that lives as long as the book (the catalogue's
        packaged SKUs): kept until the next change (an O(catalogue) pass per scoring else)."""
        key = (self.version, self.reset_count, id(ix))
        kept = self._min_sd.get(id(ix))
        if kept is None or kept[0] != key:
            kept = self._min_sd[id(ix)] = (key, float(self.sd[ix].min()), ix)   # ix kept: its id stays unique
        return kept[1]

    def n_obs(self, sku: str) -> int:
        return int(self.stats.get(sku, [0])[0])

    def params(self, sku: str) -> tuple[float, float]:
        i = self._idx[sku]
        return float(self.mean[i]), float(self.sd[i])

    def to_dict(self) -> dict:
        return {"v": 1, "stats": {k: list(self.stats[k]) for k in sorted(self.stats)}}

    def load_dict(self, d: dict) -> None:
        """Restore learned statistics; SKUs no longer in the catalogue are kept but unused."""
        if not isinstance(d, dict) or d.get("v") != 1 or not isinstance(d.get("stats"), dict):
            raise ValueError("WeightBook state: expected {'v': 1, 'stats': {...}}")
        stats = {}
        for k, st in d["stats"].items():
            if not (isinstance(st, list) and len(st) == 3 and st[0] >= 0 and st[2] >= 0):
                raise ValueError(f"WeightBook state: stats[{k!r}] must be [n >= 0, mean, m2 >= 0]")
            stats[k] = [float(x) for x in st]
        self.stats = stats   # validated first: a bad state changes nothing
        self.mean = self.prior_mean.copy()
        self.sd = self.prior_sd.copy()
        for k in self.stats:
            if k in self._idx:
                self._refresh(self._idx[k])
        self.version += 1
        self.changed = []
        self.reset_count += 1
