"""A tap on one product's picture read as what it can honestly mean (reconcile/taps.py): the
tapped product's count from the weight, or that product plus something else (the rest of the
weight scored on its own), or a swap; accepted only when the rest is clear, else asked once more
with the readings as pictures, then a human. And hostile taps: options not offered, closed prompts."""
import pytest
from test_reconcile_cases import SKUS, Cand, Cart

from cart_gateway.reconcile import Answer, ReconcileConfig
from cart_gateway.reconcile.camera import seen_of
from cart_gateway.reconcile.inputs import Vision, VisionSummary
from cart_gateway.reconcile.taps import TapVerdict, read_tap
from cart_gateway.web.forms import screen_answer, screen_choice
from cart_bench.synth import sku

BIG = [sku(f"filler{i}", 1000.0 + 37 * i, 5.0, 100) for i in range(300)]


def _units(c):
    return {ln["sku"]: ln["qty"] for ln in c.e.basket()["lines"] if ln["status"] == "accepted"}


def _answer(c, prompt, answer_id=None, **kw):
    c.t += 3000
    return c.e.step(Answer(prompt["prompt_id"], answer_id or "a-" + prompt["prompt_id"], c.t, **kw))


def _prompted(c, delta, dets):
    d = c.move(delta, dets)
    assert d[-1]["outcome"] == "ask", d
    return c.e.open_prompts()[0]


def test_a_tap_when_one_unit_fits_is_read_as_that_unit():
    c = Cart(skus=SKUS + BIG)
    p = _prompted(c, 422.0, [("soup", 0.4), ("beans", 0.4)])
    fx = _answer(c, p, sku="beans")
    assert not fx["prompts_opened"] and not fx["reviews_opened"]
    assert _units(c) == {"beans": 1}


def test_a_tap_on_one_product_when_the_weight_says_another_too_asks_which_one():
    # cola + soup or cola + beans (the same weight): the shopper taps the one picture they recognise,
    # "Cola"; the rest (422 g) is soup or beans: asked with both readings as pictures, not guessed
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    fx = _answer(c, p, sku="cola")
    assert not fx["reviews_opened"] and _units(c) == {}, fx
    (again,) = fx["prompts_opened"]
    assert again["kind"] == "pick" and "You chose Cola" in again["text"]
    shown = [sorted(o.get("skus") or [o["sku"]]) for o in again["options"]]
    assert ["beans", "cola"] in shown and ["cola", "soup"] in shown, shown
    assert all("cola" in s for s in shown)          # every reading keeps what the shopper said
    assert "the rest is not clear" in fx["decisions"][-1]["reason"]
    fx = _answer(c, again, skus=("cola", "beans"))
    assert fx["decisions"][0]["outcome"] == "answer" and not fx["reviews_opened"]
    assert _units(c) == {"cola": 1, "beans": 1} and c.e.open_prompts() == []


def test_the_follow_up_offers_the_count_of_the_tapped_product_and_applies_it():
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    # the shopper put in what a reading shows: applied through the weight check
    fx = _answer(c, again, skus=("cola", "soup"))
    assert _units(c) == {"cola": 1, "soup": 1}, fx
    # a count reading is labelled with its count ("2 x Cola"), never a bare picture
    c2 = Cart(skus=SKUS + BIG)
    p2 = _prompted(c2, 2 * 420.0 + 2.0, [("soup", 0.3), ("beans", 0.3)])
    fx = _answer(c2, p2, sku="soup")
    (again,) = fx["prompts_opened"]
    names = [o["name"] for o in again["options"] if o.get("skus") == ["soup", "soup"]]
    assert names == ["2 x Soup"], again["options"]
    _answer(c2, again, skus=("soup", "soup"))
    assert _units(c2) == {"soup": 2}


