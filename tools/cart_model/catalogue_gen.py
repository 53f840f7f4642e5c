"""Generate a synthetic store catalogue (see docs/catalogue.md).

Families of brand x variant: look-alike packages that differ only in colour,
flavour text or size. Per-pack weight spread follows the EU e-mark tolerable
negative error (Directive 76/211/EEC; docs/figures.md).
Seeded: the same seed gives the same file.
"""
from __future__ import annotations

import random

from cart_gateway.catalogue import Catalogue, Sku, ean13_check_digit

BRANDS = ["Alpenhof", "Brisa", "Castello", "Dorfkind", "Elmwood", "Fjordo", "Granja", "Hollis",
          "Isola", "Juniper", "Kestrel", "Lumbra", "Mirabel", "Nordvik", "Orchard", "Pampa",
          "Quinta", "Rivale", "Solvita", "Tundra", "Umbria", "Vesta", "Wexford", "Yarrow", "Zephyr"]
PRODUCTS = {  # shape: [(product, net weights g, tare per g of net, price cents per kg)]
    "box": [("Cereal", [375, 500, 750], 0.08, 700), ("Crackers", [100, 200, 250], 0.10, 1200),
            ("Tea", [20, 40, 50], 0.35, 9000), ("Pasta", [500, 1000], 0.02, 300),
            ("Biscuits", [150, 300], 0.10, 900), ("Rice", [1000, 2000, 3000], 0.01, 250)],
    "bottle": [("Juice", [330, 1000], 0.12, 250), ("Oil", [500, 750], 0.45, 900),
               ("Ketchup", [300, 500], 0.15, 600), ("Water", [500, 1500], 0.04, 80)],
    "can": [("Soup", [400], 0.14, 500), ("Soda", [330, 500], 0.05, 300),
            ("Beans", [200, 400], 0.15, 400), ("Tuna", [80, 160], 0.30, 2500)],
    "bag": [("Chips", [45, 150, 200], 0.07, 1500), ("Coffee", [250, 500, 1000], 0.04, 2000),
            ("Flour", [1000, 2500], 0.01, 150), ("Candy", [30, 100], 0.08, 1800),
            ("Nuts", [100, 200], 0.06, 2600)],
}
FLAVOURS = {"Cereal": ["Honey", "Choco", "Classic", "Fruit"], "Crackers": ["Salted", "Herb", "Cheese"],
            "Tea": ["Green", "Mint", "Earl Grey", "Chamomile"], "Pasta": ["Penne", "Fusilli", "Spaghetti"],
            "Biscuits": ["Butter", "Choco", "Oat"], "Rice": ["Basmati", "Jasmine", "Brown"],
            "Juice": ["Orange", "Apple", "Multi"], "Oil": ["Olive", "Sunflower", "Rapeseed"],
            "Ketchup": ["Classic", "Hot", "Curry"], "Water": ["Still", "Sparkling", "Lemon"],
            "Soup": ["Tomato", "Pea", "Chicken", "Lentil"], "Soda": ["Cola", "Lemon", "Orange", "Zero"],
            "Beans": ["Baked", "Kidney", "Chili"], "Tuna": ["Oil", "Water", "Chili"],
            "Chips": ["Salted", "Paprika", "Vinegar", "Sour Cream"], "Coffee": ["Mild", "Strong", "Decaf"],
            "Flour": ["Wheat", "Rye", "Spelt"], "Candy": ["Fruit", "Mint", "Cola"], "Nuts": ["Salted", "Plain", "Honey"]}
