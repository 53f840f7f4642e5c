"""Is a receipt right? One rule for the fast simulation and for scoring a replay
against a trace's truth (`cart-gateway replay --truth`): the receipt's accepted
lines must be exactly the units in the cart, and produce (priced by the scale)
within 2 % or 5 cents of its true price."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Judgement:
    receipt_ok: bool
    wrong: bool
    charged_cents: int = 0
    over_cents: int = 0
    under_cents: int = 0
    detail: dict = field(default_factory=dict)


def judge_receipt(cat, units: Counter, produce_cents: Counter, truth_cents: int, receipt: dict | None) -> Judgement:
    """units: sku -> count of packed items; produce_cents: sku -> true price of the produce in the cart."""
    if not receipt or not receipt.get("ok"):
        return Judgement(False, True, detail={"refused": receipt.get("reason") if receipt else "none"})
    got, got_prod = Counter(), Counter()
    for ln in receipt["lines"]:
        if ln["status"] != "accepted" or ln["sku"] is None:
            continue
        if cat[ln["sku"]].sold_by_weight:
            got_prod[ln["sku"]] += ln["price_cents"]
        else:
            got[ln["sku"]] += ln["qty"]
    # Produce is priced by the scale: a few grams either way is the
    # sensor's accuracy, not a wrong basket (2 % or 5 cents).
    prod_ok = set(produce_cents) == set(got_prod) and all(
        abs(produce_cents[s] - got_prod[s]) <= max(5, 0.02 * produce_cents[s]) for s in produce_cents)
    wrong = units != got or not prod_ok
    charged = receipt["total_cents"]
    diff = charged - truth_cents
    j = Judgement(True, wrong, charged, max(0, diff), max(0, -diff))
    if wrong:
        j.detail = {"missing": dict(units - got), "extra": dict(got - units),
                    "produce_true": dict(produce_cents), "produce_charged": dict(got_prod)}
    return j
