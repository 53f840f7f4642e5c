"""The burst detector on pool-style views (the simulator's fast-mode scenes) with the personal
classes: render -> train both stages -> fuse on pool views -> LiteRT -> `cart-model eval`'s
pool section. Tiny (3 SKUs, 1 epoch): it checks the pipeline, not accuracy."""
import numpy as np

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors import create_detector
from cart_gateway.reconcile.inputs import PERSONAL_CLASSES, PERSONAL_PREFIX
from cart_model import dataset
from cart_model.fuse import calibrate_two_stage
from cart_model.pool_eval import pool_eval
from cart_model.train import train, train_crop


def test_pool_labels_are_none_skus_then_every_personal_class():
    labels = dataset.pool_labels(["SKU0001", "SKU0002"])
    assert labels[:3] == ["__none__", "SKU0001", "SKU0002"]
    assert {lab[len(PERSONAL_PREFIX):] for lab in labels[3:]} == PERSONAL_CLASSES


def test_pool_split_is_seeded_and_labels_personal_items_with_their_centroid():
    skus = Catalogue.load().skus()[:3]
    a = dataset.render_pool_split(None, skus, 20, dataset.POOL_VAL_SEED, workers=1)
    b = dataset.render_pool_split(None, skus, 20, dataset.POOL_VAL_SEED, workers=1)
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])
    labels = list(a["labels"])
    names = [labels[v] for v in a["y"]]
    assert any(n.startswith(PERSONAL_PREFIX) for n in names) and "__none__" in names and set(names) & set(skus)
    for name, c in zip(names, a["c"]):
        assert c[2] == (0.0 if name == "__none__" else 1.0)      # personal items have a centroid to learn
    other = dataset.render_pool_split(None, skus, 4, dataset.POOL_TRAIN_SEED, workers=1)
    assert not np.array_equal(a["x"][:4], other["x"])                   # splits never share a view


def test_pool_trained_two_stage_detector_end_to_end(tmp_path):
    skus = Catalogue.load().skus()[:3]
    tr = dataset.render_pool_split(None, skus, 60, dataset.POOL_TRAIN_SEED, workers=1, crops=True)
    va = dataset.render_pool_split(None, skus, 16, dataset.POOL_VAL_SEED, workers=1, crops=True)
    train(tr, va, tmp_path, epochs=2, batch=32, width=0.5, budget_minutes=30, log=lambda s: None)
    train_crop(tr, va, tmp_path, epochs=1, batch=32, width=0.5, log=lambda s: None)
    labels = (tmp_path / "detector_labels.txt").read_text().split()
    assert labels == dataset.pool_labels(skus)
    fit = calibrate_two_stage(tmp_path, None, scenes=16, workers=1, pool=True, log=lambda s: None)
    assert fit["val_views"] == "pool" and 0.05 <= fit["temperature"] <= 20
    det = create_detector({"type": "cpu", "model_path": tmp_path / "detector.tflite",
                           "labels_path": tmp_path / "detector_labels.txt"})
    assert det.stages == 2
    jpeg = dataset.render_pool_jpegs(None, skus, 1, dataset.POOL_TEST_SEED, workers=1)[0][0]
    cands = det.detect(jpeg, top_k=len(labels))
    assert {c.sku for c in cands} == {None, *labels[1:]}             # personal classes come out by name
    res = pool_eval(tmp_path, None, views=2, workers=1, latency_frames=2)
    assert res["personal_classes"] == len(PERSONAL_CLASSES)
    for cam in ("default_camera", "hard_camera"):
        assert res[cam]["personal"]["n"] == 2 and 0 <= res[cam]["personal"]["top1"] <= 1
        assert res[cam]["clear"]["sure_right"] + res[cam]["clear"]["sure_wrong"] <= 1