PRODUCE = [("Apple", 180, (200, 40, 40)), ("Green apple", 180, (120, 190, 60)), ("Banana", 120, (240, 215, 60)),
           ("Orange", 200, (245, 150, 30)), ("Lemon", 110, (245, 230, 70)), ("Tomato", 90, (215, 40, 30)),
           ("Potato", 170, (190, 150, 100)), ("Onion", 150, (200, 160, 110)), ("Carrot", 70, (240, 120, 30)),
           ("Cucumber", 300, (50, 130, 50)), ("Red pepper", 160, (200, 20, 20)), ("Yellow pepper", 160, (240, 200, 20)),
           ("Avocado", 200, (60, 90, 40)), ("Kiwi", 90, (130, 100, 60)), ("Pear", 180, (190, 200, 80)),
           ("Plum", 60, (100, 40, 90)), ("Peach", 150, (240, 160, 110)), ("Mango", 350, (240, 170, 50)),
           ("Garlic", 50, (235, 230, 215)), ("Aubergine", 300, (70, 30, 80)), ("Zucchini", 250, (60, 120, 50)),
           ("Broccoli", 350, (40, 110, 40)), ("Cauliflower", 600, (235, 230, 200)), ("Grapefruit", 350, (240, 140, 90)),
           ("Lime", 70, (100, 170, 40)), ("Red onion", 150, (140, 50, 80)), ("Sweet potato", 300, (190, 100, 70)),
           ("Beetroot", 150, (120, 20, 50)), ("Mushroom", 20, (220, 210, 190)), ("Ginger", 80, (210, 180, 120)),
           ("Melon", 1500, (200, 210, 120)), ("Pineapple", 1200, (200, 160, 50))]
LOGOS = ["circle", "triangle", "star", "diamond", "square", "ring"]


def e_mark_tne_g(net_g: float) -> float:
    """Tolerable negative error, Directive 76/211/EEC Annex I table."""
    if net_g <= 50:
        return 0.09 * net_g
    if net_g <= 100:
        return 4.5
    if net_g <= 200:
        return 0.045 * net_g
    if net_g <= 300:
        return 9.0
    if net_g <= 500:
        return 0.03 * net_g
    if net_g <= 1000:
        return 15.0
    return 0.015 * net_g


def pack_spread_g(net_g: float, tare_g: float) -> float:
    """Per-pack sd: a packer fills so that about 2.5% of packs are short by more than
    the TNE (the directive's rule), i.e. sd = TNE / 1.96; the packaging adds ~3%."""
    sd_fill = e_mark_tne_g(net_g) / 1.96
    sd_tare = 0.03 * tare_g
    return round((sd_fill ** 2 + sd_tare ** 2) ** 0.5, 2)


def _ean(rng: random.Random, prefix: str, used: set[str]) -> str:
    while True:
        body = prefix + "".join(str(rng.randrange(10)) for _ in range(12 - len(prefix)))
        code = body + str(ean13_check_digit(body))
        if code not in used:
            used.add(code)
            return code


def _colour(rng: random.Random) -> list[int]:
    return [rng.randrange(20, 236) for _ in range(3)]


def _far_colour(rng: random.Random, others: list[list[int]]) -> list[int]:
    """A colour at least some distance from the others (look-alikes differ only by it)."""
    for _ in range(200):
        c = _colour(rng)
        if all(sum((a - b) ** 2 for a, b in zip(c, o)) > 90 ** 2 for o in others):
            return c
    return c


def family_looks(rng: random.Random, kind: str, n: int) -> list[dict]:
    """The renderer's hints for the n variants of one family: one design, and the variants
    differ only by `kind` (colour: the pack colour; text: the flavour text; size: the net weight)."""
    base = {"bg": _colour(rng), "band": _colour(rng), "text": rng.choice([[255, 255, 255], [20, 20, 20]]),
            "logo": rng.choice(LOGOS), "logo_colour": _colour(rng), "aspect": round(rng.uniform(0.55, 0.85), 2)}
    out, colours = [], []
    for _ in range(n):
        look = dict(base, family_kind=kind)
        if kind == "colour":
            look["bg"] = _far_colour(rng, colours)
            colours.append(look["bg"])
        out.append(look)
    return out


def produce_look(rng: random.Random, name: str, colour, grade: int = 0) -> dict:
    """Loose produce: its colour (a grade or variety a little lighter or darker), count and elongation."""
    f = 1.0 + 0.08 * ((grade % 5) - 2) if grade else 1.0
    return {"bg": [max(0, min(255, int(c * f))) for c in colour], "count": rng.randint(1, 4),
            "elong": round(rng.uniform(0.6, 1.0) if name not in ("Banana", "Carrot", "Cucumber", "Zucchini") else 0.3, 2)}