def test_a_tap_on_what_went_in_of_a_swap_is_read_as_the_swap():
    c = Cart(skus=SKUS + BIG)
    c.move(355.0, [("cola", 0.9)])
    c.move(160.0, [("chips", 0.9)])
    # water in, cola out: +1175 g; the camera was covered, so the gateway asks
    p = _prompted(c, 1530.0 - 355.0, [])
    fx = _answer(c, p, sku="water")     # the shopper taps the product they put in
    # what came out is on the ledger: only the cola line fits the rest (-355 g)
    assert not fx["prompts_opened"] and not fx["reviews_opened"], fx
    assert fx["decisions"][-1]["hypothesis"]["out"] == {"cola": 1}
    assert _units(c) == {"chips": 1, "water": 1}


def test_a_swap_tap_that_two_basket_lines_fit_offers_both_swaps():
    c = Cart(skus=SKUS + BIG)
    c.move(420.0, [("soup", 0.9)])
    c.move(425.0, [("beans", 0.9)])
    # water in, soup or beans out (the same weight): +1108 g, the camera covered
    p = _prompted(c, 1530.0 - 422.0, [])
    fx = _answer(c, p, sku="water")
    (again,) = fx["prompts_opened"]
    names = {o["name"] for o in again["options"] if o.get("skus")}
    assert {"Water instead of Soup", "Water instead of Beans"} <= names, again["options"]
    fx = _answer(c, again, skus=("water", "beans"))
    assert _units(c) == {"soup": 1, "water": 1}, fx


def test_a_tap_on_what_came_out_of_a_swap_is_read_as_the_swap():
    c = Cart(skus=SKUS + BIG)
    c.move(355.0, [("cola", 0.9)])
    c.move(1530.0, [("water", 0.9)])
    # cola out, chips in: -195 g with the camera half covered (chips glimpsed)
    d = c.move(160.0 - 355.0, [("chips", 0.3)])
    assert d[-1]["outcome"] == "ask", d
    p = c.e.open_prompts()[0]
    assert any(sorted(o.get("skus") or []) == ["chips", "cola"] for o in p["options"]), p["options"]
    fx = _answer(c, p, sku="cola")
    # the rest of the weight is one chips, which the camera saw: clear, no second prompt
    assert not fx["prompts_opened"] and not fx["reviews_opened"], fx
    assert _units(c) == {"chips": 1, "water": 1}


def test_a_swap_into_a_product_the_camera_did_not_name_is_asked_as_the_swap():
    """The camera covered: it named nothing that could have gone in, so the swap candidates
    take in every product whose weight fits a swap from a basket line (swaps.py
    weight_fit_candidates): cola out, chips in (-195 g) is offered as the swap, not reviewed
    as a weight that fits no item, and the shopper's tap on that option applies it."""
    c = Cart(skus=SKUS + BIG)
    c.move(355.0, [("cola", 0.9)])
    c.move(1530.0, [("water", 0.9)])
    d = c.move(160.0 - 355.0, [])
    assert d[-1]["outcome"] == "ask", d
    p = c.e.open_prompts()[0]
    assert d[-1]["hypothesis"]["kind"] == "swap" and d[-1]["hypothesis"]["sku"] == "chips", d
    (opt,) = [o for o in p["options"] if sorted(o.get("skus") or []) == ["chips", "cola"]]
    assert opt["name"] == "Chips instead of Cola", p["options"]
    fx = _answer(c, p, skus=tuple(opt["skus"]))
    assert not fx["reviews_opened"] and not fx["prompts_opened"], fx
    assert fx["decisions"][-1]["outcome"] == "answer", fx["decisions"]
    assert _units(c) == {"chips": 1, "water": 1}


def test_a_swap_into_a_product_nobody_named_while_the_camera_named_another_goes_to_a_human():
    """The weight fallback is only for movements the camera could not name: here it saw soup
    (not in the basket), so a swap adds only soup, which fits no swap from a line (-195 g)."""
    c = Cart(skus=SKUS + BIG)
    c.move(355.0, [("cola", 0.9)])
    c.move(1530.0, [("water", 0.9)])
    d = c.move(160.0 - 355.0, [("soup", 0.9)])
    assert d[-1]["outcome"] == "review", d
    assert _units(c) == {"cola": 1, "water": 1}


