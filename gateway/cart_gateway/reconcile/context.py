"""What the scorers read of the basket, and the prior over unit counts (the "context" factor).

`BasketArrays`: the accepted lines of catalogue SKUs as arrays, in one pass over the lines.
score_multi builds it once and hands it to score(), which used to rebuild it (and score_multi
once more for its removal pairs): three Python passes over ~170 lines a decision at 30,000 SKUs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .catindex import CatalogueIndex
from .config import ReconcileConfig


@dataclass(frozen=True)
class BasketArrays:
    """The accepted lines whose SKU the catalogue knows, in basket order."""
    pos: np.ndarray          # their positions in the lines list
    sku_ix: np.ndarray       # catalogue index
    qty: np.ndarray
    by_weight: np.ndarray    # bool: a bag of loose produce
    weight_g: np.ndarray

    @classmethod
    def of(cls, lines: list[dict], cat: CatalogueIndex) -> "BasketArrays":
        idx = cat.idx
        rows = [(p, i, ln["qty"], bool(ln["by_weight"]), float(ln["weight_g"])) for p, ln in enumerate(lines)
                if ln["status"] == "accepted" and (i := idx.get(ln["sku"])) is not None]
        if not rows:
            z = np.zeros(0, dtype=int)
            return cls(z, z, z, np.zeros(0, dtype=bool), np.zeros(0))
        pos, ix, qty, bw, w = zip(*rows)
        return cls(np.array(pos, dtype=int), np.array(ix, dtype=int), np.array(qty, dtype=int),
                   np.array(bw, dtype=bool), np.array(w, dtype=float))

    def __len__(self) -> int:
        return len(self.pos)


_UNIT_LOG_PRIORS: dict = {}


def unit_log_priors(cfg: ReconcileConfig, K: int, m: int) -> np.ndarray:
    """log(unit_prior_of(k)) - log(m) for k = 1..K (read-only, kept per unit_prior, K and m)."""
    key = (tuple(cfg.unit_prior), K, m)
    a = _UNIT_LOG_PRIORS.get(key)
    if a is None:
        if len(_UNIT_LOG_PRIORS) > 4096:
            _UNIT_LOG_PRIORS.clear()
        lm = math.log(m)
        a = _UNIT_LOG_PRIORS[key] = np.array([math.log(cfg.unit_prior_of(k)) - lm for k in range(1, K + 1)])
        a.flags.writeable = False
    return a
