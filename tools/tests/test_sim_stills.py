"""Fast mode's stills (tools/cart_sim/stills.py): which placements take a still,
which show a code, the pool's real render + read, and the engine taking the
read as barcode evidence."""
import pytest

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors.api import Candidate
from cart_gateway.vision import StillFrame
from cart_sim.fastsim import Store
from cart_sim.scenario import ScenarioError, validate
from cart_sim.shoppers import Action
from cart_sim.stills import StillCamera, StillPool


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CART_SIM_CACHE", str(tmp_path_factory.mktemp("stillcache")))
    yield
    mp.undo()


CALM = {"baskets": {"mean_items": 3, "p_multi_units": 0, "p_two_items": 0, "p_produce": 0, "p_lookalike": 0},
        "behaviour": {"p_remove": 0, "p_put_back": 0, "p_swap": 0, "p_personal": 0, "p_lean": 0,
                      "p_push": 0, "p_bump": 0, "p_hand_rest": 0, "p_out_of_view": 0,
                      "think_s_min": 2, "think_s_max": 4},
        "camera": {"p_missed_frame": 0, "p_hard_view": 0, "pool_per_condition": 1, "still": True,
                   "still_view_mm": 200.0, "p_barcode_facing": 1.0},
        "dishonest": {"fraction": 0}, "shopper": {"answer_error_rate": 0}}


def _box(cat):
    return next(s.sku for s in cat if s.shape == "box")


def test_still_camera_decides_what_the_still_shows(cat):
    sc = validate(CALM, "t")
    pool = StillPool(cat, sc["camera"])
    cam = StillCamera(pool, sc["camera"], "x")
    sku = _box(cat)
    a = Action("add", adds=[(sku, 1, 400.0)], view="clear")
    assert cam.still_key(a, -400.0) is False                   # a removal takes no still
    assert cam.still_key(a, 2.0) is False                      # below still_min_g
    assert cam.still_key(a, 400.0) == f"{sku}|clear|0"
    assert cam.still_key(Action("add", adds=[(sku, 1, 400.0)], view="covered"), 400.0) is None
    assert cam.still_key(Action("personal_in", adds=[(None, 1, 300.0)], view="hand"), 300.0) is None
    away = StillCamera(pool, dict(sc["camera"], p_barcode_facing=0.0), "x")
    assert away.still_key(a, 400.0) is None                    # the code faces away


def test_pool_reads_the_real_render_and_caches_it(cat):
    sc = validate(CALM, "t")
    pool = StillPool(cat, sc["camera"])
    sku = "SKU0212"
    key = pool.key(sku, "clear", 0)
    got = pool.codes(key)
    assert pool.rendered == 1 and pool.codes(key) == got and pool.rendered == 1
    pool.save()
    again = StillPool(cat, sc["camera"])
    assert again.codes(key) == got and again.rendered == 0     # from the disk cache
    assert pool.codes(None) == []
    s = pool.summary()
    assert s["stills"] == 3 and s["facing"] == 2


def test_fast_mode_reads_barcodes_from_stills_and_the_engine_uses_them(cat):
    from cart_sim.fastsim import BasketRun
    store = Store(validate(CALM, "t"), seed=3, catalogue=cat)
    runs = [BasketRun(store, i) for i in range(2)]
    for run in runs:
        run.run()
    store.close()
    st = store.stills.summary()
    assert st["stills"] >= 4 and st["facing"] == st["stills"] and st["read_wrong"] == 0
    assert st["read_right"] >= 1
    # the gateway's decision log (what the simulator saw of it)
    ev = [d for run in runs for d in run.log if "barcode" in d.get("evidence", [])]
    assert ev, "no decision used a barcode"


