"""The virtual store's people: shoppers answer from what they see and did; the reviewer decides
from what the review page shows, slips at `reviewer.error_rate` and takes time to clear."""
import dataclasses
import inspect
import random
import statistics

import pytest

from cart_gateway.catalogue import Catalogue
from cart_gateway.web.forms import screen_choice
from cart_sim.reviewers import FrameShown, ReviewPage, Reviewer, normalised
from cart_sim.scenario import validate
from cart_sim.shoppers import Action, Shopper, answer_for
from cart_sim.world import pack_weight


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


def _prompt(kind, *options, pid="c-p1", created=1000):
    opts = []
    for o in options:
        if isinstance(o, str):
            opts.append({"sku": o, "name": o})
        else:
            opts.append({"sku": o[0], "name": " + ".join(o), "skus": list(o)})
    return {"v": 1, "prompt_id": pid, "kind": kind, "text": "?", "options": opts, "created_ms": created}


def _screen_choices(prompt):
    """Every choice the cart screen can send for this prompt, by its own form code (web/forms.py)."""
    out = [screen_choice(prompt, {"choice": "option", "option": str(i)}) for i in range(len(prompt["options"]))]
    return out + [{"personal": True}, {"none": True}]


def _actions(cat, n_seeds=12):
    sc = validate({"baskets": {"p_multi_units": 0.3, "p_two_items": 0.3, "p_produce": 0.1},
                   "behaviour": {"p_remove": 0.1, "p_put_back": 0.1, "p_swap": 0.1, "p_personal": 0.1,
                                 "p_lean": 0.1},
                   "dishonest": {"fraction": 0.5, "p_act": 0.5}}, "t")
    out = []
    for seed in range(n_seeds):
        rng = random.Random(seed)
        out += Shopper(sc, cat, random.Random(seed)).plan(lambda s: pack_weight(rng, s))
    return out


def _prompts_for(a: Action, cat, rng):
    skus = [s for s, _, _ in a.adds + a.removes if s] or ["SKU0001"]
    other = rng.choice([s.sku for s in cat if not s.sold_by_weight])
    return [_prompt(k, *opts) for k in ("pick", "scan", "removal", "personal")
            for opts in ((skus[0], other), (other,), (tuple(skus), other), ((other, skus[0]),), ())]


def test_the_answer_takes_no_weight(cat):
    assert list(inspect.signature(answer_for).parameters) == ["action", "prompt", "catalogue", "rng", "error_rate"]


def test_the_answer_depends_only_on_the_prompt_and_what_the_shopper_did(cat):
    """The same action with other grams, and the same prompt with other fields the shopper does not
    read, give the same answer with the same random draws (slips included)."""
    rng = random.Random(7)
    n = 0
    for a in _actions(cat):
        heavier = dataclasses.replace(a, adds=[(s, u, g * rng.uniform(0.2, 5.0) + 100) for s, u, g in a.adds],
                                      removes=[(s, u, g * rng.uniform(0.2, 5.0)) for s, u, g in a.removes])
        for p in _prompts_for(a, cat, rng):
            q = dict(p, prompt_id="other-p9", created_ms=999_999)
            for slip in (0.0, 0.3):
                seed = rng.randrange(1 << 30)
                x = answer_for(a, p, cat, random.Random(seed), slip)
                y = answer_for(heavier, q, cat, random.Random(seed), slip)
                assert x == y, (a, p)
                n += 1
    assert n > 2000


def test_every_answer_is_one_the_cart_screen_can_send(cat):
    rng = random.Random(3)
    kinds = set()
    for a in _actions(cat):
        for p in _prompts_for(a, cat, rng):
            c = answer_for(a, p, cat, rng, 0.2)
            if "barcode" in c:
                assert cat.by_ean(c["barcode"]) is not None     # read off a pack in the cart
            else:
                assert c in _screen_choices(p), (a, p, c)
            kinds.add(next(iter(c)))
    assert kinds == {"sku", "skus", "barcode", "personal", "none"}


def _add(*items, kind="add", cheat=None, label=None):
    return Action(kind, adds=[(s, u, 100.0 * u) for s, u in items], cheat=cheat, label_sku=label)


