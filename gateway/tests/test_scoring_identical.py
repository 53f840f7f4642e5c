"""The speed-tuned reconcile.scoring.score gives the results of the straightforward
reference (tests/score_reference.py), which computes the same model densely, on random
baskets: the same decision inputs (top hypotheses, their posteriors, the best fit, the
evidence), every hypothesis with a posterior above 1e-9 present with the same score, the
same mass for the swaps that are not named (counted in closed form here, pair by pair
there), and the same best_with_sku answers. k-unit adds that cannot fit the weight are
left out and swaps are scored only for their candidates, so the hypothesis arrays are a
subset of the reference's and posteriors agree to float precision, not bit for bit."""
from __future__ import annotations

import random

import numpy as np
import pytest

import score_reference as ref
from cart_bench.synth import store_catalogue
from cart_gateway.catalogue import Catalogue
from cart_gateway.reconcile import CatalogueIndex, ReconcileConfig, WeightBook
from cart_gateway.reconcile.inputs import VisionSummary
from cart_gateway.reconcile import scoring, taps, weightindex
from cart_gateway.reconcile.scoring import KINDS, best_with_sku, score

CAT = Catalogue.load()
INDEX = CatalogueIndex(CAT)
# a store-sized catalogue (families, weight-alikes): the k-unit adds are indexed by weight too
BIG = store_catalogue(3000, seed=5)
BIG_INDEX = CatalogueIndex(BIG)


def _basket(rnd: random.Random, n_lines: int, cat=CAT) -> list[dict]:
    lines = []
    items = list(cat)
    for i in range(n_lines):
        it = rnd.choice(items)
        qty = 1 if it.sold_by_weight else rnd.choice([1, 1, 1, 2, 3, 5])
        w = rnd.uniform(50, 2500) if it.sold_by_weight else qty * it.weight_mean_g
        # now and then a produce SKU on a counted line (the line's flag, not the catalogue's, decides)
        counted = not it.sold_by_weight or rnd.random() < 0.05
        lines.append({"line_id": f"L{i + 1}", "sku": it.sku, "qty": qty, "weight_g": round(w, 1),
                      "by_weight": not counted,
                      "status": rnd.choice(["accepted"] * 9 + ["pending"])})
    if rnd.random() < 0.1:
        lines.append({"line_id": "L99", "sku": "NOT-IN-CATALOGUE", "qty": 1, "weight_g": 100.0,
                      "by_weight": False, "status": "accepted"})
    return lines


def _vision(rnd: random.Random, cat=CAT) -> VisionSummary | None:
    r = rnd.random()
    if r < 0.4:
        return None
    skus = rnd.sample([s.sku for s in cat], rnd.randint(0, 4))
    scores = {s: rnd.random() / 2 for s in skus}
    codes = []
    if rnd.random() < 0.3:
        with_code = [s for s in cat if s.ean13]
        codes.append(rnd.choice(with_code).ean13)
    if rnd.random() < 0.1:
        codes.append("4000000000000")   # not in the catalogue
    return VisionSummary(mono_ms=1000, scores=scores, none_score=rnd.random() / 4, barcodes=codes,
                         frame_ids=["c001/1/1"], ref=None, n_frames=rnd.choice([0, 1, 3]))


def _book(rnd: random.Random, cfg: ReconcileConfig, cat=CAT) -> WeightBook:
    book = WeightBook.for_catalogue(cat, cfg.learn_prior_strength, cfg.min_sd_g)
    for it in rnd.sample(list(cat), 20):      # some learned SKUs
        if not it.sold_by_weight:
            for _ in range(rnd.randint(1, 5)):
                book.observe(it.sku, it.weight_mean_g * rnd.uniform(0.98, 1.02))
    return book


REL = 1e-9          # posteriors: the normaliser now sums the pruned pairs in closed form
NEGLIGIBLE = 1e-9   # a hypothesis below this posterior may be pruned


def _close(x: float, y: float, rel: float = REL) -> bool:
    return x == y or abs(x - y) <= rel * max(abs(x), abs(y))


def _same_hyp(h: dict, g: dict) -> None:
    assert h.keys() == g.keys()
    for key in h:
        if key == "posterior":
            assert _close(h[key], g[key]), (h, g)
        else:
            assert h[key] == g[key], (key, h, g)


