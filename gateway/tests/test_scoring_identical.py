"""The speed-tuned reconcile.scoring.score gives bit-for-bit the results of the
straightforward reference (tests/score_reference.py) on random baskets:
every hypothesis, the evidence, the best fit and every array best_with_sku reads."""
from __future__ import annotations

import random

import numpy as np
import pytest

import score_reference as ref
from cart_gateway.catalogue import Catalogue
from cart_gateway.reconcile import CatalogueIndex, ReconcileConfig, WeightBook
from cart_gateway.reconcile.inputs import VisionSummary
from cart_gateway.reconcile.scoring import best_with_sku, score

CAT = Catalogue.load()
INDEX = CatalogueIndex(CAT)


def _basket(rnd: random.Random, n_lines: int) -> list[dict]:
    lines = []
    for i in range(n_lines):
        it = rnd.choice(list(CAT))
        qty = 1 if it.sold_by_weight else rnd.choice([1, 1, 1, 2, 3, 5])
        w = rnd.uniform(50, 2500) if it.sold_by_weight else qty * it.weight_mean_g
        lines.append({"line_id": f"L{i + 1}", "sku": it.sku, "qty": qty, "weight_g": round(w, 1),
                      "by_weight": bool(it.sold_by_weight),
                      "status": rnd.choice(["accepted"] * 9 + ["pending"])})
    if rnd.random() < 0.1:
        lines.append({"line_id": "L99", "sku": "NOT-IN-CATALOGUE", "qty": 1, "weight_g": 100.0,
                      "by_weight": False, "status": "accepted"})
    return lines


def _vision(rnd: random.Random) -> VisionSummary | None:
    r = rnd.random()
    if r < 0.4:
        return None
    skus = rnd.sample([s.sku for s in CAT], rnd.randint(0, 4))
    scores = {s: rnd.random() / 2 for s in skus}
    codes = []
    if rnd.random() < 0.3:
        with_code = [s for s in CAT if s.ean13]
        codes.append(rnd.choice(with_code).ean13)
    if rnd.random() < 0.1:
        codes.append("4000000000000")   # not in the catalogue
    return VisionSummary(mono_ms=1000, scores=scores, none_score=rnd.random() / 4, barcodes=codes,
                         frame_ids=["c001/1/1"], ref=None, n_frames=rnd.choice([0, 1, 3]))


def _book(rnd: random.Random, cfg: ReconcileConfig) -> WeightBook:
    book = WeightBook.for_catalogue(CAT, cfg.learn_prior_strength, cfg.min_sd_g)
    for it in rnd.sample(list(CAT), 20):      # some learned SKUs
        if not it.sold_by_weight:
            for _ in range(rnd.randint(1, 5)):
                book.observe(it.sku, it.weight_mean_g * rnd.uniform(0.98, 1.02))
    return book


def _same(a, b) -> None:
    assert a.hyps == b.hyps
    assert a.evidence == b.evidence
    assert a.best_fit_z == b.best_fit_z or (np.isnan(a.best_fit_z) and np.isnan(b.best_fit_z))
    assert a.unknown_barcodes == b.unknown_barcodes
    assert a.arrays.keys() == b.arrays.keys()
    for k, v in a.arrays.items():
        if isinstance(v, np.ndarray):
            assert v.dtype == b.arrays[k].dtype, k
            assert v.tobytes() == b.arrays[k].tobytes(), k     # bit for bit
        else:
            assert v is b.arrays[k], k


CONFIGS = [ReconcileConfig(), ReconcileConfig(prior_swap=0.0, prior_personal=0.0),
           ReconcileConfig(max_units=6, unit_prior=[1.0, 0.2], weight_lik_floor=0.0)]


@pytest.mark.parametrize("ci", range(len(CONFIGS)))
def test_tuned_score_is_identical_on_random_baskets(ci):
    cfg = CONFIGS[ci]
    rnd = random.Random(1000 + ci)
    book = _book(rnd, cfg)
    compared = 0
    for trial in range(150):
        lines = _basket(rnd, rnd.choice([0, 1, 3, 15, 60]))
        personal = [{"pid": f"P{i}", "weight_g": round(rnd.uniform(100, 900), 1)}
                    for i in range(rnd.choice([0, 0, 1, 2]))]
        present = [ln for ln in lines if ln["status"] == "accepted"]
        if present and rnd.random() < 0.4:        # a removal of a basket item
            delta = -rnd.choice(present)["weight_g"]
        else:
            delta = rnd.choice([rnd.uniform(6, 3000), -rnd.uniform(6, 3000), 0.0, rnd.uniform(3100, 6000)])
        noise = rnd.choice([0.0, 0.8, 4.0])
        vision = _vision(rnd)
        new = score(delta, noise, INDEX, book, lines, personal, vision, cfg)
        old = ref.score(delta, noise, INDEX, book, lines, personal, vision, cfg)
        _same(new, old)
        if new.hyps:
            compared += 1
            sku = new.hyps[0]["sku"] or (lines[0]["sku"] if lines else None)
            if sku:
                assert best_with_sku(new, INDEX, sku, removal=delta < 0, max_z=4.0) == \
                    best_with_sku(old, INDEX, sku, removal=delta < 0, max_z=4.0)
    assert compared > 100      # the comparison ran on real hypotheses, not empty results


def test_tuned_score_is_identical_with_known_weight():
    """A packaged item added at its catalogue weight into a 40-line basket: the common case."""
    cfg = ReconcileConfig()
    rnd = random.Random(7)
    book = _book(rnd, cfg)
    lines = _basket(rnd, 40)
    it = next(s for s in CAT if not s.sold_by_weight)
    for d in (it.weight_mean_g, 2 * it.weight_mean_g, -lines[3]["weight_g"]):
        personal: list = []
        _same(score(d, 0.8, INDEX, book, lines, personal, None, cfg),
              ref.score(d, 0.8, INDEX, book, lines, personal, None, cfg))