def test_a_shopper_names_the_product_they_see_whatever_its_count(cat):
    a = _add(("SKU0003", 3))
    # no "3 x" option: they tap their product (the gateway must work out the count)
    assert answer_for(a, _prompt("pick", "SKU0004", "SKU0003"), cat, random.Random(1), 0) == {"sku": "SKU0003"}
    # the count shown: they take it over the single one
    p = _prompt("pick", "SKU0003", ("SKU0003", "SKU0003", "SKU0003"), ("SKU0003", "SKU0003"))
    assert answer_for(a, p, cat, random.Random(1), 0) == {"skus": ["SKU0003"] * 3}
    # not on the screen: scanned from the pack; a scan prompt: scanned
    assert answer_for(a, _prompt("pick", "SKU0004"), cat, random.Random(1), 0) == {"barcode": cat["SKU0003"].ean13}
    assert answer_for(a, _prompt("scan", "SKU0003"), cat, random.Random(1), 0) == {"barcode": cat["SKU0003"].ean13}


def test_two_products_swaps_leans_and_personal_items(cat):
    r = random.Random(1)
    two = _add(("SKU0003", 1), ("SKU0006", 1))
    assert answer_for(two, _prompt("pick", "SKU0003", ("SKU0003", "SKU0006")), cat, r, 0) == \
        {"skus": ["SKU0003", "SKU0006"]}
    assert answer_for(two, _prompt("pick", "SKU0003", "SKU0001"), cat, r, 0) == {"sku": "SKU0003"}
    swap = Action("swap", adds=[("SKU0004", 1, 277.0)], removes=[("SKU0003", 1, 280.0)])
    for kind in ("pick", "removal"):
        assert answer_for(swap, _prompt(kind, "SKU0004", ("SKU0004", "SKU0003")), cat, r, 0) == \
            {"skus": ["SKU0004", "SKU0003"]}
    assert answer_for(swap, _prompt("removal", "SKU0003", "SKU0005"), cat, r, 0) == {"sku": "SKU0003"}
    back = Action("put_back", adds=[("SKU0003", 1, 280.0)], removes=[("SKU0003", 1, 280.0)])
    # asked "which did you swap?" (every option a swap): they swapped nothing
    assert answer_for(back, _prompt("pick", ("SKU0004", "SKU0003"), ("SKU0005", "SKU0003")), cat, r, 0) == \
        {"none": True}
    swaps = _prompt("pick", ("SKU0004", "SKU0005"), ("SKU0001", "SKU0005"))
    for o in swaps["options"]:
        o["name"] = o["name"].replace(" + ", " instead of ")     # as the gateway names a swap option
    assert answer_for(back, swaps, cat, r, 0) == {"none": True}       # their product is not even shown
    assert answer_for(Action("lean"), _prompt("pick", "SKU0003"), cat, r, 0) == {"none": True}
    assert answer_for(Action("remove", removes=[("SKU0003", 1, 280.0)]), _prompt("pick", "SKU0003"), cat, r, 0) \
        == {"none": True}        # asked what went in: nothing did
    bag = Action("personal_in", adds=[(None, 1, 500.0)], personal_class="bag")
    assert answer_for(bag, _prompt("personal", "SKU0001"), cat, r, 0) == {"personal": True}
    assert answer_for(_add(("SKU0001", 1), cheat="cover"), _prompt("pick", "SKU0001"), cat, r, 0) == \
        {"personal": True}
    assert answer_for(_add(("SKU0001", 1), cheat="label_swap", label="SKU0002"), _prompt("scan", "SKU0001"),
                      cat, r, 0) == {"barcode": cat["SKU0002"].ean13}


def test_a_picture_with_a_count_that_is_not_theirs_is_not_tapped_the_missing_product_is_scanned(cat):
    # issue 12 floor: A and B put in, the screen shows "2 x A" and "A + C": the simulated shopper
    # tapped "2 x A" (same products, "closest count"); a real one sees that is not what they did
    # and scans the product the screen leaves out (the prompt says "Not shown: scan the other item")
    r = random.Random(1)
    two = _add(("SKU0003", 1), ("SKU0006", 1))
    p = _prompt("pick", ("SKU0003", "SKU0003"), ("SKU0003", "SKU0005"))
    assert answer_for(two, p, cat, r, 0) == {"barcode": cat["SKU0006"].ean13}
    # a single picture of A (no count) is still their tap on A (the gateway reads the rest, §4.3)
    assert answer_for(two, _prompt("pick", "SKU0003", "SKU0005"), cat, r, 0) == {"sku": "SKU0003"}
    # asked to scan with A's picture on the screen: they scan the other one
    assert answer_for(two, _prompt("scan", "SKU0003"), cat, r, 0) == {"barcode": cat["SKU0006"].ean13}
    # three of A: "2 x A" is still the closest picture of what they did
    three = _add(("SKU0003", 3))
    assert answer_for(three, p, cat, r, 0) == {"skus": ["SKU0003", "SKU0003"]}


