"""Simulated shoppers: what each one physically does, and what they answer.

A plan is a list of actions; each action records what really went in and out
of the cart (`adds`, `removes`: (sku, units, grams) per product; personal
items as sku None). The runner (fastsim.py) turns actions into loads on the
load cell and scenes for the camera; this module never looks at the gateway.
A shopper answers a prompt from the prompt as the cart screen shows it and from
what they did (`Did`: products and counts, no grams), never from the scale.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

PERSONAL = (  # name, grams lo..hi (estimates: a tote bag, a phone, a child's toy)
    ("bag", 250.0, 900.0), ("phone", 150.0, 230.0), ("toy", 60.0, 450.0))
PRODUCE_BAG_G = 6.0   # a thin produce bag


@dataclass
class Action:
    kind: str                     # add, remove, put_back, swap, personal_in, personal_out, lean, produce
    adds: list = field(default_factory=list)      # (sku|None, units, grams)
    removes: list = field(default_factory=list)   # (sku|None, units, grams)
    view: str = "clear"           # camera condition: clear, hard, oov, hand, covered
    push: bool = False
    bump: bool = False
    hand_rest: bool = False
    cheat: str | None = None      # cover, declare_personal, label_swap
    label_sku: str | None = None  # label_swap: the cheap SKU whose label is on the pack
    personal_class: str | None = None  # personal_in/out: bag, phone, toy (what the camera would see)
    think_ms: int = 10000


class Shopper:
    def __init__(self, scenario: dict, catalogue, rng: random.Random):
        self.sc, self.cat, self.rng = scenario, catalogue, rng
        self.packaged = [s for s in catalogue if not s.sold_by_weight]
        self.produce = [s for s in catalogue if s.sold_by_weight]
        self.by_family: dict[str, list] = {}
        for s in self.packaged:
            self.by_family.setdefault(s.family, []).append(s)
        self.by_weight = sorted(self.packaged, key=lambda s: s.weight_mean_g)
        d = scenario["dishonest"]
        self.dishonest = rng.random() < d["fraction"]
        self.in_cart: list = []       # [sku, grams] per unit
        self.personal: list = []      # (grams, class)
        self.last = None

    # --- choosing products ---------------------------------------------
    def _pick(self):
        rng, b = self.rng, self.sc["baskets"]
        if self.last is not None and rng.random() < b["p_lookalike"]:
            if rng.random() < 0.5:
                fam = [s for s in self.by_family[self.last.family] if s.sku != self.last.sku]
                if fam:
                    return rng.choice(fam)
            i = self.by_weight.index(self.last)
            near = [s for s in self.by_weight[max(0, i - 3): i + 4]
                    if s.sku != self.last.sku and abs(s.weight_mean_g - self.last.weight_mean_g)
                    <= 0.03 * self.last.weight_mean_g + 5]
            if near:
                return rng.choice(near)
        return rng.choice(self.packaged)

    def _view(self, item_kind: str = "item") -> str:
        rng, cam, beh = self.rng, self.sc["camera"], self.sc["behaviour"]
        if rng.random() < beh["p_out_of_view"]:
            return "oov"
        return "hard" if rng.random() < cam["p_hard_view"] else "clear"

    def _decorate(self, a: Action) -> Action:
        beh, rng = self.sc["behaviour"], self.rng
        a.push = rng.random() < beh["p_push"]
        a.bump = rng.random() < beh["p_bump"]
        a.hand_rest = bool(a.adds) and rng.random() < beh["p_hand_rest"]
        a.think_ms = int(1000 * rng.uniform(beh["think_s_min"], beh["think_s_max"]))
        return a

    def _add_action(self, weigh) -> Action:
        rng, b = self.rng, self.sc["baskets"]
        if self.produce and rng.random() < b["p_produce"]:
            s = rng.choice(self.produce)
            g = PRODUCE_BAG_G + rng.uniform(0.3, 2.5) * s.weight_mean_g
            return Action("produce", adds=[(s.sku, 1, g)], view=self._view())
        s = self._pick()
        self.last = s
        units = 1
        if rng.random() < b["p_multi_units"]:
            units = rng.randint(2, b["units_per_pick_max"]) if b["units_per_pick_max"] > 1 else 1
        adds = [(s.sku, units, sum(weigh(s) for _ in range(units)))]
        if rng.random() < b["p_two_items"]:
            s2 = self._pick()
            adds.append((s2.sku, 1, weigh(s2)))
        a = Action("add", adds=adds, view=self._view())
        if self.dishonest and rng.random() < self.sc["dishonest"]["p_act"]:
            self._cheat(a)
        return a

    def _cheat(self, a: Action) -> None:
        d, rng = self.sc["dishonest"], self.rng
        tricks = [("cover", d["w_cover"]), ("declare_personal", d["w_declare_personal"]),
                  ("label_swap", d["w_label_swap"])]
        r = rng.uniform(0, sum(w for _, w in tricks))
        for name, w in tricks:
            r -= w
            if r <= 0 and w > 0:
                break
        a.cheat = name
        if name == "cover":
            a.view = "covered"
        elif name == "declare_personal":
            a.view = "hand"         # held so the camera sees a hand, not the label
        else:   # a cheap label on a dear pack: the cheapest SKU of similar weight
            sku = self.cat[a.adds[0][0]]
            alts = [s for s in self.packaged if s.price_cents < sku.price_cents
                    and abs(s.weight_mean_g - sku.weight_mean_g) < 0.15 * sku.weight_mean_g]
            a.label_sku = min(alts, key=lambda s: s.price_cents).sku if alts else None
            if a.label_sku is None:
                a.cheat = None

    # --- a whole session ---------------------------------------------------
    def plan(self, weigh) -> list[Action]:
        """Actions until `n_items` product units went in (removals come on top)."""
        rng, b, beh = self.rng, self.sc["baskets"], self.sc["behaviour"]
        n_items = max(1, min(b["max_items"], round(rng.gammavariate(b["size_shape"], b["mean_items"] / b["size_shape"]))))
        out: list[Action] = []
        added = 0
        while added < n_items:
            r = rng.random()
            a = None
            if self.in_cart and r < beh["p_remove"]:
                i = rng.randrange(len(self.in_cart))
                sku, g = self.in_cart.pop(i)
                a = Action("remove", removes=[(sku, 1, g)], view=self._view())
            elif self.in_cart and r < beh["p_remove"] + beh["p_put_back"]:
                sku, g = rng.choice(self.in_cart)
                a = Action("put_back", adds=[(sku, 1, g)], removes=[(sku, 1, g)], view=self._view())
            elif self.in_cart and r < beh["p_remove"] + beh["p_put_back"] + beh["p_swap"]:
                i = rng.randrange(len(self.in_cart))
                sku, g = self.in_cart.pop(i)
                s2 = self._pick()
                g2 = weigh(s2)
                self.in_cart.append([s2.sku, g2])
                a = Action("swap", removes=[(sku, 1, g)], adds=[(s2.sku, 1, g2)], view=self._view())
            elif r < beh["p_remove"] + beh["p_put_back"] + beh["p_swap"] + beh["p_personal"]:
                if self.personal and rng.random() < 0.3:
                    g, name = self.personal.pop(rng.randrange(len(self.personal)))
                    a = Action("personal_out", removes=[(None, 1, g)], view="hand", personal_class=name)
                else:
                    name, lo, hi = rng.choice(PERSONAL)
                    g = rng.uniform(lo, hi)
                    self.personal.append((g, name))
                    a = Action("personal_in", adds=[(None, 1, g)], view="hand", personal_class=name)
            elif r > 1.0 - beh["p_lean"]:
                a = Action("lean", view="hand")
            else:
                a = self._add_action(weigh)
                for sku, units, g in a.adds:
                    for _ in range(units):
                        self.in_cart.append([sku, g / units])
                    added += units
            out.append(self._decorate(a))
        return out


def _units(items) -> list[str]:
    """One entry per product unit (personal items and produce bags count once)."""
    return [sku for sku, units, _ in items if sku is not None for _ in range(units)]


@dataclass(frozen=True)
class Did:
    """What a shopper knows of what they just did: the products (one entry per unit, None for a
    personal item) that went in and came out, and any trick. No grams: a shopper does not know
    what the scale read, nor how the gateway split the action into movements."""
    kind: str
    put_in: tuple = ()
    took_out: tuple = ()
    cheat: str | None = None
    label_sku: str | None = None

    @classmethod
    def of(cls, a: Action) -> "Did":
        def units(items):
            return tuple(sku for sku, n, _ in items for _ in range(1 if sku is None else n))
        return cls(a.kind, units(a.adds), units(a.removes), a.cheat, a.label_sku)


def _option_units(o: dict) -> list:
    return list(o.get("skus") or [o["sku"]])


def _tap(o: dict) -> dict:
    """The §11 choice a tap on option `o` sends (as the cart screen does, web/forms.screen_choice)."""
    return {"skus": list(o["skus"])} if o.get("skus") else {"sku": o["sku"]}


def _choose_option(options: list, want: list, whole: list | None) -> dict | None:
    """The option a shopper recognises as what they handled: the whole swap, then exactly these
    units, then the same products in another count, then one showing only products they handled
    and no more of any than they handled ("A" when they put in A and B, never "2 x A": a picture
    with a count that is not theirs is not what they did)."""
    want_c, whole_c = Counter(want), Counter(whole or ())
    for test in ((lambda u: whole is not None and Counter(u) == whole_c),
                 (lambda u: Counter(u) == want_c),
                 (lambda u: set(u) == set(want)),
                 (lambda u: set(u) <= set(want) and not Counter(u) - want_c)):
        hits = [o for o in options if test(_option_units(o))]
        if hits:    # the closest count first (a screen shows "2 x A" beside "A")
            return min(hits, key=lambda o: abs(len(_option_units(o)) - len(want)))
    return None


def intended_choice(did: Did | None, prompt: dict, catalogue) -> dict:
    """The §11 choice a shopper means to make, from the prompt as the cart screen shows it (its
    kind, its options: pictures and names; "It's my own item", "None of these", a barcode field)
    and what they did. The gateway's settled weight plays no part."""
    if did is None or did.kind == "lean":
        return {"none": True}             # they put nothing in and took nothing out
    asks_out = prompt.get("kind") == "removal"    # "Which item did you just take out?"; else "put in"
    side = list(did.took_out if asks_out else did.put_in)
    if not asks_out and did.cheat in ("cover", "declare_personal"):
        return {"personal": True}
    if not side:
        return {"none": True}             # asked what went in when they only took out (or the reverse)
    products = [x for x in side if x is not None]
    if not products:
        return {"personal": True}
    options = list(prompt.get("options", []))
    if not asks_out and did.cheat == "label_swap" and did.label_sku:
        products = [did.label_sku] * len(products)     # they act out the label they stuck on
    whole = None
    if did.kind == "swap" and did.put_in and did.took_out:
        whole = [x for x in did.put_in + did.took_out if x is not None]
    if options and whole is None and all(" instead of " in o.get("name", "") for o in options):
        return {"none": True}     # every picture is a swap ("B instead of A"), and they swapped nothing
    o = _choose_option(options, products, whole)
    handled = whole or products
    shown = {s for x in options for s in _option_units(x)}
    missing = [x for x in products if x not in shown]
    if prompt.get("kind") == "scan" and (len(set(handled)) == 1 or o is None
                                         or Counter(_option_units(o)) not in (Counter(products), Counter(handled))):
        # as asked (two products: unless one picture shows both); the one the screen does not show first
        return {"barcode": catalogue[(missing or products)[0]].ean13}
    if o is not None:
        return _tap(o)
    if missing and shown & set(products) and whole is None and not asks_out:
        # "A + B" not among the pictures ("2 x A", "A + C"): they scan the one the screen does not show
        return {"barcode": catalogue[missing[0]].ean13}
    if any(set(_option_units(x)) & set(products) for x in options):
        return {"none": True}     # their product is shown only in what they did not do ("B instead of A")
    return {"barcode": catalogue[products[0]].ean13}   # not on the screen: scan it from the pack


def answer_for(action: Action | None, prompt: dict, catalogue, rng: random.Random,
               error_rate: float) -> dict:
    """The shopper's §11 choice for `prompt`, given only what they see (the prompt) and what they
    just did (`action`, read as `Did`: no weights); with `error_rate` a tap on another picture.
    A slip is a touch aimed at one picture that lands on another: a shopper who scans the pack
    aims at no picture, so a scan does not slip (the barcode names the pack)."""
    did = None if action is None else Did.of(action)
    choice = intended_choice(did, prompt, catalogue)
    if "sku" in choice or "skus" in choice or "barcode" in choice:
        meant = (choice["skus"] if "skus" in choice else [choice["sku"]] if "sku" in choice
                 else [getattr(catalogue.by_ean(choice["barcode"]), "sku", None)])
        others = [o for o in prompt.get("options", []) if Counter(_option_units(o)) != Counter(meant)]
        # drawn for a scan too, unused: the draws after it stay those of a run where scans slipped
        if others and rng.random() < error_rate and "barcode" not in choice:
            return _tap(rng.choice(others))      # a tap on the wrong picture
    return choice
