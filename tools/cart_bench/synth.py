"""Synthetic catalogues: small hand-made ones for the engine's tests (`sku`, `synthetic`), and a
store of any size for benchmarks (`store_catalogue`), shaped like the packaged one: families of
look-alikes, nominal pack sizes shared across brands (weight-alikes), produce sold by weight."""
from __future__ import annotations

import zlib

import numpy as np

from cart_gateway.catalogue import Catalogue, Sku


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


def catalogue(skus: list[Sku]) -> Catalogue:
    """A `Catalogue` of these records."""
    return Catalogue(list(skus), f"synthetic({len(skus)})")


# ---- a store of any size, like tools/cart_model/catalogue_gen.py's (which makes the packaged 317)
LINES = ["", "Bio", "Premium", "Kids", "Family", "Light", "Gold", "Select", "Fresh", "Classic"]
# Loose produce: about 300 fresh-produce items in a well-stocked store (Produce Retailer, "The star of
# the show"), i.e. 1.5 % of a 20,000-SKU store; all taken as loose PLUs sold by weight (estimate: some
# are pre-packed). docs/simulation.md "Catalogue and scene pools".
PRODUCE_SHARE = 0.015
MAX_PRODUCE = 600
# Named generated stores (`--catalogue store-20k`): the packaged catalogue's SKUs (the ones the
# shipped detector was trained on) plus generated ones up to the size.
STORE_SIZES = {"store-20k": 20000}


def store_catalogue(n: int, seed: int = 1, looks: bool = True, base: Catalogue | None = None) -> Catalogue:
    """`n` SKUs shaped like a supermarket's: 1.5 % loose produce (at least the 32 kinds of the
    packaged catalogue while n allows, at most 600 PLUs), the rest
    packaged in look-alike families (brand x product line x product; variants differ by
    colour, flavour text at the same net weight, or by size), on the nominal pack sizes every brand
    uses (so many packs of other families weigh the same: the weight-alikes), with the e-mark
    spread of catalogue_gen. `looks`: the renderer's hints (colours, logo), drawn from their own
    seeded stream so the weights do not depend on them. `base`: SKUs the store also sells (e.g. the
    packaged catalogue, whose SKUs the shipped detector knows), counted in n and in the produce
    share. Seeded and deterministic; generated SKU ids `S000001`..."""
    import random

    from cart_model.catalogue_gen import BRANDS, FLAVOURS, PRODUCE, PRODUCTS, family_looks, pack_spread_g, produce_look
    if n < 2:
        raise ValueError(f"store_catalogue: n must be >= 2, got {n}")
    rng = random.Random(seed)
    look_rng = random.Random(f"looks|{seed}")
    n_produce = max(1, min(MAX_PRODUCE, max(round(PRODUCE_SHARE * n), min(len(PRODUCE), n // 10))))
    combos = [(shape, p) for shape, ps in PRODUCTS.items() for p in ps]
    items: list[Sku] = []
    kept = list(base or [])
    base_produce = sum(s.sold_by_weight for s in kept)
    if len(kept) >= n:
        raise ValueError(f"store_catalogue: n={n} must exceed the base's {len(kept)} SKUs")
    n_packs = n - n_produce - (len(kept) - base_produce)      # packs still to generate
    n_loose = max(0, n_produce - base_produce)                # loose produce still to generate

    def add(**kw) -> None:
        i = len(items) + 1
        prefix = "21" if kw["sold_by_weight"] else "40"
        items.append(Sku(sku=f"S{i:06d}", ean13=ean13(f"{prefix}{i:010d}"), **kw))

    f = 0
    while len(items) < n_packs:
        shape, (product, nets, tare_ratio, price_kg) = combos[f % len(combos)]
        k = f // len(combos)
        brand = BRANDS[(f * 7 + k) % len(BRANDS)] + (f" {k // len(BRANDS) + 1}" if k >= len(BRANDS) else "")
        line = LINES[k % len(LINES)]
        family = f"F{f + 1:05d}"
        flavours = FLAVOURS[product]
        size_family = f % 3 == 2 and len(nets) > 1
        if size_family:                      # a size family: one flavour in every pack size
            variants = [(flavours[0], net) for net in nets]
        else:                                # flavours of one pack size: look-alikes of one weight
            net = rng.choice(nets)
            variants = [(fl, net) for fl in flavours[:rng.randint(2, len(flavours))]]
        kind = "size" if size_family else ("colour", "text")[f % 3 % 2]
        fam_looks = family_looks(look_rng, kind, len(variants)) if looks else [None] * len(variants)
        for (flavour, net), look in zip(variants, fam_looks):
            if len(items) >= n_packs:
                break
            tare = round(max(2.0, net * tare_ratio * rng.uniform(0.8, 1.2)), 1)
            mean = round(net * rng.uniform(1.0, 1.01) + tare, 1)   # packers overfill slightly
            price = int(round(price_kg * net / 1000 * rng.uniform(0.8, 1.3), -1)) - 1
            name = " ".join(x for x in (brand, line, product, flavour, f"{net:g} g") if x)
            add(name=name, brand=brand, family=family, variant=f"{flavour} {net:g} g", shape=shape,
                price_cents=max(49, price), sold_by_weight=False, net_g=float(net), tare_g=tare,
                weight_mean_g=mean, weight_sd_g=pack_spread_g(net, tare), look=look)
        f += 1
    first = len(PRODUCE) if base_produce else 0    # the base sells grade 1 of each kind already
    for j in range(first, first + n_loose):
        name, unit_g, colour = PRODUCE[j % len(PRODUCE)]
        grade = j // len(PRODUCE)
        add(name=name + (f" grade {grade + 1}" if grade else ""), brand="Loose", family=f"P{j + 1:04d}",
            variant=name, shape="produce", price_cents=int(round(rng.uniform(99, 799), -1)) - 1,
            sold_by_weight=True, net_g=0.0, tare_g=0.0, weight_mean_g=float(unit_g),
            weight_sd_g=round(0.18 * unit_g, 1),
            look=produce_look(look_rng, name, colour, grade) if looks else None)
    return Catalogue(kept + items, f"store_catalogue(n={n}, seed={seed}{', with ' + base.source if base else ''})")
