"""Issue 12, the oracle floor (floor12d): what a perfect camera, scale and shopper still asked,
driven with synthetic evidence through the engine (docs/reconciliation.md §4.4.2)."""
from test_reconcile_cases import SKUS, Cart
from test_reconcile_policy import BIG, _answer, _short_burst_units, _units

from cart_gateway.reconcile import ReconcileConfig
from cart_bench.synth import sku

TWINS = [sku("tea-a", 200.0, 2.0, 299), sku("tea-b", 201.0, 2.0, 349)]


def _units_asked_with_a_doubtful_posterior(cfg=None):
    """3 x tea-a from a burst with a missed frame, the weight 3.2 sd off 3 units: the posterior is
    below the accept threshold as well. Returns the cart, the decisions and the open prompt."""
    c = Cart(cfg=cfg, skus=SKUS + BIG + TWINS)
    d = _short_burst_units(c, "tea-a", 612.0)
    (p,) = c.e.open_prompts()
    return c, d, p


def test_units_whose_posterior_is_doubtful_too_are_asked_once_with_the_readings():
    # the floor: "which item?" (single pictures), a tap on A, then "3 x A or 2 x A + B?": two prompts
    c, d, p = _units_asked_with_a_doubtful_posterior()
    assert "posterior below threshold" in d[-1]["cause"] and d[-1]["cause"].startswith("k units"), d[-1]
    shown = {tuple(sorted(o.get("skus") or [o["sku"]])): o["name"] for o in p["options"]}
    assert shown[("tea-a",) * 3].startswith("3 x "), shown
    fx = _answer(c, skus=("tea-a",) * 3)
    assert not fx["prompts_opened"] and not fx["reviews_opened"], fx["decisions"]
    assert _units(c) == {"tea-a": 3}
    # off: single pictures first, and the tap on tea-a asks again
    c, d, p = _units_asked_with_a_doubtful_posterior(ReconcileConfig(units_readings_when_doubtful=False))
    assert not any(o["name"].startswith("3 x ") for o in p["options"]), p["options"]
    assert len(_answer(c, sku="tea-a")["prompts_opened"]) == 1

