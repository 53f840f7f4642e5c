"""Simulated shoppers: what each one physically does, and what they answer.

A plan is a list of actions; each action records what really went in and out
of the cart (`adds`, `removes`: (sku, units, grams) per product; personal
items as sku None). The runner (fastsim.py) turns actions into loads on the
load cell and scenes for the camera; this module never looks at the gateway.
"""
from __future__ import annotations

import random
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
        n_items = max(1, min(b["max_items"], round(rng.gammavariate(2.0, b["mean_items"] / 2.0))))
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


def which_part(action: Action, delta_g: float) -> str | None:
    """Which part of the action a settled weight change is: "whole", "in" (only what went
    in), "out" (only what came out), or None when it is none of them (a hand, a lean)."""
    parts = {"whole": sum(g for _, _, g in action.adds) - sum(g for _, _, g in action.removes),
             "in": sum(g for _, _, g in action.adds), "out": -sum(g for _, _, g in action.removes)}
    if action.kind == "put_back":
        parts.pop("whole")       # out and back in are two movements
    parts = {k: v for k, v in parts.items() if v}
    if not parts:
        return None
    which = min(parts, key=lambda k: abs(parts[k] - delta_g))
    if abs(parts[which] - delta_g) > max(25.0, 0.1 * abs(parts[which])):
        return None
    return which


def answer_for(action: Action | None, prompt: dict, delta_g: float, catalogue, rng: random.Random,
               error_rate: float) -> dict:
    """The shopper's §11 choice for a prompt about the movement `action` caused."""
    if action is None or which_part(action, delta_g) is None:
        return {"none": True}     # not something the shopper put in or took out
    items = action.adds if delta_g > 0 else action.removes
    if action.cheat in ("cover", "declare_personal") and delta_g > 0:
        return {"personal": True}
    if action.cheat == "label_swap" and delta_g > 0:
        s = catalogue[action.label_sku]
        return {"barcode": s.ean13} if prompt["kind"] == "scan" else {"sku": s.sku}
    swap = action.kind == "swap" and bool(_units(action.removes)) and bool(_units(action.adds))
    if not items and not swap:
        return {"none": True}
    sku = items[0][0] if items else None
    if sku is None and not swap:
        return {"personal": True}
    named = _units(action.removes) + _units(action.adds) if swap else _units(items)
    opts = [o for o in prompt.get("options", []) if sorted(o.get("skus") or [o["sku"]]) != sorted(named)]
    if opts and rng.random() < error_rate:
        o = rng.choice(opts)                 # a tap on the wrong picture
        return {"skus": list(o["skus"])} if o.get("skus") else {"sku": o["sku"]}
    if swap:
        # "which items did you move?": both, the one taken out and the one put in
        return {"skus": named}
    if len({x for x in _units(items)}) > 1:
        return {"skus": _units(items)}       # two different products at once: name both
    if prompt["kind"] == "scan":
        return {"barcode": catalogue[sku].ean13}
    return {"sku": sku}


def verdict_for(action: Action | None, delta_g: float, done_in: dict | None = None,
                done_out: dict | None = None) -> dict:
    """The reviewer sees the frames, the weight trace, the shopper and the basket so far:
    the truth of this movement, i.e. the part of the action not yet accounted for.
    `done_in` / `done_out`: what the gateway already charged / credited for this action
    (per SKU, units; grams for produce; "personal" for personal items). Returns the §13
    fields: sku/qty, plus adds/removes lists when one SKU cannot say it."""
    if action is None:
        return {"sku": None, "qty": 0}

    def remaining(items, done):
        done = dict(done or {})
        out = []
        for sku, units, _ in items:
            key = "personal" if sku is None else sku
            n = 1 if sku is None else units
            got = done.get(key, 0)
            taken = min(n, int(got)) if got >= 1 else 0     # produce: grams, so any charge covers the bag
            if n - taken > 0:
                out.append((sku, n - taken))
            done[key] = got - taken
        return out

    rem_in, rem_out = remaining(action.adds, done_in), remaining(action.removes, done_out)
    which = which_part(action, delta_g)
    if action.kind in ("swap", "add") and rem_in and rem_out and which in ("whole", None):
        ins, outs = rem_in, rem_out
    elif delta_g > 0 and rem_in:
        ins, outs = rem_in, []
    elif delta_g < 0 and rem_out:
        ins, outs = [], rem_out
    else:
        return {"sku": None, "qty": 0}     # nothing of this action is left to account for: a hand, a lean
    if len(ins) + len(outs) == 1:
        sku, units = (ins or outs)[0]
        return {"sku": sku, "qty": units}
    first = (ins or outs)[0]
    return {"sku": first[0], "qty": first[1],
            "adds": [{"sku": sku, "qty": units} for sku, units in ins],
            "removes": [{"sku": sku, "qty": units} for sku, units in outs]}