def test_fast_mode_classifies_every_still_with_the_gateways_still_classifier(cat):
    """camera.still_classifier: each still (code facing or not) is rendered once and classified by
    the gateway's own stage (vision.BurstDetector.classify_still, the committed models), and the
    detector stage hands its candidates to the gateway as a still's frame (StillFrame), as
    vision.BurstDetector.run does with a real still."""
    from cart_sim.fastsim import BasketRun
    sc = validate(dict(CALM, camera=dict(CALM["camera"], still_classifier=True, p_barcode_facing=0.5)), "t")
    store = Store(sc, seed=3, catalogue=cat)
    pool = store.stills
    seen = []                        # what the detector stage hands the gateway for each still
    run_stage = store.detector.run

    def recording(jpegs):
        frames, codes = run_stage(jpegs)
        seen.extend(f for f in frames if isinstance(f, StillFrame))
        return frames, codes
    store.detector.run = recording
    runs = [BasketRun(store, i) for i in range(2)]
    for run in runs:
        run.run()
    store.close()
    st = pool.summary()
    assert st["classifier"]["classified"] == st["stills"] >= 4
    assert st["facing"] < st["stills"]                       # the stills whose code faced away were classified too
    away = [k for k in pool.cache if k.startswith(pool.CLASS) and k.endswith("|" + pool.AWAY)]
    assert away and all(pool.cache[k[len(pool.CLASS):]] == [] for k in away)   # no code read on them
    some = next(v for k, v in pool.cache.items() if k.startswith(pool.CLASS) and v)
    assert all(0.0 <= score <= 1.0 and (sku is None or sku in cat or sku.startswith("personal:"))
               for sku, score, _, _ in some)
    assert len(seen) == st["stills"] and all(isinstance(c, Candidate) for f in seen for c in f)
    # the same scenario without the classifier: no candidates from stills, a different cache
    plain = StillPool(cat, validate(CALM, "t")["camera"])
    assert plain.tag != pool.tag and not plain.classifies


def test_a_runs_still_counts_are_every_chunks_whatever_the_workers(cat):
    """run_baskets' `stills` summary adds up every chunk's stills, in one process (the chunks
    count in place) or across workers (their counts are added), and renders are not counted
    twice: one chunk, two chunks and two workers give the same counts."""
    from cart_sim.fastsim import run_baskets
    sc = validate(CALM, "t")
    one = run_baskets(sc, 5, 2, workers=1, catalogue=cat, chunk=2)[1].stills.summary()
    assert one["stills"] >= 4
    chunked = run_baskets(sc, 5, 2, workers=1, catalogue=cat, chunk=1)[1].stills
    forked = run_baskets(sc, 5, 2, workers=2, catalogue=cat, chunk=1)[1].stills
    for got in (chunked.summary(), forked.summary()):
        assert (got["stills"], got["facing"], got["read_right"]) == (one["stills"], one["facing"], one["read_right"])
    assert chunked.rendered == 0 == forked.rendered          # all from the first run's cache


def test_still_scenario_keys_are_checked():
    with pytest.raises(ScenarioError, match="camera.still_res: must be one of SXGA, UXGA"):
        validate({"camera": {"still_res": "QXGA"}}, "t")
    with pytest.raises(ScenarioError, match="camera.p_barcode_facing"):
        validate({"camera": {"p_barcode_facing": 1.5}}, "t")
    assert validate({}, "t")["camera"]["still"] is False


def test_trace_mode_away_keys_render_a_still_without_a_code(cat):
    sc = validate(CALM, "t")
    pool = StillPool(cat, sc["camera"])
    cam = StillCamera(pool, dict(sc["camera"], p_barcode_facing=0.0), "x", scenes=True)
    sku = _box(cat)
    key = cam.still_key(Action("add", adds=[(sku, 1, 400.0)], view="clear"), 400.0)
    assert key == f"{sku}|clear|0|away" and pool.codes(key) == [] and pool.rendered == 0
    img, truth = pool.render(key)
    assert img.size == (1600, 1200) and truth["barcode"]["facing"] is False
    assert cam.still_key(Action("lean", view="hand"), 30.0) == "-|hand|0|away"
    assert pool.render("-|hand|0|away")[0].size == (1600, 1200)


