"""The camera's second look (reconcile/retake.py): a movement held back only because its burst
missed frames asks the camera for a fresh burst before it asks the shopper."""
import json

import pytest
from test_reconcile_cases import SKUS, Cand, Cart

from cart_gateway.reconcile import CartReconciler, ReconcileConfig, ReconcileError, Unsettled, Vision, WeightChange
from cart_bench.synth import sku

TWINS = [sku("tea-a", 200.0, 2.0, 299), sku("tea-b", 201.0, 2.0, 349)]    # one weight, told apart by the camera


def _units(c):
    return {ln["sku"]: ln["qty"] for ln in c.e.basket()["lines"] if ln["status"] == "accepted"}


def _settle(c, seen_sku, grams, n):
    """`grams` settle after a burst that delivered n frames, each showing only `seen_sku`. Returns
    the movement's unsettled seq and the effects up to the decision time."""
    c.seq += 1
    useq = c.seq
    c.e.step(Unsettled(1, useq, c.t, 0.0))
    c.e.step(c.vision([(seen_sku, 0.95)], useq, t=c.t + 200, n=n))
    c.seq += 1
    fx = [c.e.step(WeightChange(1, c.seq, c.t + 900, grams, grams, 0.8, useq)), c.e.advance(c.t + 2600)]
    c.t += 2600
    return useq, fx


def _two_of_tea_a_from_a_short_burst(c):
    """2 x tea-a settles; the burst delivered 2 of its frames (multi_unit_min_frames is 3)."""
    return _settle(c, "tea-a", 401.0, 2)


def _retake_burst(c, useq, frames):
    """The camera's answer: a burst with the movement's ref, one entry per frame."""
    c.frame += len(frames)
    return Vision(mono_ms=c.t + 500, frames=[[Cand(s, p) for s, p in f] for f in frames], barcodes=[],
                  ref=f"c1/scale/1/{useq}", frame_ids=[f"c1/1/{c.frame - i}" for i in range(len(frames))][::-1])


def test_a_short_burst_asks_the_camera_again_and_a_full_second_look_settles_it_without_a_prompt():
    c = Cart(skus=SKUS + TWINS)
    useq, fx = _two_of_tea_a_from_a_short_burst(c)
    (cmd,) = [x for f in fx for x in f["commands"]]
    assert cmd == {"board": "cam", "cmd": "capture", "args": {"frames": 4}, "ref": [1, useq], "move_id": "m1"}
    (d,) = [d for f in fx for d in f["decisions"]]
    assert d["outcome"] == "retake" and d["frames"] == 4, d
    assert not c.e.open_prompts() and _units(c) == {}
    # the movement waits: checkout too (the basket is not final)
    assert c.e.advance(c.t + 1000)["decisions"] == []
    assert c.e.checkout("r1", c.t + 1000)["ok"] is False
    fx = [c.e.step(_retake_burst(c, useq, [[("tea-a", 0.95)]] * 4)), c.e.advance(c.t + 1100)]
    ds = [d for f in fx for d in f["decisions"]]
    assert [d["outcome"] for d in ds] == ["accept"] and "every frame" in ds[0]["reason"], ds
    assert _units(c) == {"tea-a": 2} and not c.e.open_prompts()
    assert not any(f["commands"] for f in fx)


def test_a_second_look_that_shows_the_look_alike_is_not_charged_as_two_of_the_first():
    c = Cart(skus=SKUS + TWINS)
    useq, _ = _two_of_tea_a_from_a_short_burst(c)
    frames = [[("tea-a", 0.95)], [("tea-b", 0.95)], [("tea-a", 0.95)], [("tea-b", 0.95)]]
    fx = [c.e.step(_retake_burst(c, useq, frames)), c.e.advance(c.t + 1100)]
    ds = [d for f in fx for d in f["decisions"]]
    assert ds and ds[-1]["outcome"] in ("accept", "ask"), ds
    assert _units(c) in ({"tea-a": 1, "tea-b": 1}, {}), _units(c)    # never 2 x tea-a
    assert ds[-1]["outcome"] != "accept" or _units(c) == {"tea-a": 1, "tea-b": 1}


def test_no_answer_from_the_camera_asks_at_the_deadline_and_a_movement_is_retaken_once():
    c = Cart(skus=SKUS + TWINS)
    useq, _ = _two_of_tea_a_from_a_short_burst(c)
    wait = c.e.cfg.retake_wait_ms
    assert c.e.advance(c.t + wait - 1)["decisions"] == [] and not c.e.open_prompts()
    fx = c.e.advance(c.t + wait)
    assert [d["outcome"] for d in fx["decisions"]] == ["ask"] and fx["commands"] == []
    assert fx["decisions"][0]["cause"].startswith("k units from a short burst")
    # a second look that came back short as well (2 + 1 frames of the 4 needed): asked, not looked
    # at a third time
    c2 = Cart(cfg=ReconcileConfig(multi_unit_min_frames=4), skus=SKUS + TWINS)
    useq, _ = _two_of_tea_a_from_a_short_burst(c2)
    fx = [c2.e.step(_retake_burst(c2, useq, [[("tea-a", 0.95)]])), c2.e.advance(c2.t + 1100)]
    assert [d["outcome"] for f in fx for d in f["decisions"]] == ["ask"]
    assert not any(f["commands"] for f in fx)