def test_warm_start_rebuilds_the_committed_stages_in_keras():
    """`train --init-from`: the shipped int8 stages, BN folded back as conv bias, give the same
    logits and centroid in Keras; a new label (a personal class) gets a row of its own."""
    from cart_gateway.detectors import DEFAULT_MODEL
    from cart_model.train import _tf
    from cart_model.warmstart import warm_model
    data_dir = DEFAULT_MODEL.parent
    old = (data_dir / "detector_labels.txt").read_text().split()
    old_skus = [s for s in old[1:] if not s.startswith(PERSONAL_PREFIX)]
    new = dataset.pool_labels(old_skus)
    tf = _tf(2)
    frame = warm_model(tf, data_dir, "frame", (96, 128), new)
    crop = warm_model(tf, data_dir, "crop", (128, 128), new)
    det = create_detector({"type": "cpu", "model_path": DEFAULT_MODEL, "labels_path": data_dir / "detector_labels.txt"})
    d = dataset.render_pool_split(None, old_skus, 3, dataset.POOL_TEST_SEED, workers=1, crops=True)
    idx = [new.index(lab) for lab in old]
    for x, xc in zip(d["x"], d["xc"]):
        r = det.detect_raw(x)
        k = frame(x[None].astype(np.float32), training=False)
        z = k["logits"].numpy()[0]
        assert z.shape == (len(new),)
        assert np.corrcoef(z[idx], r[:len(old)])[0, 1] > 0.99
        assert np.allclose(k["centroid"].numpy()[0], r[len(old):], atol=0.03)
        zc = crop(xc[None].astype(np.float32), training=False)["logits"].numpy()[0]
        assert np.corrcoef(zc[idx], det.crop_raw(xc))[0, 1] > 0.99


def test_a_held_personal_item_has_its_own_box_in_the_pool_truth(tmp_path):
    from cart_sim.scenario import load_scenario
    from cart_sim.world import ScenePool
    cat = Catalogue.load()
    pool = ScenePool(cat, load_scenario("hard")["camera"], seed=3, cache_dir=tmp_path, detector=False)
    img, truth = pool.render_truth("-|hand|2|wallet")
    assert truth["sku"] is None and truth["bbox"] is not None          # no product, but where the wallet is
    x0, y0, x1, y1 = truth["bbox"]
    assert 0 <= x0 < truth["cx"] < x1 <= 1 and 0 <= y0 < truth["cy"] < y1 <= 1
    assert pool._render("-|hand|2|wallet").tobytes() == img.tobytes()  # the pool's frames are these renders
    _, empty = pool.render_truth("-|hand|2")
    assert empty["bbox"] is None                                        # an empty hand has no item box


def test_a_mix_draws_only_its_conditions_and_held_views_are_products_under_a_hand():
    """`render --pool --mix`: the hard negatives (HELD: a product held as personal items are)
    are product views with the SKU's label and centroid, seeded like the rest."""
    skus = Catalogue.load().skus()[:3]
    mix = dataset.parse_mix("personal=1,held=1")
    keys = [dataset.pool_scene_key(skus, i, dataset.POOL_TRAIN_SEED, mix) for i in range(40)]
    conds = {key.split("|")[1] for _, key, _ in keys}
    assert conds == {"hand", dataset.HELD}                  # personal views are the pool's held-item keys
    for _, key, label in keys:
        sku, cond = key.split("|")[:2]
        assert label == (sku if cond == dataset.HELD else label) and label is not None
        assert cond == dataset.HELD or label.startswith(PERSONAL_PREFIX)
    held = dataset.parse_mix("held=1")
    a = dataset.render_pool_split(None, skus, 6, dataset.POOL_TRAIN_SEED, workers=1, mix=held)
    b = dataset.render_pool_split(None, skus, 6, dataset.POOL_TRAIN_SEED, workers=1, mix=held)
    assert np.array_equal(a["x"], b["x"])
    names = [list(a["labels"])[v] for v in a["y"]]
    assert set(names) <= set(skus) and (a["c"][:, 2] == 1.0).all()
    assert ((0 <= a["c"][:, :2]) & (a["c"][:, :2] <= 1)).all()
    plain = dataset.render_pool_split(None, skus, 6, dataset.POOL_TRAIN_SEED, workers=1)
    assert not np.array_equal(a["x"], plain["x"])


def test_a_bad_mix_is_refused_naming_what_is_wrong():
    import pytest
    for text, words in [("clear=0.5,shelf=0.5", "shelf"), ("held=-1", "held"), ("held=nan", "held"),
                        ("held=x", "held"), ("held=0,clear=0", "no condition"), ("held=1,held=2", "twice"),
                        ("held", "CONDITION=WEIGHT")]:
        with pytest.raises(ValueError, match=words):
            dataset.parse_mix(text)
    from cart_model.cli import main
    with pytest.raises(SystemExit):
        main(["render", "--out", "x.npz", "--mix", "held=1"])           # --mix needs --pool
    with pytest.raises(SystemExit):
        main(["render", "--pool", "--out", "x.npz", "--mix", "shelf=1"])
