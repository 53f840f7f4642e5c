"""Provisional weight events replaced by their finals, and a hand's +x/-x pair cancelled
(reconcile/provisional.py, protocol §6.1 `prov` / `replaces`)."""
from dataclasses import dataclass

import pytest

from cart_gateway.reconcile import Answer, CartReconciler, ReconcileConfig, ReconcileError, Unsettled, Vision, WeightChange
from cart_bench.synth import catalogue, sku

SKUS = [sku("cola", 355.0, 4.0, 129), sku("chips", 160.0, 3.0, 249), sku("water", 1530.0, 10.0, 89),
        sku("soup", 420.0, 6.0, 199), sku("beans", 425.0, 6.0, 149)]


@dataclass(frozen=True)
class Cand:
    sku: str | None
    score: float
    cx: float = 0.5
    cy: float = 0.5


def engine(**cfg):
    return CartReconciler("c1", catalogue(SKUS), ReconcileConfig(**cfg))


def vision(t, useq, dets, n=2):
    return Vision(mono_ms=t, frames=[[Cand(s, p) for s, p in dets]] * n, ref=f"c1/scale/1/{useq}",
                  frame_ids=[f"c1/1/{useq * 10 + i}" for i in range(n)])


def add(e, seq, t, delta, total, dets, **kw):
    """unsettled (seq), its burst, then the weight (seq + 1) 900 ms later; returns the decisions."""
    out = e.step(Unsettled(1, seq, t, total - delta))["decisions"]
    if dets is not None:
        out += e.step(vision(t + 200, seq, dets))["decisions"]
    return out + e.step(WeightChange(1, seq + 1, t + 900, delta, total, 0.8, seq, **kw))["decisions"]


def basket_with(e, *items):
    """Accepted lines for these SKUs, added one by one with the camera seeing each."""
    t, total, seq = 1000, 0.0, 1
    for name in items:
        g = next(s.weight_mean_g for s in SKUS if s.sku == name)
        total += g
        add(e, seq, t, g, total, [(name, 0.95)])
        e.advance(t + 4000)
        seq, t = seq + 2, t + 5000
    assert sorted(ln["sku"] for ln in e.basket()["lines"]) == sorted(items)
    return seq, t, total


def outcomes(ds):
    return [d["outcome"] for d in ds]


# ---------------------------------------------------------------- replacement
def test_a_swap_sent_provisional_then_final_is_one_movement_of_the_whole_change():
    e = engine()
    seq, t, total = basket_with(e, "water", "cola")
    # out: the water (provisional), then the chips in; the final carries the whole swap (-1370 g)
    d = add(e, seq, t, -1530.0, total - 1530.0, [("water", 0.9)], prov=True)
    d += e.advance(t + 3000)["decisions"]           # past merge_hold: still waiting for its final
    assert [x for x in d if x["outcome"] in ("accept", "ask", "review")] == []
    d += add(e, seq + 2, t + 1200, 160.0 - 1530.0, total - 1370.0, [("chips", 0.9)], replaces=seq + 1)
    d += e.advance(t + 9000)["decisions"]
    merged = [x for x in d if x["outcome"] == "merged"]
    assert len(merged) == 1 and "replaces provisional" in merged[0]["reason"]
    assert merged[0]["delta_g"] == pytest.approx(-1370.0)      # replaced, not -2900 (added)
    decided = [x for x in d if x["outcome"] in ("accept", "ask", "review")]
    assert len(decided) == 1
    assert sorted(ln["sku"] for ln in e.basket()["lines"] if ln["status"] == "accepted") in (
        ["chips", "cola"], ["cola"])                     # a swap, asked or accepted; never water out twice


def test_a_removal_and_its_final_count_once():
    e = engine()
    seq, t, total = basket_with(e, "cola", "water")
    d = add(e, seq, t, -355.5, total - 355.5, [("cola", 0.9)], prov=True)
    assert [x for x in d if x["outcome"] == "accept"] == []
    # the final of the same change (its own unsettled_seq), 1.1 s later: decided with it, not 1 s after
    d = e.step(WeightChange(1, seq + 2, t + 2000, -354.8, total - 354.8, 0.5, seq, replaces=seq + 1))["decisions"]
    assert outcomes([x for x in d if x["outcome"] == "accept"]) == ["accept"]
    assert [x for x in e.advance(t + 8000)["decisions"] if x["outcome"] == "accept"] == []
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]