def _rows(sc) -> dict:
    """Every named hypothesis of a result by identity -> (posterior, z, mu, sd)."""
    a = sc.arrays
    if not a:
        return {}
    keys = zip(a["kind"].tolist(), a["ski"].tolist(), a["k"].tolist(), a["line"].tolist(), a["aux"].tolist())
    vals = zip(a["post"].tolist(), a["z"].tolist(), a["mu"].tolist(), a["sd"].tolist())
    rows = dict(zip(keys, vals))
    if "named" in a:       # the reference's rows for swaps that are not named: not hypotheses
        keys = zip(a["kind"].tolist(), a["ski"].tolist(), a["k"].tolist(), a["line"].tolist(), a["aux"].tolist())
        rows = {k: v for k, v, nm in zip(keys, rows.values(), a["named"].tolist()) if nm}
    return rows


def _same(new, ref) -> None:
    # decision inputs: the top hypotheses in order (best, runner-up, ...), their posteriors
    assert len(new.hyps) == len(ref.hyps)
    for h, g in zip(new.hyps, ref.hyps):
        _same_hyp(h, g)
    assert new.evidence == ref.evidence
    assert new.best_fit_z == ref.best_fit_z
    assert new.unknown_barcodes == ref.unknown_barcodes
    if not ref.arrays:
        assert not new.arrays
        return
    assert new.arrays["lines"] is ref.arrays["lines"] and new.arrays["personal"] is ref.arrays["personal"]
    # the normaliser over every hypothesis (pruned pairs too): score_multi merges on this scale
    assert abs(new.arrays["log_z"] - ref.arrays["log_z"]) <= 1e-9 * max(1.0, abs(ref.arrays["log_z"])), \
        (new.arrays["log_z"], ref.arrays["log_z"])
    rn, rr = _rows(new), _rows(ref)
    assert len(rn) == len(new.arrays["post"]) and len(rr) == int(ref.arrays["named"].sum())   # identities are unique
    for key, (p, z, mu, sd) in rr.items():
        if p > NEGLIGIBLE:
            assert key in rn, (KINDS[key[0]], key, p)
    for key, got in rn.items():        # whatever is kept is scored as the reference scores it
        p, z, mu, sd = rr[key]
        assert _close(got[0], p), (key, got, rr[key])
        assert _close(got[1], z, 1e-12) and _close(got[2], mu, 1e-12) and _close(got[3], sd, 1e-12), (key, got, rr[key])
    # the swaps not named: their mass in closed form is the reference's pair-by-pair sum
    hid, hid_ref = new.arrays["hidden_post"], ref.arrays["hidden_post"]
    assert _close(hid, hid_ref) or abs(hid - hid_ref) <= 1e-15, (hid, hid_ref)
    assert _close(float(new.arrays["post"].sum()) + sum(p for k, (p, *_) in rr.items() if k not in rn) + hid, 1.0,
                  1e-12)


def _same_answer(new, ref, sku: str, removal: bool, max_z: float, index=INDEX) -> None:
    h = best_with_sku(new, index, sku, removal=removal, max_z=max_z)
    g = best_with_sku(ref, index, sku, removal=removal, max_z=max_z)
    assert (h is None) == (g is None)
    if h is not None:
        _same_hyp(h, g)


CONFIGS = [ReconcileConfig(), ReconcileConfig(prior_swap=0.0, prior_personal=0.0),
           ReconcileConfig(max_units=6, unit_prior=[1.0, 0.2], weight_lik_floor=0.0),
           ReconcileConfig(swap_vision_top=2)]      # fewer swap candidates than SKUs the camera scored


# the fewer-candidates config on the packaged catalogue only (the store's dense reference is slow)
@pytest.mark.parametrize("ci,big", [(ci, big) for big in (False, True) for ci in range(len(CONFIGS))
                                    if not (big and ci == 3)],
                         ids=lambda v: ("store3000" if v else "packaged317") if isinstance(v, bool) else str(v))
