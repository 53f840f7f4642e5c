"""add2_fit_top: the two-product add block looks at the weight of only each row's best-fitting
partners B (and every SKU the camera or a barcode scored); the rest count at the floor. The
right pair survives the cap when it is the best weight fit, and when the camera saw it though
other SKUs fit the weight better (docs/reconciliation.md §2, §8.3)."""
from __future__ import annotations

import math

from cart_bench.synth import store_catalogue
from cart_gateway.reconcile import CatalogueIndex, ReconcileConfig, WeightBook
from cart_gateway.reconcile.inputs import VisionSummary
from cart_gateway.reconcile.multi import score_multi

STORE = store_catalogue(3000, seed=5)
INDEX = CatalogueIndex(STORE)
BOOK = WeightBook.for_catalogue(STORE)


def _unique_weight_pair():
    """The heaviest packaged SKU (A) and one of ~500 g (B), each of a weight no other SKU has:
    together they weigh more than any one product, so no single add competes with the pair."""
    items = [s for s in STORE if not s.sold_by_weight]
    count: dict[float, int] = {}
    for s in items:
        count[s.weight_mean_g] = count.get(s.weight_mean_g, 0) + 1
    unique = [s for s in items if count[s.weight_mean_g] == 1]
    a = max(unique, key=lambda s: s.weight_mean_g)
    return a, min(unique, key=lambda s: abs(s.weight_mean_g - 500.0))


def _pair(scored, a, b):
    return next((h for h in scored.hyps if h["kind"] == "add2" and sorted(h["skus"]) == sorted([a, b])), None)


def _vision(scores):
    return VisionSummary(mono_ms=1000, scores=scores, n_frames=3)


def test_the_cap_keeps_the_pair_that_fits_the_weight_best():
    a, b = _unique_weight_pair()
    delta = a.weight_mean_g + b.weight_mean_g      # B unseen, its weight fits exactly
    vis = _vision({a.sku: 0.9})
    full = score_multi(delta, 0.8, INDEX, BOOK, [], [], vis, ReconcileConfig(add2_fit_top=0))
    capped = score_multi(delta, 0.8, INDEX, BOOK, [], [], vis, ReconcileConfig(add2_fit_top=16))
    h, g = _pair(capped, a.sku, b.sku), _pair(full, a.sku, b.sku)
    assert h is not None and g is not None
    assert h["z"] == g["z"] == 0.0
    # the cap moves only worse-fitting pairs to the floor: the right pair loses nothing
    assert h["posterior"] >= g["posterior"]
    assert capped.hyps[0]["kind"] == "add2" and sorted(capped.hyps[0]["skus"]) == sorted([a.sku, b.sku])


def test_the_cap_keeps_a_seen_partner_that_other_skus_fit_better():
    a, b = _unique_weight_pair()
    s = math.sqrt(a.weight_sd_g ** 2 + b.weight_sd_g ** 2 + 0.8 ** 2)
    delta = a.weight_mean_g + b.weight_mean_g + 2.0 * s    # 2 sd off: many unseen SKUs fit better
    vis = _vision({a.sku: 0.9, b.sku: 0.5})
    cfg = ReconcileConfig(add2_fit_top=1)                  # one best fit per row: B is not it
    capped = score_multi(delta, 0.8, INDEX, BOOK, [], [], vis, cfg)
    full = score_multi(delta, 0.8, INDEX, BOOK, [], [], vis, ReconcileConfig(add2_fit_top=0))
    h, g = _pair(capped, a.sku, b.sku), _pair(full, a.sku, b.sku)
    assert h is not None and g is not None
    assert h["z"] == g["z"] > 1.5 and h["mu_g"] == g["mu_g"]     # scored with its real weight fit
    assert h["posterior"] >= g["posterior"]
    # the same offset for a partner the camera did not see: at the floor, not named
    unseen = score_multi(delta, 0.8, INDEX, BOOK, [], [], _vision({a.sku: 0.9}), cfg)
    h_u = _pair(unseen, a.sku, b.sku)
    assert h_u is None or h_u["posterior"] < 1e-6
