"""The camera's reductions read from its few scores (pairblock._top_units_of, weightindex.hidden_max)
give what the full O(catalogue) pass over the vision factor gives, on random bursts: scores
that tie, zero scores, look-alike families smoothed in, barcodes, and a catalogue where the
camera scored nearly everything (the full pass then runs)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cart_bench.synth import store_catalogue, synthetic
from cart_gateway.reconcile import CatalogueIndex, ReconcileConfig
from cart_gateway.reconcile.factors import family_smoothed, vision_factor
from cart_gateway.reconcile.inputs import VisionSummary
from cart_gateway.reconcile.pairblock import _top_units, _top_units_of
from cart_gateway.reconcile.weightindex import hidden_max, special_units

SMALL = CatalogueIndex(synthetic(40, seed=3, produce=4))
BIG = CatalogueIndex(store_catalogue(3000, seed=5))


def _burst(rnd: random.Random, cat: CatalogueIndex, most: bool = False) -> VisionSummary:
    k = rnd.randint(len(cat.skus) - 3, len(cat.skus)) if most else rnd.randint(1, 12)
    skus = rnd.sample(cat.skus, k)
    levels = [0.0, 0.05, 0.2, 0.2, 0.5]            # repeated values: ties at the cut
    scores = {s: rnd.choice(levels) if rnd.random() < 0.5 else rnd.random() / 2 for s in skus}
    return VisionSummary(0, dict(sorted(scores.items())), rnd.random() / 4, [], ["f1"], None, rnd.randint(1, 6))


@pytest.mark.parametrize("cat,most", [(SMALL, False), (SMALL, True), (BIG, False)], ids=["small", "small-most", "store3000"])
def test_top_units_from_the_scores_equal_the_full_partition(cat, most):
    rnd = random.Random(11)
    cfg = ReconcileConfig()
    for trial in range(150):
        v = _burst(rnd, cat, most)
        if trial % 2:
            v = family_smoothed(v, cat, cfg.family_confusion)
        vis = vision_factor(v, cat, cfg)
        for m in (1, 3, 6, 32):
            got = _top_units_of(vis, cat, v, m)
            want = _top_units(vis[cat.units], cat.units, m)
            assert got.tolist() == want.tolist(), (trial, m)


@pytest.mark.parametrize("cat", [SMALL, BIG], ids=["small", "store3000"])
def test_hidden_max_from_the_first_unscored_sku_equals_the_full_max(cat):
    rnd = random.Random(12)
    cfg = ReconcileConfig()
    for trial in range(150):
        v = _burst(rnd, cat)
        known = [rnd.choice(range(cat.n))] if trial % 3 == 0 else []
        vis = vision_factor(v, cat, cfg)
        spec = special_units(v, cat, known)
        hid = np.ones(len(cat.units), dtype=bool)
        hid[cat.unit_pos[spec]] = False
        want = math.log(float(vis[cat.units][hid].max())) if hid.any() else -np.inf
        assert hidden_max(vis, cat, spec) == want, trial


@pytest.mark.parametrize("cat", [SMALL, BIG], ids=["small", "store3000"])
def test_the_sparse_vision_factor_is_the_dense_one(cat, monkeypatch):
    """vision_factor builds "base + the few SKUs the camera scored" (factors._vision_sparse) and
    log_vision / units_sum read that form: the dense computation's values (the scores' sum is
    taken over the few, not among zeros: equal to a rounding, which 1 - sum can enlarge when the
    scores sum to nearly 1: 2e-14 relative seen, far inside scoring's 1e-9)."""
    from cart_gateway.reconcile import factors
    from cart_gateway.reconcile.factors import _vision_factor, log_vision, units_sum, vision_sparse
    monkeypatch.setattr(factors, "SPARSE_MIN_SKUS", 0)       # the sparse form on these small catalogues too
    rnd = random.Random(13)
    for trial in range(150):
        cfg = ReconcileConfig(vision_power=(1.0, 1.5, 2.0)[trial % 3])    # sharpened too
        v = _burst(rnd, cat, most=trial % 10 == 0)
        if trial % 2:
            v = family_smoothed(v, cat, cfg.family_confusion)
        dense = _vision_factor(v, cat, cfg)
        vis = vision_factor(v, cat, cfg)
        assert np.allclose(vis, dense, rtol=1e-13, atol=0), trial
        assert np.allclose(log_vision(vis), np.log(dense), rtol=1e-13, atol=0), trial
        assert math.isclose(units_sum(vis, cat), float(dense[cat.units].sum()), rel_tol=1e-12)
        base, ix, val = vision_sparse(vis)
        others = np.setdiff1d(np.arange(cat.n + 1), ix)
        assert np.all(vis[others] == base) and len(ix) <= len(v.scores) + 1


def test_a_sharpened_burst_keeps_its_mass_and_favours_its_best_product():
    """vision_power > 1: the labels the camera scored (products, "no product") share the same
    mass (so every unscored SKU keeps its factor), the best of them gets more of it."""
    cat = SMALL
    a, b = cat.skus[0], cat.skus[1]
    v = VisionSummary(0, {a: 0.6, b: 0.3}, 0.05, [], ["f1"], None, 5)
    plain = vision_factor(v, cat, ReconcileConfig())
    sharp = vision_factor(v, cat, ReconcileConfig(vision_power=2.0))
    ia, ib = cat.idx[a], cat.idx[b]
    assert plain[ia] / plain[ib] == pytest.approx(2.0, rel=0.05)
    assert sharp[ia] / sharp[ib] > 1.8 * plain[ia] / plain[ib]
    assert float(sharp.sum()) == pytest.approx(float(plain.sum()), rel=1e-12)
    others = np.setdiff1d(np.arange(cat.n + 1), [ia, ib, cat.n])
    assert np.allclose(sharp[others], plain[others], rtol=1e-12)
    with pytest.raises(ValueError):
        ReconcileConfig(vision_power=0.5)      # below 1 would flatten the camera: refused