def test_tuned_score_is_identical_on_random_baskets(ci, big):
    cfg = CONFIGS[ci]
    cat, index = (BIG, BIG_INDEX) if big else (CAT, INDEX)
    items = list(cat)
    rnd = random.Random(1000 + ci + 100 * big)
    book = _book(rnd, cfg, cat)
    compared = pruned = adds_left_out = swaps_named = hidden = 0
    trials = 90 if big else 150       # the store's dense reference is ten times the work
    fell_back = scoring.STATS["swap_weight_fallback"]
    for trial in range(trials):
        lines = _basket(rnd, rnd.choice([0, 1, 3, 15, 60]), cat)
        personal = [{"pid": f"P{i}", "weight_g": round(rnd.uniform(100, 900), 1)}
                    for i in range(rnd.choice([0, 0, 1, 2]))]
        present = [ln for ln in lines if ln["status"] == "accepted"]
        vision = _vision(rnd, cat)
        # SKUs taken out moments ago (swap candidates), now and then one not in the catalogue
        recent = rnd.sample([s.sku for s in items], rnd.choice([0, 0, 1, 3])) + (["GONE"] if rnd.random() < 0.1 else [])
        seen = [s for s in (vision.scores if vision and vision.n_frames else ()) if not cat[s].sold_by_weight]
        packed = [ln for ln in present if not ln["by_weight"] and ln["sku"] in index.idx]
        if packed and seen and rnd.random() < 0.3:   # a swap: a line out, a product the camera saw in
            delta = cat[rnd.choice(seen)].weight_mean_g - index.items[rnd.choice(packed)["sku"]].weight_mean_g
            delta += rnd.gauss(0, 2)
        elif present and rnd.random() < 0.4:        # a removal of a basket item
            delta = -rnd.choice(present)["weight_g"]
        elif big and rnd.random() < 0.4:          # an item (or k of one) added at about its weight
            it = rnd.choice(items)
            delta = rnd.choice([1, 1, 2, 3]) * it.weight_mean_g + rnd.gauss(0, 2)
        else:
            delta = rnd.choice([rnd.uniform(6, 3000), -rnd.uniform(6, 3000), 0.0, rnd.uniform(3100, 6000)])
        noise = rnd.choice([0.0, 0.8, 4.0])
        new = score(delta, noise, index, book, lines, personal, vision, cfg, recent)
        old = ref.score(delta, noise, index, book, lines, personal, vision, cfg, recent)
        _same(new, old)
        if new.hyps:
            compared += 1
            pruned += len(new.arrays["post"]) < int(old.arrays["named"].sum())
            adds_left_out += new.arrays["adds"] is not None
            swaps_named += any(h["kind"] == "swap" and h["posterior"] > 0.01 for h in new.hyps)
            hidden += new.arrays["hidden_post"] > 0
            sku = new.hyps[0]["sku"] or (lines[0]["sku"] if lines else None)
            if sku:
                _same_answer(new, old, sku, delta < 0, 4.0, index)
            # a shopper naming any SKU, fitting or not (the answer path reads left-out adds and swaps back)
            other = rnd.choice(items).sku
            _same_answer(new, old, other, delta < 0, rnd.choice([4.0, 0.5, 30.0]), index)
    assert compared > 0.66 * trials   # the comparison ran on real hypotheses, not empty results
    if cfg.prior_swap > 0:
        assert swaps_named > 5      # swaps were among the top hypotheses compared
        # and the weight fallback (nothing named the added side) was compared too
        assert scoring.STATS["swap_weight_fallback"] - fell_back > 10
        if cfg.weight_lik_floor > 0:
            assert hidden > 20      # and the closed form for the swaps not named counted in many
    if big:
        assert adds_left_out > 15   # the indexed adds were compared, not only dense fallbacks
        assert pruned > 15


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


def _counted_basket(rnd: random.Random, n_lines: int) -> list[dict]:
    lines = _basket(rnd, n_lines)
    for ln in lines:
        ln["status"] = "accepted"
    return lines


def _seen(skus: list[str]) -> VisionSummary:
    return VisionSummary(mono_ms=1000, scores={s: 0.3 for s in skus}, none_score=0.05, barcodes=[],
                         frame_ids=["c001/1/1"], ref=None, n_frames=3)


