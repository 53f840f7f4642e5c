"""A shopper's "it's my own item" on an addition (issue 12, docs/reconciliation.md §4.5): checked
against what the camera itself saw, not against a weight-driven posterior; the cheat (a product
declared personal) still goes to a human when the camera or a barcode saw it, or it is too heavy."""
from test_reconcile_cases import SKUS, Cart
from test_reconcile_policy import BIG, _answer, _units

from cart_gateway.reconcile import ReconcileConfig
from cart_gateway.reconcile.camera import barcode_of_weight, product_seen_of_weight
from cart_gateway.reconcile.inputs import VisionSummary

OLD_RULE = ReconcileConfig(personal_claim_posterior=0.5, personal_claim_seen_score=1.0)   # before: the posterior alone


def _claim(c, delta, dets, barcodes=()):
    d = c.move(delta, dets, barcodes=barcodes)
    assert d[-1]["outcome"] == "ask", d       # the shopper is asked first, then says "mine"
    return _answer(c, personal=True)


def _reviewed(fx):
    return [r["reason"] for r in fx["reviews_opened"]]


def test_a_personal_item_of_a_products_weight_the_camera_did_not_see_as_that_product_is_accepted():
    # 1,528 g fits only the water (posterior ~0.7 from the weight); the camera saw chips, 160 g
    c = Cart(skus=SKUS + BIG)
    fx = _claim(c, 1528.0, [("chips", 0.6)])
    assert not fx["reviews_opened"], fx
    assert [d["reason"] for d in fx["decisions"]] == ["shopper confirmed a personal item"]
    assert len(c.e.s["personal"]) == 1 and _units(c) == {}
    # the posterior-only rule sent this honest shopper to a human
    c = Cart(OLD_RULE, skus=SKUS + BIG)
    assert _reviewed(_claim(c, 1528.0, [("chips", 0.6)])) == ["shopper says personal item but the evidence says product"]


def test_a_product_declared_personal_with_a_sure_camera_goes_to_a_human():
    c = Cart(skus=SKUS + BIG)
    fx = _claim(c, 423.0, [("soup", 0.55), ("beans", 0.4)])     # a product for sure, which one is open
    assert _reviewed(fx) == ["shopper says personal item but the camera saw a product of this weight"]
    (d,) = [x for x in fx["decisions"] if x["outcome"] == "review"]
    assert d["cause"].startswith("soup, beans: 0.95 >= personal_claim_seen_score"), d
    assert c.e.s["personal"] == [] and _units(c) == {}


def test_produce_seen_counts_against_a_claim_and_can_be_made_to_count_only_when_sure():
    # a 400 g bag of apples is plausible, so the weight barely says anything: by default 0.6 on "apple"
    # (the committed detector's confusion on personal items and hands) counts as a product seen
    c = Cart(skus=SKUS + BIG)
    assert _reviewed(_claim(c, 400.0, [("apple", 0.6)])) == [
        "shopper says personal item but the camera saw a product of this weight"]
    sure = ReconcileConfig(personal_claim_produce_score=0.9)
    c = Cart(sure, skus=SKUS + BIG)
    assert not _claim(c, 400.0, [("apple", 0.6)])["reviews_opened"]
    assert len(c.e.s["personal"]) == 1
    vis = VisionSummary(mono_ms=0, scores={"apple": 0.95}, n_frames=3)
    assert product_seen_of_weight(400.0, 0.8, vis, c.e.cat, c.e.book, c.e.produce, sure) == (0.95, ["apple"])


def test_a_personal_claim_heavier_than_a_personal_item_goes_to_a_human():
    c = Cart(ReconcileConfig(personal_claim_max_g=1500.0), skus=SKUS + BIG)
    (why,) = _reviewed(_claim(c, 1528.0, [(None, 0.9)]))
    assert why == "shopper says personal item but it weighs more than a personal item"
    assert c.e.s["personal"] == []


def test_a_hand_or_no_product_never_accepts_a_personal_item_without_the_shoppers_word():
    # "no product" (a hand, a covered lens) does not make the claim true: the movement was asked, and
    # the item is recorded on the shopper's word alone, logged as such
    for dets in ([(None, 0.95)], []):
        c = Cart(skus=SKUS + BIG)
        d = c.move(700.0, dets)
        assert d[-1]["outcome"] == "ask" and c.e.s["personal"] == []
        fx = _answer(c, personal=True)
        assert [x["reason"] for x in fx["decisions"]] == ["shopper confirmed a personal item"]
        assert fx["decisions"][0]["evidence"] == ["answer", "weight"]


def test_the_camera_sureness_counts_only_products_whose_weight_fits():
    c = Cart(skus=SKUS)
    vis = VisionSummary(mono_ms=0, scores={"soup": 0.5, "beans": 0.3, "chips": 0.15, "apple": 0.05}, n_frames=3)
    mass, skus = product_seen_of_weight(423.0, 0.8, vis, c.e.cat, c.e.book, c.e.produce, c.e.cfg)
    assert skus[:2] == ["soup", "beans"] and "chips" not in skus     # 160 g does not fit 423 g
    assert abs(mass - 0.85) < 1e-9                                   # apple too: a 423 g bag is plausible
    mass2, skus2 = product_seen_of_weight(2 * 160.0 + 1, 0.8, vis, c.e.cat, c.e.book, c.e.produce, c.e.cfg)
    assert "chips" in skus2 and "soup" not in skus2                  # two packs of chips fit
    assert product_seen_of_weight(423.0, 0.8, None, c.e.cat, c.e.book, c.e.produce, c.e.cfg) == (0.0, [])


def test_a_read_barcode_of_a_product_of_the_weight_is_evidence_another_products_is_not():
    c = Cart(skus=SKUS)
    ean = {it.sku: it.ean13 for it in c.e.cat.items.values()}
    vis = VisionSummary(mono_ms=0, barcodes=[ean["cola"]], n_frames=1)
    hyps = [{"kind": "add", "sku": "cola", "k": 1, "z": 0.3, "posterior": 0.9},
            {"kind": "personal", "sku": None, "k": 1, "z": 0.0, "posterior": 0.1}]
    assert barcode_of_weight(356.0, vis, hyps, c.e.cat, c.e.cfg) == "cola"
    far = [dict(hyps[0], z=9.0), hyps[1]]                            # the read product does not fit
    assert barcode_of_weight(356.0, vis, far, c.e.cat, c.e.cfg) is None