def test_without_the_weight_fallback_a_swap_nobody_saw_goes_to_a_human():
    """swap_weight_fallback off: swaps add only what the camera named (or a barcode read, or
    a recent removal); with the camera covered, -195 g fits no removal and no named swap."""
    c = Cart(skus=SKUS + BIG, cfg=ReconcileConfig(swap_weight_fallback=False))
    c.move(355.0, [("cola", 0.9)])
    c.move(1530.0, [("water", 0.9)])
    d = c.move(160.0 - 355.0, [])
    assert d[-1]["outcome"] == "review", d
    assert _units(c) == {"cola": 1, "water": 1}


def test_the_same_single_tap_twice_is_not_guessed_but_goes_to_a_human():
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    fx = _answer(c, again, sku="cola")             # "Cola" again: one cola does not fit 777 g
    assert not fx["prompts_opened"], fx            # asked once more only, never in a loop
    assert fx["reviews_opened"] and "does not fit the weight" in fx["reviews_opened"][0]["reason"]
    assert _units(c) == {}


def test_none_of_the_readings_goes_to_a_human():
    # issue 12 floor (scan_after_followup_none): "none" to the follow-up first asks for the other
    # product's barcode; "none" again goes to a human
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    fx = _answer(c, again, none=True)
    (scan,) = fx["prompts_opened"]
    assert scan["kind"] == "scan" and not fx["reviews_opened"] and _units(c) == {}
    fx = _answer(c, scan, none=True)
    assert fx["reviews_opened"] and _units(c) == {}
    # off: straight to a human, as before
    c = Cart(cfg=ReconcileConfig(scan_after_followup_none=False))
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    fx = _answer(c, again, none=True)
    assert fx["reviews_opened"] and _units(c) == {}


def _reading(e, sku_, delta, dets, n=4):
    vis = VisionSummary.of(Vision(mono_ms=0, frames=[[Cand(s, p) for s, p in dets]] * n))
    mv = {"delta_g": delta, "noise_g": 0.8}
    from cart_gateway.reconcile.scoring import best_with_sku
    from cart_gateway.reconcile.multi import score_multi
    sc = score_multi(delta, 0.8, e.cat, e.book, e.s["lines"], e.s["personal"], vis, e.cfg)
    first = best_with_sku(sc, e.cat, sku_, removal=delta < 0, max_z=e.cfg.contradict_z)
    return read_tap(sku_, mv, seen_of(vis, e.cat, e.cfg), vis, e.cat, e.book, e.s["lines"], e.s["personal"],
                    e.cfg, e.produce, first)


def test_the_rest_is_accepted_only_when_clear_and_seen():
    c = Cart(skus=SKUS + BIG)
    # cola tapped, 355 + 1530 g, the camera saw water too: the rest (1530 g) is clearly water
    r = _reading(c.e, "cola", 355.0 + 1530.0, [("cola", 0.6), ("water", 0.35)])
    assert r.verdict is TapVerdict.ACCEPT, r
    assert r.hypothesis["in"] == {"cola": 1, "water": 1} and r.hypothesis["out"] == {}
    # the same weight, but the camera saw only cola: the rest is not accepted on weight alone
    r = _reading(c.e, "cola", 355.0 + 1530.0, [("cola", 0.9)])
    assert r.verdict is TapVerdict.ASK and any(h["in"] == {"cola": 1, "water": 1} for h in r.readings), r
    # one unit fits: the tap is read as before
    assert _reading(c.e, "cola", 356.0, [("cola", 0.9)]).verdict is TapVerdict.AS_BEFORE


def test_two_of_a_product_with_a_same_weight_look_alike_is_asked():
    fam = [sku("tea-mint", 100.0, 2.0, 299), sku("tea-earl", 100.0, 2.0, 349)]
    c = Cart(skus=fam + BIG)
    # "2 x Mint" and "Mint + Earl" weigh the same and look alike: only the shopper can say
    r = _reading(c.e, "tea-mint", 200.5, [("tea-mint", 0.95)])
    assert r.verdict is TapVerdict.ASK, r
    assert {tuple(sorted(h["in"].items())) for h in r.readings} >= {(("tea-mint", 2),),
                                                                   (("tea-earl", 1), ("tea-mint", 1))}
    # a product with no look-alike of its weight: two units on the camera are two units
    c2 = Cart(skus=SKUS + BIG)
    r = _reading(c2.e, "water", 3060.5, [("water", 0.95)])
    assert r.verdict is TapVerdict.ACCEPT and r.hypothesis["in"] == {"water": 2}, r