def generate(seed: int = 1, n_families: int = 112) -> Catalogue:
    rng = random.Random(seed)
    used_ean: set[str] = set()
    items: list[Sku] = []
    n = 0
    combos = [(shape, p) for shape, ps in PRODUCTS.items() for p in ps]
    for f in range(n_families):
        shape, (product, nets, tare_ratio, price_kg) = combos[f % len(combos)]
        brand = BRANDS[(f * 7 + f // len(combos)) % len(BRANDS)]
        family = f"F{f + 1:03d}"
        # How this family's look-alikes differ: colour, flavour text, or size.
        kind = ("colour", "text", "size")[f % 3]
        base = {"bg": _colour(rng), "band": _colour(rng), "text": rng.choice([[255, 255, 255], [20, 20, 20]]),
                "logo": rng.choice(LOGOS), "logo_colour": _colour(rng), "aspect": round(rng.uniform(0.55, 0.85), 2)}
        flavours = FLAVOURS[product]
        if kind == "size":
            variants = [(flavours[0], net) for net in nets] if len(nets) > 1 else [(fl, nets[0]) for fl in flavours[:2]]
        else:
            k = rng.randint(2, len(flavours)) if len(flavours) > 2 else 2
            net = rng.choice(nets)
            variants = [(fl, net) for fl in flavours[:k]]
        colours: list[list[int]] = []
        for flavour, net in variants:
            n += 1
            look = dict(base, family_kind=kind)
            if kind == "colour":
                look["bg"] = _far_colour(rng, colours)
                colours.append(look["bg"])
            tare = round(max(2.0, net * tare_ratio * rng.uniform(0.8, 1.2)), 1)
            mean = round(net * rng.uniform(1.0, 1.01) + tare, 1)  # packers overfill slightly
            price = int(round(price_kg * net / 1000 * rng.uniform(0.8, 1.3), -1)) - 1
            items.append(Sku(sku=f"SKU{n:04d}", name=f"{brand} {product} {flavour} {net:g} g", brand=brand,
                             family=family, variant=f"{flavour} {net:g} g", shape=shape,
                             ean13=_ean(rng, "40", used_ean), price_cents=max(49, price), sold_by_weight=False,
                             net_g=float(net), tare_g=tare, weight_mean_g=mean,
                             weight_sd_g=pack_spread_g(net, tare), look=look))
    # Produce, sold by weight: in-store EAN prefix 2x, price per kg.
    for i, (name, unit_g, colour) in enumerate(PRODUCE):
        n += 1
        items.append(Sku(sku=f"SKU{n:04d}", name=name, brand="Loose", family=f"P{i + 1:03d}", variant=name,
                         shape="produce", ean13=_ean(rng, "21", used_ean),
                         price_cents=int(round(rng.uniform(99, 799), -1)) - 1, sold_by_weight=True,
                         net_g=0.0, tare_g=0.0, weight_mean_g=float(unit_g), weight_sd_g=round(0.18 * unit_g, 1),
                         look={"bg": list(colour), "count": rng.randint(1, 4),
                               "elong": round(rng.uniform(0.6, 1.0) if name not in ("Banana", "Carrot", "Cucumber", "Zucchini") else 0.3, 2)}))
    return Catalogue(items, f"generated(seed={seed})")


def weight_alike_pairs(cat: Catalogue, within_sd: float = 1.0) -> list[tuple[str, str]]:
    """Pairs from different families whose mean gross weights are within `within_sd` pooled sd."""
    packs = sorted((s for s in cat if not s.sold_by_weight), key=lambda s: s.weight_mean_g)
    out = []
    for i, a in enumerate(packs):
        for b in packs[i + 1:]:
            if b.weight_mean_g - a.weight_mean_g > 3 * max(a.weight_sd_g, b.weight_sd_g) + 1:
                break
            pooled = (a.weight_sd_g ** 2 + b.weight_sd_g ** 2) ** 0.5
            if a.family != b.family and abs(a.weight_mean_g - b.weight_mean_g) <= within_sd * pooled:
                out.append((a.sku, b.sku))
    return out
