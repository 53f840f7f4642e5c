"""A synthetic catalogue for the engine's tests and micro-benchmark.

Uses `cart_gateway.catalogue.Sku` when that module is present; otherwise a
record with the same fields (the engine only reads attributes).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

try:
    from cart_gateway.catalogue import Sku
except ImportError:  # catalogue module not merged yet
    @dataclass(frozen=True)
    class Sku:  # type: ignore[no-redef]
        sku: str
        name: str
        brand: str
        family: str
        variant: str
        shape: str
        ean13: str
        price_cents: int
        sold_by_weight: bool
        net_g: float
        tare_g: float
        weight_mean_g: float
        weight_sd_g: float


def ean13(body12: str) -> str:
    """Append the EAN-13 check digit."""
    s = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body12))
    return body12 + str((10 - s % 10) % 10)


def sku(code: str, mean: float, sd: float, price: int = 199, by_weight: bool = False, name: str | None = None) -> Sku:
    body = f"200{zlib.crc32(code.encode()) % 10**9:09d}"   # deterministic, unlike hash()
    return Sku(sku=code, name=name or code.replace("-", " ").title(), brand="Test", family=code.split("-")[0],
               variant="", shape="box", ean13=ean13(body), price_cents=price, sold_by_weight=by_weight,
               net_g=0.0 if by_weight else mean * 0.9, tare_g=0.0 if by_weight else mean * 0.1,
               weight_mean_g=mean, weight_sd_g=sd)


def synthetic(n: int = 300, seed: int = 7, produce: int = 10) -> list[Sku]:
    """`n` SKUs with weights 30..2000 g, sd 1-3 %, `produce` of them sold by weight."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i < produce:
            out.append(Sku(sku=f"prod-{i:03d}", name=f"Produce {i}", brand="", family="produce", variant="",
                           shape="loose", ean13=ean13(f"21{i:010d}"), price_cents=int(rng.integers(99, 899)),
                           sold_by_weight=True, net_g=0.0, tare_g=0.0, weight_mean_g=600.0, weight_sd_g=300.0))
            continue
        mean = float(np.exp(rng.uniform(np.log(30), np.log(2000))))
        out.append(Sku(sku=f"sku-{i:03d}", name=f"Item {i}", brand="B", family="f", variant="", shape="box",
                       ean13=ean13(f"40{i:010d}"), price_cents=int(rng.integers(49, 1999)), sold_by_weight=False,
                       net_g=mean * 0.9, tare_g=mean * 0.1, weight_mean_g=round(mean, 1),
                       weight_sd_g=round(mean * float(rng.uniform(0.01, 0.03)) + 0.5, 2)))
    return out


def catalogue(skus: list[Sku]):
    """A `Catalogue` of these records when the catalogue module offers `from_skus`, else the list."""
    try:
        from cart_gateway.catalogue import Catalogue
        return Catalogue.from_skus(list(skus))
    except (ImportError, AttributeError):
        return list(skus)