def test_pruning_follows_learned_weights():
    """Learning moves a SKU's mean after the weight index was sorted: small moves widen the
    windows, a larger one makes the SKU `moved` (scored one by one); either way the result is
    the reference's (3,000 SKUs, where the k-unit adds are indexed)."""
    cfg = ReconcileConfig()
    rnd = random.Random(11)
    book = _book(rnd, cfg, BIG)
    lines = _basket(rnd, 40, BIG)
    for ln in lines:
        ln["status"] = "accepted"
    units = [s for s in BIG if not s.sold_by_weight]
    BIG_INDEX.weight_index = None
    for step, shift in enumerate([0.0, 0.004, 0.004, 0.02, 0.05, -0.05]):
        it = rnd.choice(units)
        for _ in range(3):
            book.observe(it.sku, it.weight_mean_g * (1 + shift))
        # an item whose learned weight moved, added; and a swap into it for one of the lines
        a = next(ln for ln in lines if not ln["by_weight"] and BIG_INDEX.unit_pos[BIG_INDEX.idx[ln["sku"]]] >= 0)
        m_new, _ = book.params(it.sku)
        m_old, _ = book.params(a["sku"])
        personal: list = []
        for d in (m_new, m_new - m_old, -a["weight_g"]):
            for vision in ((None, _seen([it.sku])) if step % 2 else (None,)):
                new = score(d, 0.8, BIG_INDEX, book, lines, personal, vision, cfg)
                old = ref.score(d, 0.8, BIG_INDEX, book, lines, personal, vision, cfg)
                _same(new, old)
                _same_answer(new, old, it.sku, d < 0, 4.0, BIG_INDEX)
    wi = BIG_INDEX.weight_index
    assert wi is not None and wi.drift <= weightindex.REBUILD_DRIFT_G
    assert 0 < len(wi.moved) <= weightindex.MOVED_MAX      # the far moves were taken in without a re-sort


def test_the_swap_block_is_lines_by_candidates():
    """A 60-line basket: the swaps scored one by one are lines x (the SKUs the camera scored,
    a recent removal), not lines x catalogue; the rest is one closed-form term."""
    cfg = ReconcileConfig()
    rnd = random.Random(3)
    book = _book(rnd, cfg)
    lines = _counted_basket(rnd, 60)
    packed = sum(1 for ln in lines if not ln["by_weight"] and ln["sku"] in INDEX.idx)
    units = [s for s in CAT if not s.sold_by_weight]
    seen, gone = rnd.sample(units, 3), rnd.choice(units)
    a = next(ln for ln in lines if not ln["by_weight"])
    personal: list = []
    for d in (seen[0].weight_mean_g - a["weight_g"] / a["qty"], seen[1].weight_mean_g):
        new = score(d, 0.8, INDEX, book, lines, personal, _seen([s.sku for s in seen]), cfg, [gone.sku])
        old = ref.score(d, 0.8, INDEX, book, lines, personal, _seen([s.sku for s in seen]), cfg, [gone.sku])
        _same(new, old)
        n_cand = len({s.sku for s in seen} | {gone.sku})
        assert int((new.arrays["kind"] == KINDS.index("swap")).sum()) == packed * n_cand
        assert new.arrays["hidden_post"] > 0
    assert new.hyps[0]["kind"] == "add" and new.hyps[0]["sku"] == seen[1].sku


@pytest.mark.parametrize("big", [False, True], ids=["packaged317", "store3000"])
def test_a_swap_the_camera_did_not_name_takes_in_the_skus_whose_weight_fits(big):
    """Nothing names the added side (camera covered, or it saw only a basket line's SKU; no
    barcode, no recent removal): every swap pair whose weight fits is scored with its real
    fit, as the reference does densely. Once the camera names another product, or with
    swap_weight_fallback off, b is no candidate and its swaps stay at the floor."""
    cat, index = (BIG, BIG_INDEX) if big else (CAT, INDEX)
    rnd = random.Random(21 + big)
    on, off = ReconcileConfig(), ReconcileConfig(swap_weight_fallback=False)
    book = _book(rnd, on, cat)
    lines = _counted_basket(rnd, 25) if not big else _basket(rnd, 25, cat)
    for ln in lines:
        ln["status"] = "accepted"
    inside = {ln["sku"] for ln in lines}
    packed = [ln for ln in lines if not ln["by_weight"] and ln["sku"] in index.idx]
    a = packed[0]
    b = next(s for s in cat if not s.sold_by_weight and s.sku not in inside)
    other = next(s for s in cat if not s.sold_by_weight and s.sku not in inside and s.sku != b.sku)
    d = book.params(b.sku)[0] - book.params(a["sku"])[0] + 0.5
    personal: list = []
    swap_b = (KINDS.index("swap"), index.idx[b.sku])

    def swaps_into_b(sc):
        return int(((sc.arrays["kind"] == swap_b[0]) & (sc.arrays["ski"] == swap_b[1])).sum())

    for vision, cfg, fires in ((None, on, True), (_seen([a["sku"]]), on, True), (_seen([other.sku]), on, False),
                               (None, off, False)):
        before = scoring.STATS["swap_weight_fallback"]
        new = score(d, 0.8, index, book, lines, personal, vision, cfg)
        old = ref.score(d, 0.8, index, book, lines, personal, vision, cfg)
        _same(new, old)
        _same_answer(new, old, b.sku, False, 4.0, index)
        assert (scoring.STATS["swap_weight_fallback"] > before) == fires
        # fired: b's swaps that fit are scored one by one (not one per line), else b is left hidden
        assert (0 < swaps_into_b(new) < len(packed)) if fires else swaps_into_b(new) == 0
        if fires:      # among them the one out of line a (z of +0.5 g)
            ar = new.arrays
            row = (ar["kind"] == swap_b[0]) & (ar["ski"] == swap_b[1]) & (ar["aux"] == index.idx[a["sku"]])
            assert row.any() and float(np.abs(ar["z"][row]).min()) < 1.0
    # a recent removal names the added side too: no fallback
    before = scoring.STATS["swap_weight_fallback"]
    _same(score(d, 0.8, index, book, lines, personal, None, on, [other.sku]),
          ref.score(d, 0.8, index, book, lines, personal, None, on, [other.sku]))
    assert scoring.STATS["swap_weight_fallback"] == before