def test_a_provisional_waits_for_its_final_but_not_for_ever():
    e = engine(prov_wait_ms=3000)
    seq, t, total = basket_with(e, "cola", "water")
    add(e, seq, t, -355.0, total - 355.0, [("cola", 0.9)], prov=True)
    assert [x for x in e.advance(t + 900 + 2900)["decisions"] if x["outcome"] == "accept"] == []
    d = e.advance(t + 900 + 3100)["decisions"]      # the final never came (lost): decided as it read
    assert outcomes(d) == ["accept"] and [ln["sku"] for ln in e.basket()["lines"]] == ["water"]
    # ... and a final arriving after that changes nothing it already counted
    d = e.step(WeightChange(1, seq + 2, t + 6000, -355.4, total - 355.4, 0.5, seq, replaces=seq + 1))["decisions"]
    assert outcomes(d) == ["no_change"] and "confirms provisional" in d[0]["reason"]
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]


def test_a_late_final_that_differs_is_a_movement_of_the_difference_only():
    e = engine(prov_wait_ms=1000)
    seq, t, total = basket_with(e, "cola", "water")
    add(e, seq, t, -1530.0, total - 1530.0, [("water", 0.9)], prov=True)
    e.advance(t + 4000)                              # decided on the provisional reading: water out
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["cola"]
    d = e.step(WeightChange(1, seq + 2, t + 4500, -1530.0 + 160.0, total - 1370.0, 0.5, seq, replaces=seq + 1))
    assert [x["delta_g"] for x in d["decisions"] if x["outcome"] == "merged"] == [pytest.approx(160.0)]
    e.step(vision(t + 4600, seq, [("chips", 0.95)]))
    e.advance(t + 9000)
    assert sorted(ln["sku"] for ln in e.basket()["lines"]) == ["chips", "cola"]


def test_a_final_whose_provisional_was_never_seen_counts_whole():
    e = engine()
    seq, t, total = basket_with(e, "cola", "water")
    # the provisional (seq + 1) was lost; the final's delta is the whole change from before it
    e.step(Unsettled(1, seq, t, total))
    d = e.step(WeightChange(1, seq + 2, t + 900, -355.0, total - 355.0, 0.5, seq, replaces=seq + 1))["decisions"]
    assert "never seen" in d[0]["reason"]
    e.step(vision(t + 950, seq, [("cola", 0.9)]))
    e.advance(t + 8000)
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]


# ---------------------------------------------------------------- hostile input
def _state(e):
    return e.to_json()


@pytest.mark.parametrize("make, match", [
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, replaces=seq - 1),
     "was not provisional"),                       # forged: names an ordinary, counted event
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, replaces=seq + 1),
     "earlier event"),                             # itself
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, replaces=0), "earlier event"),
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, replaces=True), "earlier event"),
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, replaces=2.0), "earlier event"),
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, prov=True, replaces=seq - 1),
     "prov and replaces together"),
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, -355.0, tot, 0.5, None, prov="yes"), "prov must be"),
    (lambda seq, t, tot: WeightChange(1, seq + 1, t, float("nan"), tot, 0.5, None, replaces=seq - 1),
     "finite number"),
])
def test_forged_provisional_fields_are_refused_and_lose_nothing(make, match):
    e = engine()
    seq, t, total = basket_with(e, "cola", "water")
    before = _state(e)
    with pytest.raises(ReconcileError, match=match):
        e.step(make(seq, t, total - 355.0))
    assert _state(e) == before


def test_a_second_final_for_the_same_provisional_is_refused():
    e = engine()
    seq, t, total = basket_with(e, "cola", "water")
    add(e, seq, t, -355.0, total - 355.0, [("cola", 0.9)], prov=True)
    e.step(WeightChange(1, seq + 2, t + 2000, -355.0, total - 355.0, 0.5, seq, replaces=seq + 1))
    before = _state(e)
    with pytest.raises(ReconcileError, match="replaced already"):
        e.step(WeightChange(1, seq + 3, t + 2100, -1530.0, total - 1885.0, 0.5, None, replaces=seq + 1))
    assert _state(e) == before