def test_slips_tap_another_picture_at_the_error_rate(cat):
    a = _add(("SKU0003", 1))
    p = _prompt("pick", "SKU0003", "SKU0004", "SKU0005")
    r = random.Random(5)
    answers = [answer_for(a, p, cat, r, 0.1) for _ in range(4000)]
    wrong = [x for x in answers if x != {"sku": "SKU0003"}]
    assert all(x in ({"sku": "SKU0004"}, {"sku": "SKU0005"}) for x in wrong)
    assert 300 <= len(wrong) <= 500


# --- the reviewer ------------------------------------------------------------------------
def _page(delta, frames=(), candidates=(), basket=(), barcodes=()):
    req = {"v": 1, "review_id": "c-r1", "cart": "c", "created_ms": 0, "reason": "test",
           "candidates": [{"sku": c, "score": 0.5, "kind": "add"} for c in candidates],
           "weight": {"delta_g": delta, "total_g": 1000.0, "noise_g": 1.0, "unsettled_seq": 1, "seq": 2, "epoch": 1},
           "frames": [f"c/1/{i}" for i in range(len(frames))], "barcodes": list(barcodes)}
    lines = [{"sku": s, "qty": q, "status": "accepted"} for s, q in basket]
    return ReviewPage.build(req, {"lines": lines}, dict((f"c/1/{i}", k) for i, k in enumerate(frames)).get)


def _reviewer(cat, seed=1, **over):
    cfg = dict(validate({}, "t")["reviewer"], error_rate=0.0, **over)
    return Reviewer(cfg, cat, random.Random(seed))


def _never(*_):
    raise AssertionError("the page should have been enough")


def test_the_reviewer_names_what_the_frames_show_and_counts_by_weight(cat):
    rv = _reviewer(cat)
    w = cat["SKU0003"].weight_mean_g
    r = rv.review(_page(3 * w + 4, frames=("SKU0003|clear|0", "SKU0003|clear|1")), _never)
    assert r.verdict == {"sku": "SKU0003", "qty": 3} and not r.at_cart and not r.slip
    # a swap: one product out of the basket, another in
    d = cat["SKU0001"].weight_mean_g - w
    r = rv.review(_page(d, frames=("SKU0003|clear|0", "SKU0001|clear|1"), basket=[("SKU0003", 1)]), _never)
    assert normalised(r.verdict, d) == {("in", "SKU0001", 1), ("out", "SKU0003", 1)}
    # the same frames, but SKU0003 is not in the basket: it cannot have come out
    r = rv.review(_page(d, frames=("SKU0003|clear|0", "SKU0001|clear|1")), lambda: {"sku": None, "qty": 0})
    assert r.at_cart
    assert rv.review(_page(-500.0, frames=("-|hand|0|bag",)), _never).verdict == {"sku": None, "qty": 1}
    assert rv.review(_page(3.0, frames=("-|hand|0",)), _never).verdict == {"sku": None, "qty": 0}
    # a barcode on the page names the product even when the frames do not
    r = rv.review(_page(w, frames=("-|covered|0",), barcodes=(cat["SKU0003"].ean13,)), _never)
    assert r.verdict == {"sku": "SKU0003", "qty": 1}


def test_without_a_product_in_view_the_reviewer_goes_by_the_candidates_or_to_the_cart(cat):
    rv = _reviewer(cat)
    w = cat["SKU0001"].weight_mean_g
    covered = ("-|covered|0", "-|covered|1")
    # one candidate fits the weight: that one
    r = rv.review(_page(w, frames=covered, candidates=("SKU0006", "SKU0001")), _never)
    assert r.verdict == {"sku": "SKU0001", "qty": 1}
    # two look-alikes of the same weight: the page cannot tell, staff look in the cart (and take longer)
    truth = {"sku": "SKU0002", "qty": 1}
    r = rv.review(_page(w, frames=covered, candidates=("SKU0001", "SKU0002")), lambda: truth)
    assert r.at_cart and r.verdict == truth


