"""Fast mode: truth accounting, dishonest shoppers, determinism (small runs)."""
import random
from collections import Counter

import pytest

from cart_gateway.catalogue import Catalogue
from cart_sim.bench import summarise
from cart_sim.fastsim import Store, run_baskets
from cart_sim.scenario import validate
from cart_sim.shoppers import Shopper
from cart_sim.world import ScenePool, pack_weight


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CART_SIM_CACHE", str(tmp_path_factory.mktemp("poolcache")))
    yield
    mp.undo()


CALM = {"baskets": {"mean_items": 4, "p_multi_units": 0, "p_two_items": 0, "p_produce": 0, "p_lookalike": 0},
        "behaviour": {"p_remove": 0, "p_put_back": 0, "p_swap": 0, "p_personal": 0, "p_lean": 0,
                      "p_push": 0, "p_bump": 0, "p_hand_rest": 0, "p_out_of_view": 0,
                      "think_s_min": 2, "think_s_max": 4},
        "camera": {"p_missed_frame": 0, "p_hard_view": 0, "pool_per_condition": 1},
        "dishonest": {"fraction": 0}, "shopper": {"answer_error_rate": 0}}


def _sc(**over):
    d = {k: dict(v) for k, v in CALM.items()}
    for sec, kv in over.items():
        d.setdefault(sec, {}).update(kv)
    return validate(d, "test")


def test_plan_truth_is_adds_minus_removes(cat):
    sc = validate({"behaviour": {"p_remove": 0.2, "p_swap": 0.1, "p_put_back": 0.1}}, "t")
    for seed in range(5):
        sh = Shopper(sc, cat, random.Random(seed))
        rng = random.Random(seed)
        plan = sh.plan(lambda s: pack_weight(rng, s))
        net = Counter()
        for a in plan:
            for sku, units, _ in a.adds:
                if sku:
                    net[sku] += units
            for sku, units, _ in a.removes:
                if sku:
                    net[sku] -= units
        assert +net == Counter(s for s, _ in sh.in_cart)
        assert all(v >= 0 for v in net.values())
        assert 1 <= sum(net.values()) + sum(1 for a in plan if a.kind in ("remove", "swap")) 


def test_pack_weights_follow_the_catalogue_spread(cat):
    s = next(x for x in cat if not x.sold_by_weight and x.weight_sd_g > 2)
    rng = random.Random(1)
    w = [pack_weight(rng, s) for _ in range(2000)]
    mean = sum(w) / len(w)
    sd = (sum((x - mean) ** 2 for x in w) / len(w)) ** 0.5
    assert abs(mean - s.weight_mean_g) < 0.2 * s.weight_sd_g
    assert 0.85 * s.weight_sd_g < sd < 1.1 * s.weight_sd_g
    assert max(abs(x - s.weight_mean_g) for x in w) <= 3 * s.weight_sd_g + 1e-9


def test_calm_honest_baskets_are_charged_the_truth(cat):
    st = Store(_sc(), seed=3, catalogue=cat)
    res = st.run(5)
    out = summarise(res, st.sc, st.seed)
    assert out["baskets"] == 5 and out["items"] == sum(r.items for r in res) > 0
    for r in res:
        assert r.receipt_ok
        # wrong means the receipt differs from the truth; here the charge must match exactly when right
        if not r.wrong:
            assert r.charged_cents == r.truth_cents
    assert sum(r.wrong for r in res) <= 1
    assert out["dishonest_baskets"] == 0 and out["undetected_loss_per_1000"] == 0


def test_wrong_basket_detection_counts_a_missing_item(cat):
    st = Store(_sc(), seed=3, catalogue=cat)
    from cart_sim.fastsim import BasketRun
    run = BasketRun(st, 0)
    res = run.run()
    # Tamper with the truth: one more unit of a product the receipt does not have.
    extra = next(s.sku for s in cat if not s.sold_by_weight)
    run.shopper.in_cart.append([extra, 100.0])
    run._score(res.receipt)          # the receipt the gateway published
    assert run.res.wrong and run.res.detail["missing"].get(extra, 0) >= 1
    assert run.res.under_cents > 0 or res.charged_cents != run.res.truth_cents