# ---------------------------------------------------------------- a hand's +x / -x
def test_a_hand_pressing_then_lifting_is_cancelled_and_its_question_withdrawn():
    e = engine()
    seq, t, total = basket_with(e, "water")
    # a hand rests (+240 g: fits no product), the camera sees a hand ("no product")
    add(e, seq, t, 240.0, total + 240.0, [(None, 0.9)])
    fx = e.advance(t + 4000)
    assert outcomes(fx["decisions"]) in (["ask"], ["review"])
    asked = [p["prompt_id"] for p in e.open_prompts()], [r["review_id"] for r in e.open_reviews()]
    # ... and lifts 6 s later: -238 g, nothing seen
    e.step(Unsettled(1, seq + 2, t + 6500, total + 240.0))
    e.step(vision(t + 6600, seq + 2, [(None, 0.9)]))
    fx = e.step(WeightChange(1, seq + 3, t + 7000, -238.0, total + 2.0, 0.8, seq + 2))
    assert [x["outcome"] for x in fx["decisions"]] == ["no_change"] and fx["decisions"][0]["hand_pair"]
    assert (fx["prompts_closed"], fx["reviews_closed"]) == asked
    assert e.open_prompts() == [] and e.open_reviews() == []
    e.advance(t + 12000)
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]
    assert e.checkout("r1", t + 13000)["ok"] is True


def test_a_hand_pair_withdraws_a_review():
    # the shopper, asked about the hand's +x, answered "none of the options" twice: a human review
    e = engine()
    seq, t, total = basket_with(e, "water")
    add(e, seq, t, 423.0, total + 423.0, [(None, 0.9)])
    e.advance(t + 4000)
    (p,) = e.open_prompts()
    e.step(Answer(p["prompt_id"], "a1", t + 5000, none=True))
    (scan,) = e.open_prompts()           # issue 12 (scan_after_none): asked to scan first, says none again
    fx = e.step(Answer(scan["prompt_id"], "a2", t + 5500, none=True))
    (rid,) = [r["review_id"] for r in fx["reviews_opened"]]
    fx = e.step(WeightChange(1, seq + 3, t + 7000, -422.0, total + 1.0, 0.8, None))
    assert fx["reviews_closed"] == [rid] and e.open_reviews() == []
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]


def test_a_hand_pair_also_withdraws_a_prompt():
    e = engine()
    seq, t, total = basket_with(e, "water")
    add(e, seq, t, 423.0, total + 423.0, None)           # soup or beans by weight: the shopper is asked
    fx = e.advance(t + 4000)
    (p,) = e.open_prompts()
    fx = e.step(WeightChange(1, seq + 3, t + 6000, -421.0, total + 2.0, 0.8, None))
    assert fx["prompts_closed"] == [p["prompt_id"]] and e.open_prompts() == []
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]


def test_not_a_hand_when_the_camera_saw_a_product_or_the_size_differs():
    e = engine()
    seq, t, total = basket_with(e, "water")
    add(e, seq, t, 423.0, total + 423.0, None)
    e.advance(t + 4000)
    (p,) = e.open_prompts()
    # a removal of another size is not the pair: the prompt stays
    e.step(WeightChange(1, seq + 3, t + 6000, -380.0, total + 43.0, 0.8, None))
    assert [q["prompt_id"] for q in e.open_prompts()][:1] == [p["prompt_id"]]
    e2 = engine()
    seq, t, total = basket_with(e2, "water")
    add(e2, seq, t, 423.0, total + 423.0, None)
    e2.advance(t + 4000)
    (p,) = e2.open_prompts()
    # the same size out, but the camera saw soup leave: a real removal, not a hand
    e2.step(Unsettled(1, seq + 2, t + 5500, total + 423.0))
    e2.step(vision(t + 5600, seq + 2, [("soup", 0.9)]))
    fx = e2.step(WeightChange(1, seq + 3, t + 6000, -422.0, total + 1.0, 0.8, seq + 2))
    assert not any(x.get("hand_pair") for x in fx["decisions"])


def test_hand_pair_window_is_bounded_and_can_be_turned_off():
    for cfg, later in (({}, 20000), ({"hand_pair_ms": 0}, 6000)):
        e = engine(**cfg)
        seq, t, total = basket_with(e, "water")
        add(e, seq, t, 423.0, total + 423.0, None)
        e.advance(t + 4000)
        fx = e.step(WeightChange(1, seq + 3, t + later, -421.0, total + 2.0, 0.8, None))
        assert fx["prompts_closed"] == [] and not any(x.get("hand_pair") for x in fx["decisions"])