def test_units_tapped_against_products_seen_that_cannot_be_the_rest_are_accepted():
    # issue 12, real hard run: "4 x A" tapped, asked again because the detector also named other
    # products, none of which weighs what is left (tap_units_seen_misfit)
    c = Cart()
    r = _reading(c.e, "water", 3060.5, [("water", 0.6), ("cola", 0.35)])
    assert r.verdict is TapVerdict.ACCEPT and r.hypothesis["in"] == {"water": 2}, r
    off = Cart(cfg=ReconcileConfig(tap_units_seen_misfit=False))
    assert _reading(off.e, "water", 3060.5, [("water", 0.6), ("cola", 0.35)]).verdict is TapVerdict.ASK
    # a product seen that is part of a reading of the rest still asks: "2 x Soup" or "Soup + Beans"
    r = _reading(c.e, "soup", 845.0, [("soup", 0.6), ("beans", 0.35)])
    assert r.verdict is TapVerdict.ASK, r


# --- hostile taps -------------------------------------------------------------------------------

def test_a_tap_on_a_closed_prompt_changes_nothing():
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    # a late or replayed tap on the first prompt (closed by the first answer), with a new answer id
    fx = _answer(c, p, answer_id="a-late", skus=("cola", "soup"))
    assert fx["decisions"][0]["outcome"] == "ignored" and "closed" in fx["decisions"][0]["reason"]
    assert _units(c) == {} and [x["prompt_id"] for x in c.e.open_prompts()] == [again["prompt_id"]]
    # the first tap's answer id replayed onto the open follow-up: a duplicate, ignored
    fx = _answer(c, again, answer_id="a-" + p["prompt_id"], skus=("cola", "soup"))
    assert fx["decisions"][0]["outcome"] == "ignored" and "duplicate" in fx["decisions"][0]["reason"]
    assert _units(c) == {} and c.e.open_prompts()
    _answer(c, again, skus=("cola", "beans"))
    assert _units(c) == {"cola": 1, "beans": 1}


def test_a_reading_not_offered_that_does_not_fit_goes_to_a_human():
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    fx = _answer(c, again, skus=("cola", "water"))    # not on the screen, and 1885 g is not 777 g
    assert fx["reviews_opened"] and "does not fit" in fx["reviews_opened"][0]["reason"]
    assert _units(c) == {}
    c2 = Cart()
    p = _prompted(c2, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c2, p, sku="cola")["prompts_opened"][0]
    fx = _answer(c2, again, skus=("cola", "no-such-sku"))
    assert fx["reviews_opened"] and "unknown sku" in fx["reviews_opened"][0]["reason"] and _units(c2) == {}


@pytest.mark.parametrize("form", [{"choice": "option", "option": "7"}, {"choice": "option", "option": "-1"},
                                  {"choice": "option", "option": "x"}, {"choice": "option"},
                                  {"choice": "reading"}])
def test_the_cart_screen_refuses_an_option_it_did_not_offer(form):
    c = Cart()
    p = _prompted(c, 355.0 + 422.0, [("cola", 0.4), ("soup", 0.2), ("beans", 0.2)])
    again = _answer(c, p, sku="cola")["prompts_opened"][0]
    with pytest.raises(ValueError):
        screen_choice(again, form)
    # each offered reading is a valid §11 answer the gateway decodes
    for i, o in enumerate(again["options"]):
        ans = screen_answer(again, {"choice": "option", "option": str(i)})
        assert ans["choice"] == ({"skus": o["skus"]} if o.get("skus") else {"sku": o["sku"]})