def test_retake_frames_0_asks_at_once():
    c = Cart(cfg=ReconcileConfig(retake_frames=0), skus=SKUS + TWINS)
    _, fx = _two_of_tea_a_from_a_short_burst(c)
    assert [d["outcome"] for f in fx for d in f["decisions"]] == ["ask"]
    assert not any(f["commands"] for f in fx)


def test_a_full_first_burst_or_one_unit_is_not_retaken():
    for seen, grams, n, units in (("tea-a", 401.0, 3, {"tea-a": 2}), ("cola", 355.0, 2, {"cola": 1})):
        c = Cart(skus=SKUS + TWINS)
        _, fx = _settle(c, seen, grams, n)
        assert not any(f["commands"] for f in fx) and _units(c) == units, (seen, n)


def test_a_retake_survives_a_restart_and_a_stored_state_with_a_bad_retake_is_named():
    c = Cart(skus=SKUS + TWINS)
    useq, _ = _two_of_tea_a_from_a_short_burst(c)
    text = c.e.to_json()
    assert json.loads(text)["moves"]["m1"]["retake"] == "asked"
    c.e = CartReconciler.from_json(text, _catalogue())     # the gateway restarted while it waited
    fx = [c.e.step(_retake_burst(c, useq, [[("tea-a", 0.95)]] * 4)), c.e.advance(c.t + 1100)]
    assert [d["outcome"] for f in fx for d in f["decisions"]] == ["accept"] and _units(c) == {"tea-a": 2}
    bad = json.loads(text)
    bad["moves"]["m1"]["retake"] = "maybe"
    with pytest.raises(ReconcileError, match=r"moves\[m1\]\.retake 'maybe'"):
        CartReconciler.from_dict(bad, _catalogue())


def _catalogue():
    from cart_bench.synth import catalogue
    return catalogue(SKUS + TWINS)


def _water_and_chips_seen_as_water(c, n):
    """water and chips put in together (1,690 g); a burst of n frames showed only the water."""
    return _settle(c, "water", 1690.0, n)


def test_a_pair_whose_second_product_a_short_burst_missed_is_looked_at_again_and_accepted_when_seen():
    c = Cart(skus=SKUS + TWINS)
    useq, fx = _water_and_chips_seen_as_water(c, 2)
    ds = [d for f in fx for d in f["decisions"]]
    assert [d["outcome"] for d in ds] == ["retake"], ds
    assert [x["ref"] for f in fx for x in f["commands"]] == [[1, useq]]
    frames = [[("water", 0.95)], [("chips", 0.95)], [("water", 0.95)], [("chips", 0.95)]]
    fx = [c.e.step(_retake_burst(c, useq, frames)), c.e.advance(c.t + 1100)]
    assert [d["outcome"] for f in fx for d in f["decisions"]] == ["accept"]
    assert _units(c) == {"water": 1, "chips": 1} and not c.e.open_prompts()


def test_a_pair_from_a_full_burst_or_with_retake_unseen_part_off_is_asked_at_once():
    for cfg, n in ((ReconcileConfig(), 3), (ReconcileConfig(retake_unseen_part=False), 2)):
        c = Cart(cfg=cfg, skus=SKUS + TWINS)
        _, fx = _water_and_chips_seen_as_water(c, n)
        ds = [d for f in fx for d in f["decisions"]]
        assert [d["outcome"] for d in ds] == ["ask"], (cfg.retake_unseen_part, n, ds)
        assert "a product of the pair or swap not seen" in ds[0]["cause"]
        assert not any(f["commands"] for f in fx)


def test_only_products_put_in_can_be_seen_again():
    from cart_gateway.reconcile.camera import skus_put_in
    assert skus_put_in({"kind": "swap", "sku": "b", "remove_sku": "a"}) == {"b"}
    assert skus_put_in({"kind": "add2", "sku": "a", "skus": ["a", "a", "b"]}) == {"a", "b"}
    assert skus_put_in({"kind": "swap_multi", "sku": "b", "skus": ["a", "b"], "in": {"b": 1}, "out": {"a": 1}}) == {"b"}
    assert skus_put_in({"kind": "remove2", "sku": "a", "skus": ["a", "b"]}) == set()
    assert skus_put_in({"kind": "add", "sku": "a", "k": 2}) == {"a"}


def test_a_movement_no_burst_joined_is_not_retaken():
    """No frames at all: a correction's difference (its window was another movement's) or a camera
    that is not sending; a second look of that window would show another action."""
    c = Cart(skus=SKUS + TWINS)
    c.seq += 1
    useq = c.seq
    c.e.step(Unsettled(1, useq, c.t, 0.0))
    c.seq += 1
    fx = [c.e.step(WeightChange(1, c.seq, c.t + 900, 401.0, 401.0, 0.8, useq)), c.e.advance(c.t + 9000)]
    assert not any(f["commands"] for f in fx)
    assert "retake" not in [d["outcome"] for f in fx for d in f["decisions"]]
