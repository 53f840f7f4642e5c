"""`cart-sim bench`'s wrong_by_cause: each wrong basket attributed to the decision that charged the wrong thing."""
import pytest

from cart_gateway.catalogue import Catalogue
from cart_sim.bench import summarise
from cart_sim.fastsim import Store
from cart_sim.scenario import validate
from cart_sim.wrong_causes import AskInfo, Charge, culprit, decision_how, missed_cause

CAMERA = "accepted: camera + weight posterior"


def _is_produce(k):
    return k.startswith("P")


def test_decision_kinds_are_named_from_the_log_record():
    acc = {"outcome": "accept", "reason": "posterior above threshold", "evidence": ["weight", "vision"]}
    assert decision_how(acc) == CAMERA
    assert decision_how(dict(acc, evidence=["weight"])) == "accepted: weight only"
    assert decision_how(dict(acc, evidence=["weight", "vision", "barcode"])) == "accepted: barcode"
    assert decision_how(dict(acc, camera_led=True)).startswith("accepted: camera-led")
    ans = {"outcome": "answer", "reason": "shopper's choice fits the weight", "evidence": ["answer", "weight"]}
    assert decision_how(ans, AskInfo(error=True)).startswith("shopper answer: a slip")
    assert decision_how(ans, AskInfo(about_other=True)) == "shopper answer: about another action"
    assert decision_how(ans) == "shopper answer: as meant"
    ver = {"outcome": "verdict", "reason": "reviewer decided", "evidence": ["verdict"]}
    assert decision_how(ver, AskInfo(error=True)) == "reviewer: wrong verdict"


def test_the_culprit_is_the_charge_that_made_the_total_wrong():
    truth = {"A": 1}
    # the camera accepted B for A: that accept is the culprit, not the verdict that came after
    got = [Charge(CAMERA, {"B": 1}), Charge("reviewer: right verdict", {"B": -1, "A": 1})]
    assert culprit(truth, got, _is_produce, "missed") == f"{CAMERA}: wrong item"
    # one unit too many by a tap after a right accept
    assert culprit(truth, [Charge(CAMERA, {"A": 1}), Charge("shopper answer: as meant", {"A": 1})],
                   _is_produce, "missed") == "shopper answer: as meant: too many"
    # two products in, only one charged: the last charge left the other out
    assert culprit({"A": 1, "B": 1}, [Charge(CAMERA, {"A": 1})], _is_produce, "m") == f"{CAMERA}: part left out"
    # nothing charged: the reviewer's "no change", or the movement was missed
    assert culprit(truth, [Charge("reviewer: wrong verdict", {})], _is_produce, "m") == \
        "reviewer: wrong verdict: nothing charged"
    assert culprit(truth, [], _is_produce, "missed: x") == "missed: x"
    # a credit for an add (wrong sign) is a wrong item
    assert culprit(truth, [Charge(CAMERA, {"A": -1})], _is_produce, "m") == f"{CAMERA}: wrong item"


def test_produce_is_judged_in_grams_within_the_scales_accuracy():
    truth = {"P1": 500.0}
    assert culprit(truth, [Charge(CAMERA, {"P1": 560.0})], _is_produce, "m") == f"{CAMERA}: produce weight"
    assert culprit(truth, [Charge(CAMERA, {"P2": 500.0})], _is_produce, "m") == f"{CAMERA}: wrong item"
    # within 3 %: not over (the action was judged wrong elsewhere, e.g. part left out)
    assert culprit(truth, [Charge(CAMERA, {"P1": 505.0})], _is_produce, "m") == f"{CAMERA}: part left out"


def test_missed_movements_say_what_the_bench_saw():
    assert missed_cause(0, 0, 0) == "missed: the scale saw no movement"
    assert missed_cause(1, 0, 0) == "missed: no weight event closed the window"
    assert missed_cause(1, 1, 0).startswith("missed: weight event, no decision")
    assert missed_cause(1, 1, 1) == "missed: decided, nothing charged"


def test_every_wrong_basket_is_in_the_table_once(tmp_path, monkeypatch):
    """A small noisy run with slips: wrong_by_cause sums to the wrong baskets and names decisions."""
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path))
    sc = validate({"baskets": {"mean_items": 5, "p_lookalike": 0.6},
                   "camera": {"pool_per_condition": 1},
                   "shopper": {"answer_error_rate": 0.5}, "dishonest": {"fraction": 0}}, "t")
    st = Store(sc, seed=2, catalogue=Catalogue.load())
    res = st.run(8)
    out = summarise(res, sc, 2)
    wrong = sum(1 for r in res if r.wrong and not r.dishonest)
    assert wrong > 0, "the run should have wrong baskets to attribute"
    assert sum(out["wrong_by_cause"].values()) == wrong
    assert out["wrong_baskets_per_1000"] == pytest.approx(1000 * wrong / 8, abs=0.01)
    kinds = ("accepted: ", "shopper answer: ", "reviewer: ", "missed: ", "no wrong action")
    assert all(c.startswith(kinds) for c in out["wrong_by_cause"]), out["wrong_by_cause"]
    for r in res:   # one decision cause per wrong action
        assert len(r.decision_causes_wrong) == len(r.causes)