def test_a_weight_that_fits_nothing_is_scored_in_full():
    """Nothing fits, so every hypothesis sits at the likelihood floor: leaving adds out would
    hide real posterior, so the adds are scored in full (the swaps keep their candidates: the
    rest of them is the model's own closed form, exact whatever fits)."""
    cfg = ReconcileConfig()
    rnd = random.Random(4)
    book = _book(rnd, cfg, BIG)
    lines = _basket(rnd, 30, BIG)
    before = scoring.STATS["fallback"]
    personal: list = []
    new = score(40000.0, 0.8, BIG_INDEX, book, lines, personal, None, cfg)
    old = ref.score(40000.0, 0.8, BIG_INDEX, book, lines, personal, None, cfg)
    _same(new, old)
    assert scoring.STATS["fallback"] == before + 1
    assert new.arrays["adds"] is None
    # a removal that fits nothing: the swaps nobody named keep their prior's share, nothing singles out
    new = score(-40000.0, 0.8, BIG_INDEX, book, lines, personal, None, cfg)
    _same(new, ref.score(-40000.0, 0.8, BIG_INDEX, book, lines, personal, None, cfg))
    assert new.arrays["hidden_post"] > 0.01 and new.hyps[0]["posterior"] < 0.5


def test_windows_hold_every_pair_that_fits():
    """The invariant pruning rests on: every pair (an offset line a, a packaged SKU) within zb
    sd of the weight change is inside the windows or `moved`, also after learning moved means
    since the SKUs were sorted (some a little, some far)."""
    cfg = ReconcileConfig()
    rnd = random.Random(12)
    book = _book(rnd, cfg)
    INDEX.weight_index = None
    weightindex.WeightIndex.of(INDEX, book)        # sorted now; the book moves on below
    units = INDEX.units
    for it in rnd.sample([s for s in CAT if not s.sold_by_weight], 40):
        book.observe(it.sku, it.weight_mean_g + rnd.choice([-1, 1]) * rnd.choice([4.0, 40.0]))
    sw = weightindex.WeightIndex.of(INDEX, book)
    assert 0 < sw.drift <= weightindex.REBUILD_DRIFT_G and len(sw.moved) > 0
    a_i = np.array(rnd.sample(list(units), 30))
    mean, sd, sn2, zb = book.mean, book.sd, 1.5 ** 2, 8.0
    checked = 0
    for _ in range(300):
        # a change near some pair's edge: a real swap's weight plus a few sd
        delta = float(mean[rnd.choice(units)] - mean[rnd.choice(a_i)]) + rnd.uniform(-60, 60)
        lo, hi = sw.windows(delta, mean[a_i], sd[a_i] ** 2 + sn2, sd, zb)
        rows, cols = sw.pairs(lo, hi, INDEX.n)
        kept = set(zip(rows.tolist(), cols.tolist())) | {(r, int(c)) for r in range(len(a_i)) for c in sw.moved}
        z = (delta - (mean[units][None, :] - mean[a_i][:, None])) / np.sqrt(
            sd[units][None, :] ** 2 + sd[a_i][:, None] ** 2 + sn2)
        r, c = np.nonzero(np.abs(z) <= zb)
        need = set(zip(r.tolist(), units[c].tolist()))
        assert need <= kept
        checked += len(need)
    assert checked > 1000