def test_a_personal_items_still_shows_it_on_the_basket(cat):
    """With scene keys (trace mode, or the still classifier in fast mode) a personal item put
    in gets a still of the basket with that item drawn on it, labelled as that class."""
    import numpy as np
    sc = validate(CALM, "t")
    pool = StillPool(cat, sc["camera"])
    cam = StillCamera(pool, sc["camera"], "x", scenes=True)
    a = Action("personal_in", adds=[(None, 1, 300.0)], view="hand", personal_class="phone")
    key = cam.still_key(a, 300.0)
    assert key == "personal:phone|hand|0|away" and pool.codes(key) == [] and pool._truth_label(key) == "personal:phone"
    import random
    from cart_model.render import render_still
    img, truth = pool.render(key)
    rs = random.Random(f"{pool.seed}|still|{key}").randrange(1 << 30)
    empty, _ = render_still(cat, None, rs, pool.res, facing=False, view_mm=pool.view_mm)   # the same basket
    assert img.size == (1600, 1200) and 0 <= truth["cx"] <= 1 and 0 <= truth["cy"] <= 1
    diff = np.abs(np.asarray(img, dtype=np.int16) - np.asarray(empty, dtype=np.int16)).max(axis=2) > 40
    ys, xs = np.nonzero(diff)
    assert 0.005 < diff.mean() < 0.5                             # something the size of a phone was drawn
    assert xs.min() <= truth["cx"] * img.width <= xs.max() and ys.min() <= truth["cy"] * img.height <= ys.max()
    assert StillCamera(pool, sc["camera"], "x").still_key(a, 300.0) is None   # fast mode, barcodes only


def test_trace_mode_sends_rendered_stills_through_the_protocol(cat, tmp_path):
    """`cart-sim trace` with stills: each still is the renderer's, at the scenario's still_res,
    chunked as a §7.1 still; the in-process gateway reads its code, and `cart-gateway replay`
    (the real detector and barcode reader on the trace's JPEGs) reaches the same receipts."""
    import io
    import json
    from collections import defaultdict

    from PIL import Image

    from cart_gateway.config import parse_config
    from cart_gateway.protocol import decode_frame_chunk, read_trace
    from cart_gateway.replay import replay_file
    from cart_sim.tracegen import write_trace
    sc = validate(CALM, "t")
    truth = write_trace(sc, 1, 3, tmp_path / "tr")
    with open(tmp_path / "tr" / "trace.jsonl", encoding="utf-8") as f:
        _, recs = read_trace(f)
    parts = defaultdict(dict)
    for r in recs:
        if r.topic.endswith("/cam/frame"):
            c = decode_frame_chunk(r.payload)
            if c.still:
                parts[c.frame][c.index] = c
    assert parts, "no still in the trace"
    for chunks in parts.values():
        c0 = chunks[0]
        assert sorted(chunks) == list(range(c0.count)) and (c0.width, c0.height) == (1600, 1200)
        jpeg = b"".join(chunks[i].data for i in range(c0.count))
        assert len(jpeg) == c0.size and Image.open(io.BytesIO(jpeg)).size == (1600, 1200)
    evts = [json.loads(r.payload) for r in recs if r.topic.endswith("/cam/evt")]
    stills = [e for e in evts if e.get("type") == "capture" and "still" in e.get("fields", e)]
    assert len(stills) == len(parts)
    assert truth["summary"]["stills"]["read_right"] >= 1                   # the pool's read of the same render
    cfg = parse_config({"gateway_id": "sim", "state_dir": str(tmp_path), "carts": {"pattern": "s[0-9]+"},
                        "reconcile": {"wait_for_still": True}})
    result = replay_file(str(tmp_path / "tr" / "trace.jsonl"), cfg, str(tmp_path / "state"))
    got = {r["cart"]: r for r in result["receipts"] if r["ok"]}
    for b in truth["baskets"]:
        assert got[b["cart"]]["total_cents"] == b["receipt"]["total_cents"], b["cart"]
