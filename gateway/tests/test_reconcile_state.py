"""Determinism, state round-trip mid-stream (kill -9 resume), and bad input."""
import json
import math

import pytest

from cart_gateway.reconcile import (Answer, CartReconciler, Verdict, ReconcileError, Unsettled, Vision, WeightBook,
                                    WeightChange)
from cart_bench.scenario import Session, drive
from cart_bench.synth import synthetic

SKUS = synthetic(120, seed=5, produce=5)


def run(seed, n=60, on_step=None):
    eng = CartReconciler("c1", SKUS)
    eng = drive(eng, Session(SKUS, seed=seed), n, on_step)
    return eng


def test_same_inputs_give_the_same_state():
    a, b = run(11), run(11)
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    assert a.book.to_dict() == b.book.to_dict()
    outcomes = {d["outcome"] for d in a.decisions()}
    assert {"accept", "no_change"} <= outcomes          # the session exercised the engine
    assert json.dumps(run(12).to_dict()) != json.dumps(a.to_dict())


def test_state_round_trips_through_json_mid_stream():
    """Persist after every input and resume from JSON, as the service does after kill -9."""
    plain = run(21)
    count = {"n": 0}

    def restart(eng, _ev):
        count["n"] += 1
        book = WeightBook.for_catalogue(SKUS, eng.cfg.learn_prior_strength, eng.cfg.min_sd_g)
        book.load_dict(json.loads(json.dumps(eng.book.to_dict())))
        if count["n"] % 2:
            return CartReconciler.from_dict(json.loads(json.dumps(eng.to_dict())), SKUS, eng.cfg, book)
        return CartReconciler.from_json(eng.to_json(), SKUS, eng.cfg, book)

    resumed = run(21, on_step=restart)
    assert count["n"] > 100
    assert json.dumps(resumed.to_dict(), sort_keys=True) == json.dumps(plain.to_dict(), sort_keys=True)
    assert resumed.book.to_dict() == plain.book.to_dict()
    assert resumed.basket() == plain.basket()


def test_bad_input_is_named_and_loses_nothing():
    eng = CartReconciler("c1", SKUS)
    drive(eng, Session(SKUS, seed=3), 10)
    before = json.dumps(eng.to_dict(), sort_keys=True)
    with pytest.raises(ReconcileError, match="delta_g"):
        eng.step(WeightChange(1, 999, eng.s["now_ms"] + 1, math.nan, 10.0, 0.5, None))
    with pytest.raises(ReconcileError, match="mono_ms"):
        eng.step(Unsettled(1, 999, -5, 0.0))
    with pytest.raises(ReconcileError, match="score"):
        eng.step(Vision(eng.s["now_ms"], [[type("C", (), {"sku": "x", "score": 1.5})()]]))
    with pytest.raises(ReconcileError, match="exactly one"):
        eng.step(Answer("c1-p1", "a-x", eng.s["now_ms"] + 1, sku="sku-050", personal=True))
    with pytest.raises(ReconcileError, match="Verdict.qty"):
        eng.step(Verdict("c1-r1", "v-x", eng.s["now_ms"] + 1, None, -1))
    with pytest.raises(ReconcileError, match="not in the catalogue"):
        eng.step(Verdict("c1-r1", "v-x", eng.s["now_ms"] + 1, "nope", 1))
    with pytest.raises(ReconcileError, match="unsupported input"):
        eng.step({"type": "weight"})
    with pytest.raises(ReconcileError, match="not JSON"):
        CartReconciler.from_json("{", SKUS)
    with pytest.raises(ReconcileError, match="expected v=1"):
        CartReconciler.from_dict({"v": 99}, SKUS)
    assert json.dumps(eng.to_dict(), sort_keys=True) == before


def test_a_state_written_before_issue_12_still_loads_and_continues():
    """tests/data/cart_state_d7ec436.json: written by the engine at d7ec436 (accepted lines, a produce prompt,
    line, open prompts and reviews, a decided movement), before typed state and the new policy."""
    from pathlib import Path

    from test_reconcile_cases import SKUS as CASE_SKUS, Cand
    from cart_bench.synth import catalogue
    old = (Path(__file__).parent / "data" / "cart_state_d7ec436.json").read_text()
    cat = catalogue(CASE_SKUS)
    eng = CartReconciler.from_json(old, cat)
    b = eng.basket()
    assert {ln["sku"] for ln in b["lines"] if ln["status"] == "accepted"} == {"cola", "chips"}
    assert eng.open_prompts() and eng.open_reviews()
    # its open prompt is answered and its review decided by the new code
    p = eng.open_prompts()[-1]
    eng.step(Answer(p["prompt_id"], "a-new", eng.s["now_ms"] + 1000, sku=p["options"][0]["sku"]))
    for r in eng.open_reviews():
        eng.step(Verdict(r["review_id"], "v-" + r["review_id"], eng.s["now_ms"] + 1000, None, 0))
    eng.step(Vision(eng.s["now_ms"] + 10, [[Cand("cola", 0.9)]], (), None, ("f",)))
    assert json.loads(eng.to_json())["v"] == 1
    assert CartReconciler.from_json(eng.to_json(), cat).basket() == eng.basket()


def test_a_damaged_state_is_refused_naming_the_record():
    eng = run(31, n=20)
    d = eng.to_dict()
    key = "moves" if d["moves"] else "done"      # open movements, or decided ones
    mid = next(iter(d[key]))
    d[key][mid]["state"] = "floating"
    with pytest.raises(ReconcileError, match=rf"{key}\[{mid}\]\.state"):
        CartReconciler.from_dict(d, SKUS)
    d = eng.to_dict()
    del d["lines"][0]["sku"]
    with pytest.raises(ReconcileError, match=r"lines\[0\] lacks sku"):
        CartReconciler.from_dict(d, SKUS)