def test_dishonest_shoppers_produce_loss_figures(cat):
    sc = _sc(baskets={"mean_items": 5}, dishonest={"fraction": 1.0, "p_act": 1.0, "w_cover": 1.0,
                                                   "w_declare_personal": 1.0, "w_label_swap": 0.0})
    st = Store(sc, seed=5, catalogue=cat)
    res = st.run(6)
    out = summarise(res, sc, 5)
    assert out["dishonest_baskets"] == 6 and out["dishonest_acts"] >= 6
    assert set(out["dishonest_acts_by_kind"]) <= {"cover", "declare_personal"}
    # Every trick either went unnoticed (an undercharge) or cost a prompt or a review.
    for r in res:
        assert r.under_cents > 0 or r.prompts + r.reviews > 0
    lost = [r for r in res if r.under_cents > 0]
    assert out["undetected_loss_per_1000"] == pytest.approx(1000 * len(lost) / 6, abs=0.01)
    assert out["undetected_loss_cents"] == sum(r.under_cents for r in lost)


TIMED = ("gateway_s", "detector_stage_s", "pool_render_s", "wall_s", "cpu_s", "pool_scenes_rendered", "workers",
         "p50_decision_latency_ms", "p95_decision_latency_ms", "p50_movement_to_decision_ms",
         "p95_movement_to_decision_ms")   # measured times (the latencies include the handler's compute time)


def _untimed(out: dict) -> dict:
    return {k: v for k, v in out.items() if k not in TIMED}


def test_same_seed_same_figures(cat):
    sc = validate({"baskets": {"mean_items": 5}}, "d")
    a, _ = run_baskets(sc, 9, 4, catalogue=cat, workers=1)
    b, _ = run_baskets(sc, 9, 4, catalogue=cat, workers=1)
    assert _untimed(summarise(a, sc, 9)) == _untimed(summarise(b, sc, 9))


def test_figures_do_not_depend_on_the_worker_count(cat):
    """Chunks (one fresh gateway each) run on 1 or 2 processes: the same baskets, receipts and
    figures, merged in basket order."""
    sc = _sc(baskets={"mean_items": 3})
    one, t1 = run_baskets(sc, 4, 6, catalogue=cat, workers=1, chunk=2)
    two, t2 = run_baskets(sc, 4, 6, catalogue=cat, workers=2, chunk=2)
    assert (t1.workers, t2.workers, t1.chunks) == (1, 2, 3)
    assert [r.cart for r in two] == [f"s{i:05d}" for i in range(6)]
    assert [r.receipt for r in one] == [r.receipt for r in two]
    assert _untimed(summarise(one, sc, 4, (), t1)) == _untimed(summarise(two, sc, 4, (), t2))


def test_the_workers_renders_are_saved_for_the_next_run(cat, tmp_path, monkeypatch):
    """Two workers render scenes in their own processes: the run saves them (it did not: every
    2-worker run rendered its whole pool again)."""
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path))
    sc = _sc(baskets={"mean_items": 3})
    _, first = run_baskets(sc, 4, 4, catalogue=cat, workers=2, chunk=2)
    _, again = run_baskets(sc, 4, 4, catalogue=cat, workers=2, chunk=2)
    assert first.pool_rendered > 0 and again.pool_rendered == 0, (first.pool_rendered, again.pool_rendered)


def test_a_prompt_during_the_walk_is_answered_then_not_at_the_next_action(cat):
    """The gateway's timer runs on its own grid while the shopper walks: a movement is decided
    within the evidence window, not when the next action starts (issue 17)."""
    sc = _sc(behaviour={"think_s_min": 40, "think_s_max": 60})
    st = Store(sc, seed=3, catalogue=cat)
    res = st.run(2)
    lat = [x for r in res for x in r.move_latencies_ms]
    assert lat and max(lat) < 20_000, lat     # the walk is 40-60 s


def test_pool_caches_detector_output(cat, tmp_path):
    cam = validate({}, "x")["camera"]
    p = ScenePool(cat, cam, cache_dir=tmp_path)
    k = p.key(cat.skus()[0], "clear", 0)
    c1 = p.candidates(k)
    p.save()
    q = ScenePool(cat, cam, cache_dir=tmp_path, detector=object())   # no detector call allowed
    assert q.candidates(k) == c1 and q.rendered == 0


def _data_copy(tmp_path, monkeypatch):
    """The committed detector's files in a directory of the test's own (DEFAULT_MODEL points there)."""
    import shutil
    import cart_gateway.detectors as det
    data = tmp_path / "data"
    shutil.copytree(__import__("pathlib").Path(det.DEFAULT_MODEL).parent, data)
    monkeypatch.setattr(det, "DEFAULT_MODEL", data / "detector.tflite")
    monkeypatch.setattr(det, "DEFAULT_LABELS", data / "detector_labels.txt")
    return data


