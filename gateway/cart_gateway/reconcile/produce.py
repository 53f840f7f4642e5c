"""Per-SKU weight model of loose produce: how much a shopper puts in one bag.

Packaged products have a unit weight, so the scale names them; produce does
not, so the camera names it and the weight only has to be plausible (and sets
the price). The model is log-normal per SKU: bags of a few items, from half a
typical item to many. Prior: median `produce_prior_items` × the catalogue's
typical single-item weight, log-sd `produce_prior_log_sd`, worth
`learn_prior_strength` bags; every confirmed produce sale (accepted, answered,
reviewed) refines it. Store-wide, like the WeightBook (docs/reconciliation.md §3).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass


@dataclass
class _Stats:
    n: int = 0
    mean: float = 0.0      # of log grams
    m2: float = 0.0


class ProduceBook:
    def __init__(self, typical_g: dict[str, float], prior_items: float = 2.0, prior_log_sd: float = 0.8,
                 prior_strength: float = 4.0):
        self.prior = {s: (math.log(max(1.0, g * prior_items)), prior_log_sd) for s, g in sorted(typical_g.items())}
        self.k0 = prior_strength
        self.stats: dict[str, _Stats] = {}

    @classmethod
    def for_catalogue(cls, items, prior_items: float = 2.0, prior_log_sd: float = 0.8,
                      prior_strength: float = 4.0) -> "ProduceBook":
        return cls({s.sku: float(s.weight_mean_g) for s in items if s.sold_by_weight},
                   prior_items, prior_log_sd, prior_strength)

    def knows(self, sku: str) -> bool:
        return sku in self.prior

    def params(self, sku: str) -> tuple[float, float]:
        """(mean, sd) of log grams of one bag of `sku`: the prior moved by the observed bags."""
        mu0, sd0 = self.prior[sku]
        st = self.stats.get(sku)
        if st is None or st.n == 0:
            return mu0, sd0
        k = self.k0 + st.n
        mu = (self.k0 * mu0 + st.n * st.mean) / k
        var = (self.k0 * sd0 * sd0 + st.m2 + self.k0 * st.n * (st.mean - mu0) ** 2 / k) / k
        return mu, max(0.05, math.sqrt(var))

    def z(self, sku: str, grams: float) -> float:
        """How far a bag of `grams` is from what this SKU's bags weigh (log scale, in sd)."""
        if grams <= 0:
            return math.inf
        mu, sd = self.params(sku)
        return (math.log(grams) - mu) / sd

    def observe(self, sku: str, grams: float) -> None:
        if sku not in self.prior or grams <= 0:
            return
        st = self.stats.setdefault(sku, _Stats())
        x = math.log(grams)
        st.n += 1
        d = x - st.mean
        st.mean += d / st.n
        st.m2 += d * (x - st.mean)

    def to_dict(self) -> dict:
        return {"v": 1, "stats": {s: [st.n, st.mean, st.m2] for s, st in sorted(self.stats.items())}}

    def load_dict(self, d: dict) -> None:
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError(f"produce book: expected v=1, got {d.get('v') if isinstance(d, dict) else d!r}")
        self.stats = {s: _Stats(int(n), float(m), float(m2)) for s, (n, m, m2) in d["stats"].items() if s in self.prior}


# one produce book per catalogue index: store-wide like the WeightBook, without a new constructor
# argument for the service (which shares one index among its carts). Not persisted yet: after a
# restart the catalogue prior holds until confirmed bags teach it again.
_BOOKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def produce_book_for(index, cfg) -> ProduceBook:
    pb = _BOOKS.get(index)
    if pb is None:
        pb = _BOOKS[index] = ProduceBook.for_catalogue(
            (index.items[index.skus[i]] for i in index.produce),
            cfg.produce_prior_items, cfg.produce_prior_log_sd, cfg.learn_prior_strength)
    return pb
