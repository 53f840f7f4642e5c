"""fitkernel.py: the compiled weight-fit search gives exactly the pairs of swaps.weight_fit_pairs'
numpy search (the same set, ties included), for swaps and for add2 rows, on a fresh weight
index and on one that learning has widened (drift) and given `moved` SKUs."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cart_bench.synth import store_catalogue
from cart_gateway.reconcile import CatalogueIndex, WeightBook, fitkernel
from cart_gateway.reconcile.swaps import weight_fit_pairs
from cart_gateway.reconcile.weightindex import WeightIndex, z_bound

pytestmark = pytest.mark.skipif(not fitkernel.warm(), reason="numba not installed")

STORE = store_catalogue(3000, seed=5)


def _pairs(rows, cols) -> set:
    return set(zip(rows.tolist(), cols.tolist()))


def _check(cat, book, rnd: random.Random, add: bool, top_k: int) -> int:
    units = cat.units
    a_i = np.array(rnd.sample(units.tolist(), rnd.randint(1, 60)), dtype=np.int64)
    cand = np.array(sorted(rnd.sample(units.tolist(), rnd.randint(0, 8))), dtype=np.int64)
    a = int(rnd.choice(a_i.tolist()))
    b = int(rnd.choice(units.tolist()))
    sn2 = rnd.choice([0.8, 1.5, 3.0]) ** 2
    if add:
        add_k = np.array([rnd.randint(1, 3) for _ in a_i], dtype=np.int64)
        delta = float(book.mean[a] * add_k[list(a_i).index(a)] + book.mean[b]) + rnd.uniform(-20, 20)
    else:
        add_k = None
        delta = float(book.mean[b] - book.mean[a]) + rnd.uniform(-20, 20)
    zb = z_bound(math.log(1e-12), math.sqrt(book.min_sd(units) ** 2 + sn2))
    args = (delta, a_i, cand, cat, book, sn2, zb, top_k)
    got = weight_fit_pairs(*args, add_k=add_k, kernel=True)
    ref = weight_fit_pairs(*args, add_k=add_k, kernel=False)
    assert _pairs(*got) == _pairs(*ref)
    # the same order too (by row, then catalogue index): what is summed downstream is the same
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    return len(ref[0])


@pytest.mark.parametrize("add", [False, True])
def test_kernel_gives_the_numpy_pairs(add):
    rnd = random.Random(7 + add)
    cat = CatalogueIndex(STORE)
    book = WeightBook.for_catalogue(STORE)
    found = sum(_check(cat, book, rnd, add, rnd.choice([1, 4, 16])) for _ in range(60))
    assert found > 0


@pytest.mark.parametrize("add", [False, True])
def test_kernel_follows_learned_weights(add):
    """Learning shifts some means a little (the windows widen by the drift) and a few far
    (`moved`: outside the sorted windows): the kernel must still find them."""
    rnd = random.Random(11 + add)
    cat = CatalogueIndex(STORE)
    book = WeightBook.for_catalogue(STORE)
    WeightIndex.of(cat, book)                      # sorted before learning
    units = cat.units.tolist()
    for i in rnd.sample(units, 40):
        for _ in range(6):
            book.observe(book.skus[i], float(book.mean[i]) + rnd.uniform(-1.5, 1.5))
    for i in rnd.sample(units, 6):                  # moved far: scored one by one
        for _ in range(8):
            book.observe(book.skus[i], float(book.mean[i]) + 40.0)
    wi = WeightIndex.of(cat, book)
    assert len(wi.moved) and wi.drift > 0
    for _ in range(40):
        _check(cat, book, rnd, add, rnd.choice([1, 4, 16]))


def test_ties_go_to_the_lowest_unit_position():
    """Many SKUs of one weight tie at the cut: the kernel keeps the same lowest-positioned ones."""
    rnd = random.Random(3)
    cat = CatalogueIndex(STORE)
    book = WeightBook.for_catalogue(STORE)
    count: dict[float, int] = {}
    for i in cat.units.tolist():
        count[float(book.mean[i])] = count.get(float(book.mean[i]), 0) + 1
    w = max(count, key=count.get)
    assert count[w] > 4
    a = int(cat.units[0])
    delta = w - float(book.mean[a])             # a swap a -> any SKU of weight w fits at z = 0
    zb = z_bound(math.log(1e-12), 1.0)
    for k in (1, 2, count[w] - 1):
        args = (delta, np.array([a]), np.zeros(0, dtype=np.int64), cat, book, 0.64, zb, k)
        assert _pairs(*weight_fit_pairs(*args, kernel=True)) == _pairs(*weight_fit_pairs(*args, kernel=False))
    del rnd


def test_the_background_warm_makes_the_kernel_ready():
    """Gateway start compiles in a thread; weight_fit_pairs switches to the kernel once ready
    (either search gives the same pairs in the same order, so the switch changes nothing)."""
    fitkernel.warm_in_background()          # already warm here: returns without a thread
    fitkernel._READY.clear()
    fitkernel._WARMING = False
    try:
        assert not fitkernel.ready()
        fitkernel.warm_in_background()
        fitkernel.warm_in_background()      # a second gateway while it compiles: no second thread
        assert fitkernel._READY.wait(timeout=120)
    finally:
        fitkernel.warm()
    assert fitkernel.ready()


def _scored_both_ways(fn, *args, **kw):
    """fn(*args) with the compiled kernels and with the numpy paths (fitkernel not ready)."""
    got = fn(*args, **kw)
    fitkernel._READY.clear()
    try:
        ref = fn(*args, **kw)
    finally:
        fitkernel._READY.set()
    return got, ref


# The kernel and numpy may round the last bit differently: LLVM contracts a*b+c into one FMA
# and vectorises exp/log by the CPU's features (a 1-ulp posterior difference on AMD EPYC that
# an Intel machine did not show). The bar is 1e-9; 1e-12 still catches any real change.
REL = 1e-12


def _near(a, b) -> bool:
    if isinstance(b, float) or isinstance(a, float):
        return a == b or (math.isfinite(b) and abs(a - b) <= REL * max(1.0, abs(b)))
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_near(a[k], b[k]) for k in b)
    if isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_near(x, y) for x, y in zip(a, b))
    if isinstance(b, np.ndarray):
        return a.shape == b.shape and np.allclose(a, b, rtol=REL, atol=REL, equal_nan=True)
    return a == b


def _same_to_rounding(got, ref) -> None:
    assert _near(got.hyps, ref.hyps), (got.hyps, ref.hyps)
    assert _near(got.best_fit_z, ref.best_fit_z) and _near(got.evidence, ref.evidence)
    assert (got.arrays is None) == (ref.arrays is None) or not ref.arrays
    for key, v in (ref.arrays or {}).items():
        if isinstance(v, (np.ndarray, float)):
            assert _near(got.arrays[key], v), key


def _fresh_store(config_cls):
    """A fresh index and book of STORE, the default config, its packaged items and those with a barcode."""
    items = [s for s in STORE if not s.sold_by_weight]
    return (CatalogueIndex(STORE), WeightBook.for_catalogue(STORE), config_cls(), items,
            [s for s in items if s.ean13])


def test_the_compiled_add_block_scores_what_the_numpy_block_scores():
    """scoring's pruned k-unit add block from fitkernel.add_block: the same columns, the same
    normaliser, the same top hypotheses as the numpy block (to 1e-12), with the camera, with
    barcodes, weight-only, and while learning moves means (the index's sorted copies follow)."""
    from cart_gateway.reconcile import ReconcileConfig
    from cart_gateway.reconcile.inputs import VisionSummary
    from cart_gateway.reconcile.multi import score_multi
    from cart_gateway.reconcile.scoring import score
    rnd = random.Random(23)
    cat, book, cfg, items, with_code = _fresh_store(ReconcileConfig)
    kernel_adds = 0
    for trial in range(60):
        it = rnd.choice(items)
        for s in rnd.sample(items, 3):          # learning between events: small moves and far ones
            book.observe(s.sku, s.weight_mean_g * rnd.choice([1.0, 1.01, 1.3]))
        vision = None
        if rnd.random() < 0.7:
            seen = [it.sku] + [s.sku for s in rnd.sample(items, rnd.randint(0, 3))]
            vision = VisionSummary(0, {s: rnd.random() for s in sorted(set(seen))}, rnd.random() / 4,
                                   [rnd.choice(with_code).ean13] if rnd.random() < 0.3 else [], ["f1"], None,
                                   rnd.choice([1, 3]))
        lines = [{"line_id": f"L{j}", "sku": s.sku, "qty": 1, "weight_g": s.weight_mean_g, "by_weight": False,
                  "status": "accepted"} for j, s in enumerate(rnd.sample(items, rnd.choice([0, 2, 20])))]
        delta = rnd.choice([1, 1, 2, 3]) * it.weight_mean_g + rnd.gauss(0, 3)
        got, ref = _scored_both_ways(score, delta, rnd.choice([0.0, 1.5]), cat, book, lines, [], vision, cfg)
        _same_to_rounding(got, ref)
        kernel_adds += got.arrays["adds"] is not None
        got, ref = _scored_both_ways(score_multi, delta, 1.5, cat, book, lines, [], vision, cfg)
        _same_to_rounding(got, ref)
    assert kernel_adds > 40          # the pruned block (the kernel's) ran, not only the full one
    wi = WeightIndex.of(cat, book)
    assert np.array_equal(wi.mean_p, book.mean[wi.perm]) and np.array_equal(wi.sd_p, book.sd[wi.perm])


def test_the_compiled_removal_pairs_score_what_the_numpy_pairs_score():
    """score_multi's remove2 block from pairkernel.line_pairs: the same pairs kept (ties at the
    floor to the lowest pair, as pairblock._pick), the same mass and posteriors (to 1e-12), on
    baskets of 2 to 170 lines with repeated SKUs (no pair), produce lines, barcodes and the camera."""
    from cart_gateway.reconcile import ReconcileConfig, pairkernel
    from cart_gateway.reconcile.inputs import VisionSummary
    from cart_gateway.reconcile.multi import score_multi
    assert pairkernel.ready()
    rnd = random.Random(31)
    cat, book, cfg, items, with_code = _fresh_store(ReconcileConfig)
    loose = [s for s in STORE if s.sold_by_weight]
    pairs_seen = 0
    for trial in range(40):
        basket = rnd.sample(items, rnd.choice([2, 3, 20, 170]))
        basket += rnd.sample(basket, min(len(basket), rnd.randint(0, 4)))       # repeated SKUs: not a pair
        lines = [{"line_id": f"L{j}", "sku": s.sku, "qty": rnd.choice([1, 1, 2]), "weight_g": s.weight_mean_g,
                  "by_weight": False, "status": "accepted"} for j, s in enumerate(basket)]
        lines += [{"line_id": f"P{j}", "sku": s.sku, "qty": 1, "weight_g": 600.0, "by_weight": True,
                   "status": "accepted"} for j, s in enumerate(rnd.sample(loose, rnd.randint(0, 2)))]
        a, b = rnd.sample(basket, 2)
        # two lines out (fits), or a weight no pair fits (every pair at the floor: all tied)
        delta = -(a.weight_mean_g + b.weight_mean_g) + rnd.gauss(0, 2) if rnd.random() < 0.7 else -7000.0
        vision = None
        if rnd.random() < 0.5:
            vision = VisionSummary(0, {s.sku: rnd.random() for s in (a, b)}, rnd.random() / 4,
                                   [rnd.choice(with_code).ean13] if rnd.random() < 0.3 else [], ["f1"], None, 1)
        got, ref = _scored_both_ways(score_multi, delta, rnd.choice([0.0, 1.5]), cat, book, lines, [], vision, cfg)
        _same_to_rounding(got, ref)
        pairs_seen += sum(h["kind"] == "remove2" for h in got.hyps)
    assert pairs_seen > 20