def test_pool_cache_is_keyed_by_every_stage_file_not_the_calibration(cat, tmp_path, monkeypatch):
    """A new stage model or labels file must not reuse stale stage outputs; a new calibration
    keeps them (they are fused again)."""
    data = _data_copy(tmp_path, monkeypatch)
    cam = validate({}, "x")["camera"]
    tag = ScenePool(cat, cam, cache_dir=tmp_path).tag
    assert ScenePool(cat, cam, cache_dir=tmp_path).tag == tag
    calib = data / "detector.calib.json"
    calib.write_text(calib.read_text() + " ")
    assert ScenePool(cat, cam, cache_dir=tmp_path).tag == tag
    for f in ("detector_crop.tflite", "detector.tflite", "detector_labels.txt"):
        p = data / f
        before = p.read_bytes()
        p.write_bytes(before + b"\n")
        assert ScenePool(cat, cam, cache_dir=tmp_path).tag != tag, f
        p.write_bytes(before)


def test_a_calibration_change_fuses_the_cached_views_again_without_rendering(cat, tmp_path, monkeypatch):
    """The pool keeps the stages' raw outputs: under a new temperature and stage-1 weight the same
    cached views give the new fused candidates, exactly what the real detector gives with that
    calibration, and nothing is rendered again."""
    import json
    from cart_gateway.detectors import create_detector, default_detector_config
    data = _data_copy(tmp_path, monkeypatch)
    cam = validate({}, "x")["camera"]
    p = ScenePool(cat, cam, cache_dir=tmp_path)
    keys = [p.key(cat.skus()[5], "clear", 0), p.key(cat.skus()[9], "hard", 0), p.key(None, "hand", 0)]
    before = [p.candidates(k) for k in keys]
    assert p.rendered == 3
    p.save()
    calib = data / "detector.calib.json"
    doc = json.loads(calib.read_text())
    doc["two_stage"].update(temperature=3.1, stage1_weight=1.3)
    calib.write_text(json.dumps(doc))
    q = ScenePool(cat, cam, cache_dir=tmp_path, detector=object())   # no detector call allowed
    after = [q.candidates(k) for k in keys]
    assert q.rendered == 0 and q.tag == p.tag
    assert after != before
    real = create_detector(default_detector_config())      # the gateway's detector, new calibration
    assert (real.temperature, real.stage1_weight) == (3.1, 1.3)
    for k, got in zip(keys, after):
        want = [[c.sku, round(c.score, 6), round(c.cx, 4), round(c.cy, 4)] for c in real.detect(p.jpeg(k))]
        assert got == want


def test_oracles_replace_only_their_source_of_error_and_are_reported(cat):
    from cart_sim.fastsim import BasketRun, oracle_candidates
    import pytest as _pytest
    with _pytest.raises(ValueError, match="unknown oracle 'camera'"):
        Store(_sc(), seed=1, catalogue=cat, oracles=["camera"])
    assert oracle_candidates("SKU0001|hard|2") == [["SKU0001", 0.99, 0.5, 0.5]]
    assert oracle_candidates("-|hand|0") == [[None, 0.99, 0.5, 0.5]]
    assert oracle_candidates("-|covered|1") == [[None, 0.99, 0.5, 0.5]]
    assert oracle_candidates("-|hand|0|bag") == [["personal:bag", 0.99, 0.5, 0.5]]
    noisy = {"sensor": {"noise_g": 1.5, "spike_rate": 0.05, "drift_g_per_h": 30.0},
             "behaviour": {"p_push": 0.7, "p_bump": 0.2, "p_personal": 0.2},
             "shopper": {"answer_error_rate": 0.2}}
    plain = Store(_sc(**noisy), seed=2, catalogue=cat)
    orc = Store(_sc(**noisy), seed=2, catalogue=cat, oracles=("vision", "scale", "shopper"))
    a, b = BasketRun(plain, 0), BasketRun(orc, 0)
    assert (a.cell.noise_g, b.cell.noise_g) == (1.5, 0.0)
    a.run(), b.run()
    # the same shoppers do the same things; only the evidence and the slips differ
    assert [(x.kind, x.adds, x.removes, x.push) for x in a.plan] == [(x.kind, x.adds, x.removes, x.push) for x in b.plan]
    plain.close(), orc.close()
    assert summarise([a.res], plain.sc, 2, plain.oracles)["oracles"] == []
    assert summarise([b.res], orc.sc, 2, orc.oracles)["oracles"] == ["scale", "shopper", "vision"]