# add2_fit_top: the default config caps at 16; also uncapped (0) and 2 (the cap bites on every row)
PAIR_CONFIGS = CONFIGS + [ReconcileConfig(add2_fit_top=0), ReconcileConfig(add2_fit_top=2)]


@pytest.mark.parametrize("ci", range(len(PAIR_CONFIGS)))
def test_indexed_pairs_match_the_dense_pair_block(ci):
    """score_multi's two-product adds (k of A + one B) on the 3,000-SKU store: the pairs
    the weight index keeps plus the rest in closed form give the dense block's hypotheses, in
    order, with posteriors within 1e-9 (weight-alikes give exact ties: lowest index first)."""
    from cart_gateway.reconcile import multi
    cfg = PAIR_CONFIGS[ci]
    rnd = random.Random(50 + ci)
    items = list(BIG)
    book = _book(rnd, cfg, BIG)
    indexed = 0
    calls = []
    real = multi._pairs_indexed

    def spy(*a):
        r = real(*a)
        calls.append(r is not None)
        return r
    multi._pairs_indexed = spy
    try:
        for _ in range(120):
            lines = _basket(rnd, rnd.choice([0, 3, 15]), BIG)
            it = rnd.choice(items)
            delta = rnd.choice([it.weight_mean_g + rnd.choice(items).weight_mean_g + rnd.gauss(0, 2),
                                2 * it.weight_mean_g + rnd.choice(items).weight_mean_g, rnd.uniform(6, 3000)])
            vision = _vision(rnd, BIG)
            new = multi.score_multi(delta, 0.8, BIG_INDEX, book, lines, [], vision, cfg)
            old = multi.score_multi(delta, 0.8, BIG_INDEX, book, lines, [], vision, cfg, prune=False)
            assert len(new.hyps) == len(old.hyps)
            for h, g in zip(new.hyps, old.hyps):
                _same_hyp(h, g)
            assert new.best_fit_z == old.best_fit_z
    finally:
        multi._pairs_indexed = real
    indexed = sum(calls)
    if cfg.weight_lik_floor > 0 and cfg.prior_two > 0:
        assert indexed > 40       # the indexed pairs were compared, not only dense fallbacks


def test_weight_alikes_are_the_dense_scans_also_after_learning():
    """weightindex.weight_alikes and any_weight_alike (camera.hidden_pair), and taps._has_look_alike
    (the family only), give what a scan of the whole catalogue gives, on the 3,000-SKU store (pack sizes shared across brands: many
    alikes), before and after learning moved some means a little and some far."""
    cfg = ReconcileConfig()
    rnd = random.Random(31)
    book = WeightBook.for_catalogue(list(BIG), cfg.learn_prior_strength, cfg.min_sd_g)
    units = BIG_INDEX.units
    BIG_INDEX.weight_index = None

    def dense(i, z, sn):
        others = units[units != i]
        tol = z * np.sqrt(book.sd[others] ** 2 + book.sd[i] ** 2 + sn * sn)
        return others[np.abs(book.mean[others] - book.mean[i]) <= tol]

    found = alike_in_family = none = 0
    for learned in (False, True):
        if learned:
            for it in rnd.sample([s for s in BIG if not s.sold_by_weight], 60):
                book.observe(it.sku, it.weight_mean_g + rnd.choice([-1, 1]) * rnd.choice([1.5, 4.0, 40.0]))
            assert len(weightindex.WeightIndex.of(BIG_INDEX, book).moved) > 0
        for i in rnd.sample(list(units), 200):
            for z, sn in ((3.0, 1.5), (1.0, 0.5), (0.01, 0.0)):   # the last: few alikes
                got = weightindex.weight_alikes(int(i), BIG_INDEX, book, z, sn)
                assert got.tolist() == sorted(dense(i, z, sn).tolist())
                assert weightindex.any_weight_alike(int(i), BIG_INDEX, book, z, sn) == (len(got) > 0)
                fam = {BIG_INDEX.items[BIG_INDEX.skus[int(j)]].family for j in got}
                cfg_z = ReconcileConfig(camera_fit_z=z)
                assert taps._has_look_alike(BIG_INDEX.skus[int(i)], BIG_INDEX, book, sn, cfg_z) == (
                    BIG_INDEX.items[BIG_INDEX.skus[int(i)]].family in fam)
                found += len(got)
                alike_in_family += BIG_INDEX.items[BIG_INDEX.skus[int(i)]].family in fam
                none += not len(got)
    assert found > 200 and alike_in_family > 20 and none > 20     # each answer seen both ways