def test_the_reviewer_slips_at_the_error_rate(cat):
    cfg = validate({}, "t")["reviewer"]
    assert cfg["error_rate"] == 0.005                       # the default
    rv = Reviewer(cfg, cat, random.Random(2))
    page = _page(cat["SKU0003"].weight_mean_g, frames=("SKU0003|clear|0",), candidates=("SKU0003", "SKU0004"))
    rs = [rv.review(page, _never) for _ in range(6000)]
    slips = [r for r in rs if r.slip]
    assert 12 <= len(slips) <= 55                           # mean 30
    assert all(r.verdict == {"sku": "SKU0004", "qty": 1} for r in slips)
    assert all(r.verdict == {"sku": "SKU0003", "qty": 1} for r in rs if not r.slip)


def test_time_to_clear_follows_its_median_and_p95(cat):
    rv = _reviewer(cat, clear_s_median=30.0, clear_s_p95=90.0, visit_s_median=120.0, visit_s_p95=300.0)
    xs = sorted(rv.clear_ms(False) / 1000 for _ in range(8000))
    assert 27 <= statistics.median(xs) <= 33 and 80 <= xs[int(0.95 * len(xs))] <= 100
    ys = sorted(rv.clear_ms(True) / 1000 for _ in range(4000))
    assert statistics.median(ys) > statistics.median(xs) + 100


def test_a_frame_shows_what_its_scene_holds():
    assert FrameShown.of_scene("c/1/3", "SKU0003|hard|2") == FrameShown("c/1/3", "SKU0003", "hard", None)
    assert FrameShown.of_scene("c/1/4", "-|hand|0|phone") == FrameShown("c/1/4", None, "hand", "phone")


def test_bench_reports_the_reviewer(tmp_path, monkeypatch):
    from cart_sim.bench import summarise
    from cart_sim.fastsim import Store
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path))
    sc = validate({"baskets": {"mean_items": 5, "p_two_items": 0.6},
                   "behaviour": {"p_swap": 0.3, "think_s_min": 2, "think_s_max": 4},
                   "camera": {"pool_per_condition": 1}, "reviewer": {"error_rate": 1.0}}, "t")
    st = Store(sc, 3)
    res = st.run(6)
    out = summarise(res, st.sc, st.seed)
    reviews = sum(r.reviews for r in res)
    assert reviews > 0, "the scenario should open reviews"
    assert out["reviewer_slips"] == reviews                 # error_rate 1: every verdict a slip
    assert out["review_clear_s_p50"] > 0 and out["review_clear_s_p95"] >= out["review_clear_s_p50"]
    assert 0 < out["reviewer_errors"] <= reviews
    assert {"reviews_cleared_at_cart", "prompts_on_earlier_action"} <= set(out)


def test_the_reviewer_oracle_sends_the_truth(tmp_path, monkeypatch):
    from cart_sim.bench import summarise
    from cart_sim.fastsim import Store
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path))
    sc = validate({"baskets": {"mean_items": 5, "p_two_items": 0.6},
                   "behaviour": {"p_swap": 0.3, "think_s_min": 2, "think_s_max": 4},
                   "camera": {"pool_per_condition": 1}, "reviewer": {"error_rate": 1.0}}, "t")
    st = Store(sc, 3, oracles=("reviewer",))
    res = st.run(6)
    out = summarise(res, st.sc, st.seed)
    assert sum(r.reviews for r in res) > 0
    assert out["reviewer_errors"] == out["reviewer_slips"] == out["reviews_cleared_at_cart"] == 0


def test_a_slip_is_a_tap_on_another_picture_a_scan_never_slips(cat):
    # a slip is a touch aimed at one picture landing on another; a shopper scanning the pack aims
    # at no picture (issue 12: a scan asked instead of a tap between look-alikes is slip-proof)
    a = _add(("SKU0003", 1))
    scan, pick = _prompt("scan", "SKU0004", "SKU0005"), _prompt("pick", "SKU0003", "SKU0004", "SKU0005")
    for seed in range(50):
        assert answer_for(a, scan, cat, random.Random(seed), 1.0) == {"barcode": cat["SKU0003"].ean13}
        assert answer_for(a, pick, cat, random.Random(seed), 1.0) in ({"sku": "SKU0004"}, {"sku": "SKU0005"})
        assert answer_for(a, pick, cat, random.Random(seed), 0.0) == {"sku": "SKU0003"}
