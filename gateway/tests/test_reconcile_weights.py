"""Learned weights: the catalogue weight is a prior, confirmed events tighten it."""
import json

import numpy as np
import pytest

from cart_gateway.reconcile import Answer, CartReconciler, ReconcileConfig, WeightBook
from cart_bench.synth import catalogue, sku
from test_reconcile_cases import Cart

PAIR = [sku("tea-a", 400.0, 12.0, 300), sku("tea-b", 430.0, 12.0, 320), sku("jam", 900.0, 10.0, 250)]


def test_weightbook_tightens_and_tracks_true_mean():
    book = WeightBook.for_catalogue(PAIR, prior_strength=4.0, min_sd_g=1.0)
    assert book.params("tea-a") == (400.0, 12.0)
    rng = np.random.default_rng(1)
    sds = []
    for _ in range(40):
        book.observe("tea-a", float(rng.normal(404.0, 1.0)))
        sds.append(book.params("tea-a")[1])
    mean, sd = book.params("tea-a")
    assert abs(mean - 404.0) < 1.0
    assert sds[-1] < sds[9] < sds[0] < 12.0 and sd < 4.0
    assert book.params("tea-b") == (430.0, 12.0) and book.n_obs("tea-a") == 40


def test_weightbook_round_trip_and_bad_input():
    book = WeightBook.for_catalogue(PAIR)
    for w in (401.0, 402.5, 399.8):
        book.observe("tea-a", w)
    again = WeightBook.for_catalogue(PAIR)
    again.load_dict(json.loads(json.dumps(book.to_dict())))
    assert again.params("tea-a") == book.params("tea-a")
    with pytest.raises(KeyError, match="nope"):
        book.observe("nope", 1.0)
    with pytest.raises(ValueError, match="weight_g"):
        book.observe("tea-a", float("nan"))
    with pytest.raises(ValueError, match="stats"):
        again.load_dict({"v": 1, "stats": {"tea-a": [1, 2]}})
    assert again.params("tea-a") == book.params("tea-a")   # a bad state changed nothing


def test_weightbook_snapshot_and_min_sd_follow_every_change():
    """The kept copies (a score's figures, the smallest sd) are shared until the book changes,
    then taken again: after observe() and after load_dict()."""
    book = WeightBook.for_catalogue(PAIR)
    ix = np.array([0, 1])
    m1, s1 = book.snapshot()
    assert book.snapshot()[0] is m1 and not m1.flags.writeable
    assert book.min_sd(ix) == 12.0
    for w in (400.0, 400.5, 399.5, 400.2, 399.9, 400.1):
        book.observe("tea-a", w)
    m2, s2 = book.snapshot()
    assert m2 is not m1 and m1[0] == 400.0 and s2[0] == book.params("tea-a")[1] < 12.0
    assert book.min_sd(ix) == s2[0]
    book.load_dict({"v": 1, "stats": {}})
    assert book.snapshot()[1][0] == 12.0 and book.min_sd(ix) == 12.0


def test_tolerances_tighten_with_use_so_weight_alone_decides():
    c = Cart(skus=PAIR)
    assert c.move(402.0)[0]["outcome"] == "ask"          # 400±12 vs 430±12: weight alone cannot tell
    p = c.e.open_prompts()[0]
    c.e.step(Answer(p["prompt_id"], "a0", c.t, sku="tea-a"))
    book = c.e.book
    sd0 = book.params("tea-a")[1]
    rng = np.random.default_rng(3)
    for i in range(60):   # shoppers add and remove items, the camera sees them: confirmed events
        for name, true in (("tea-a", 402.0), ("tea-b", 433.0)):
            w = float(rng.normal(true, 0.8))
            assert c.move(w, [(name, 0.95)])[0]["outcome"] == "accept"
            assert c.move(-w, [(name, 0.95)])[0]["outcome"] == "accept"
    sd1 = book.params("tea-a")[1]
    # learn_prior_strength 16: the catalogue figure is worth 16 packs (was 4, sd0 / 3; floor12d)
    assert sd1 < sd0 / 2.5 and book.n_obs("tea-a") >= 100
    d = c.move(402.5)                                     # weight only, same as the first event
    assert d[0]["outcome"] == "accept" and d[0]["hypothesis"]["sku"] == "tea-a"


def test_low_confidence_and_misfit_events_do_not_teach():
    c = Cart(skus=PAIR)
    c.move(402.0, [("tea-a", 0.6), ("tea-b", 0.35)])     # asked, not confident
    assert c.e.book.n_obs("tea-a") == 0
    c2 = Cart(ReconcileConfig(learn_max_z=0.5, family_confusion=0), skus=PAIR)
    c2.move(412.0, [("tea-a", 0.99)])                    # accepted, but z ~1 > learn_max_z
    assert c2.e.basket()["lines"][0]["sku"] == "tea-a" and c2.e.book.n_obs("tea-a") == 0


def test_book_is_shared_between_carts_and_separate_from_cart_state():
    book = WeightBook.for_catalogue(PAIR)
    a = CartReconciler("a", catalogue(PAIR), book=book)
    b = CartReconciler("b", catalogue(PAIR), book=book)
    assert a.book is b.book
    assert "stats" not in json.dumps(a.to_dict())
