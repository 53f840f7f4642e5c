"""The catalogue as arrays for scoring, and the scorer's result record."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
KINDS = ("add", "remove", "swap", "personal", "personal_remove")
_NO_UNITS = np.zeros(0, dtype=np.int64)     # family_units of a SKU without a family
_NO_UNITS.flags.writeable = False


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
        self.weight_index = None    # weightindex.WeightIndex, built on first use per WeightBook figures
        self._family_units: dict | None = None

    def family_units(self, i: int) -> np.ndarray:
        """The packaged SKUs (catalogue indices, sorted) of SKU i's look-alike family, i among
        them; empty when it has none. Built once, on first use."""
        if self._family_units is None:
            fam: dict = {}
            for j in self.units:
                f = getattr(self.items[self.skus[j]], "family", None)
                if f is not None:
                    fam.setdefault(f, []).append(int(j))
            self._family_units = {f: np.array(v, dtype=np.int64) for f, v in fam.items()}
        return self._family_units.get(getattr(self.items[self.skus[i]], "family", None), _NO_UNITS)

    def sku_of_barcode(self, code: str) -> str | None:
        return self.ean.get(code)


@dataclass
class Scored:
    hyps: list[dict]            # top hypotheses, best first, each with "posterior"
    evidence: list[str]         # which evidence counted
    best_fit_z: float           # smallest |z| of any product hypothesis (weight fit)
    unknown_barcodes: list[str]
    arrays: dict                # all hypotheses (not serialised): for answer checks


def normal_logpdf(x: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mu) / sd
    return -0.5 * z * z - np.log(sd) - LOG_SQRT_2PI


def target_of(kind: str, pos: int, lines: list[dict], personal: list[dict]) -> str | None:
    """The basket line (or personal item) a removal / swap hypothesis acts on."""
    if kind in ("remove", "swap"):
        return lines[pos]["line_id"]
    if kind == "personal_remove":
        return personal[pos]["pid"]
    return None