# ---------------------------------------------------------------- through the service's decode path
def test_the_service_hands_prov_and_replaces_to_the_engine_and_refuses_a_forged_one(tmp_path):
    import json

    from gwcore import JUICE, KETCHUP, Harness
    h = Harness(tmp_path)
    h.move(JUICE[1], JUICE[0])
    h.move(KETCHUP[1], KETCHUP[0])
    juice_seq = 2                                   # unsettled 1, weight 2 (Board counts seqs per event)
    sc = h.scale
    h.send(sc.topic, sc.unsettled())
    useq = sc.seq
    prov = json.loads(sc.weight(-KETCHUP[1], unsettled_seq=useq))
    h.send(sc.topic, json.dumps(dict(prov, prov=True)).encode())
    h.tick(2000)                                    # past merge_hold and the vision wait: held for its final
    assert sorted(ln["sku"] for ln in h.basket()["lines"]) == sorted([JUICE[0], KETCHUP[0]])
    fin = json.loads(sc.weight(0.0, unsettled_seq=useq))
    fin.update(delta_g=-KETCHUP[1] + 0.3, replaces=prov["seq"])
    h.send(sc.topic, json.dumps(fin).encode())
    h.tick(3000)
    assert [ln["sku"] for ln in h.basket()["lines"]] == [JUICE[0]]
    log = h.gw.carts["c001"].engine.decisions()
    assert any("replaces provisional" in d["reason"] for d in log)
    # forged: a final naming the juice's ordinary weight event is refused whole, nothing lost
    before = h.gw.carts["c001"].engine.to_json()
    forged = json.loads(sc.weight(-JUICE[1], unsettled_seq=None))
    h.send(sc.topic, json.dumps(dict(forged, replaces=juice_seq)).encode())
    assert h.gw.carts["c001"].engine.to_json() == before
    assert h.count("bad", "rejected_by_engine") == 1


def test_a_hand_lift_sent_provisional_cancels_when_its_final_comes():
    e = engine()
    seq, t, total = basket_with(e, "water")
    add(e, seq, t, 423.0, total + 423.0, None)
    e.advance(t + 4000)
    (p,) = e.open_prompts()
    # the lift is a removal: the scale sends it provisional, then its final
    fx = e.step(WeightChange(1, seq + 3, t + 6000, -421.0, total + 2.0, 0.8, None, prov=True))
    assert fx["prompts_closed"] == []                    # a provisional is not paired: its final may differ
    fx = e.step(WeightChange(1, seq + 4, t + 7100, -422.0, total + 1.0, 0.6, None, replaces=seq + 3))
    assert fx["prompts_closed"] == [p["prompt_id"]]
    assert any(x.get("hand_pair") for x in fx["decisions"])
    e.advance(t + 12000)
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"] and e.open_prompts() == []


def test_an_open_provisional_survives_a_restart_of_the_engine():
    e = engine()
    seq, t, total = basket_with(e, "cola", "water")
    add(e, seq, t, -355.0, total - 355.0, [("cola", 0.9)], prov=True)
    e2 = CartReconciler.from_json(e.to_json(), catalogue(SKUS), ReconcileConfig())
    d = e2.step(WeightChange(1, seq + 2, t + 2000, -355.2, total - 355.2, 0.5, seq, replaces=seq + 1))["decisions"]
    assert "accept" in outcomes(d) and [ln["sku"] for ln in e2.basket()["lines"]] == ["water"]


def test_a_hand_that_pressed_in_two_steps_is_cancelled_by_its_one_lift():
    e = engine()
    seq, t, total = basket_with(e, "water")
    add(e, seq, t, 240.0, total + 240.0, [(None, 0.9)])      # the press (fits no product) ...
    e.advance(t + 4000)
    add(e, seq + 2, t + 4500, 15.4, total + 255.4, None)      # ... a little harder, past merge_gap_ms
    e.advance(t + 8000)
    assert len(e.open_prompts()) + len(e.open_reviews()) == 2
    fx = e.step(WeightChange(1, seq + 5, t + 9000, -254.0, total + 1.4, 0.8, None))
    assert sum(1 for x in fx["decisions"] if x.get("hand_pair")) == 2
    e.advance(t + 14000)
    assert [ln["sku"] for ln in e.basket()["lines"]] == ["water"]
    assert e.open_prompts() == [] and e.open_reviews() == []


def test_hand_group_takes_only_the_latest_additions_in_time():
    from cart_gateway.reconcile.provisional import hand_group
    cfg = ReconcileConfig()
    assert hand_group([(0, 500.0, 1.0), (1000, 164.0, 1.5), (2000, 15.0, 1.4)], (8000, -178.5, 0.8), cfg) == [1, 2]
    assert hand_group([(0, 500.0, 1.0), (1000, 164.0, 1.5)], (8000, -164.5, 0.8), cfg) == [1]
    assert hand_group([(0, 164.0, 1.5)], (20000, -164.0, 0.8), cfg) == []          # too long after
    assert hand_group([(0, 100.0, 1.0), (500, -50.0, 1.0), (900, 60.0, 1.0)], (2000, -160.0, 1.0), cfg) == []
