"""Still-classifier data: the unseen-SKU split, the unseen style leaves the renderer as it
was, personal-item scenes, windows at the model's input, the held-out still cache."""
import numpy as np

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors.still import STILL_INPUT
from cart_model import render
from cart_model import still_crops as sc

CAT = Catalogue.load()


def test_unseen_skus_are_disjoint_from_trained_ones_and_cover_every_family_kind():
    trained, unseen = sc.split_skus(CAT.skus())
    assert set(trained).isdisjoint(unseen) and len(trained) + len(unseen) == len(CAT)
    assert len(unseen) >= 50
    kinds = {(CAT[s].look or {}).get("family_kind", "produce") for s in unseen}
    assert {"colour", "text", "size", "produce"} <= kinds


def test_unseen_style_swaps_font_and_floor_only_inside_its_block():
    font, floor = render._font, render._background
    skus = CAT.skus()
    spec = sc.scene_spec(skus, skus, 123, "unseen")
    train_spec = sc.StillSpec(spec.seed, spec.label, spec.basket, spec.occlusion, spec.out_of_view, "train")
    with sc.unseen_style():
        assert render._font is not font and render._background is not floor
    assert render._font is font and render._background is floor
    sc._init(None)
    a, b = sc._train_one(spec), sc._train_one(train_spec)
    assert a.shape == b.shape == (STILL_INPUT[1], STILL_INPUT[0], 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10      # another look, same scene


def test_personal_scenes_are_labelled_with_their_kind():
    assert sc.personal_kinds() == ("bag", "phone", "wallet", "keys", "toy")
    d = sc.render_crops(None, [], [], 12, 4242, workers=1, personal_share=1.0)
    labels = [str(d["labels"][i]) for i in d["y"]]
    assert {lb for lb in labels if lb != "__none__"} <= {f"personal:{k}" for k in sc.personal_kinds()}
    assert sum(lb.startswith("personal:") for lb in labels) >= 8


def test_held_out_stills_are_cached_under_their_specs(tmp_path):
    skus = CAT.skus()[:5]
    specs, a = sc.render_still_scenes(None, skus, skus, 2, sc.STILL_TEST0, workers=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("stills-*.pkl"))) == 1
    specs2, b = sc.render_still_scenes(None, skus, skus, 2, sc.STILL_TEST0, workers=1, cache_dir=tmp_path)
    assert specs == specs2 and a == b
    jpeg, cx, cy = a[0]
    assert jpeg[:2] == b"\xff\xd8" and 0 <= cx <= 1 and 0 <= cy <= 1
    sc.render_still_scenes(None, skus, skus, 2, sc.STILL_TEST0, "unseen", workers=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("stills-*.pkl"))) == 2          # another style, another entry


def test_training_windows_are_off_centre_as_stage_one_leaves_them_on_stills():
    """Stage 1's centroid on held-out UXGA stills is off by median 0.068, p90 0.166 of the
    frame (docs/model_card.md); a single sigma of 0.05 per axis gives only 0.059 / 0.107."""
    import random
    rng = random.Random(5)
    err = []
    for _ in range(20_000):
        s = sc.centre_sigma(rng)
        err.append(np.hypot(rng.gauss(0, s), rng.gauss(0, s)))
    assert 0.062 <= np.median(err) <= 0.075 and 0.15 <= np.percentile(err, 90) <= 0.18
    single = random.Random(5)
    assert {sc.centre_sigma(single, ((1.0, sc.CROP_JITTER),)) for _ in range(5)} == {sc.CROP_JITTER}
    assert single.random() == random.Random(5).random()       # enrolment views draw nothing extra


def test_a_training_crop_cut_from_a_still_is_the_window_the_gateway_classifies():
    """--from-stills: the training window of a rendered UXGA still equals, bit for bit, the
    window the gateway's BurstDetector.classify_still gives its still model for that still
    (the committed burst model's stage-1 centroid, one thread in training, the gateway's
    default threads here), and its label is the scene's truth."""
    from cart_gateway.detectors import create_detector, default_detector_config
    from cart_gateway.detectors.still import DEFAULT_STILL_MODEL, StillClassifier
    from cart_gateway.vision import BurstDetector

    seen = []

    class Spy(StillClassifier):       # the committed classifier; records the window it is given
        def classify_window(self, window, cx=0.5, cy=0.5, top_k=5):
            seen.append((window.copy(), cx, cy))
            return super().classify_window(window, cx, cy, top_k)

    trained, _ = sc.split_skus(CAT.skus())
    items = trained[:40]
    data = sc.render_still_crops(None, items, CAT.skus(), 3, sc.FROM_STILLS0 + 777,
                                 DEFAULT_STILL_MODEL.parent, workers=1, personal_share=0.3)
    assert data["x"].shape == (3, STILL_INPUT[1], STILL_INPUT[0], 3) and data["x"].dtype == np.uint8
    gateway = BurstDetector(create_detector(default_detector_config()), False, Spy(DEFAULT_STILL_MODEL))
    sc._init(None)
    for i in range(3):
        spec = sc.scene_spec(items, CAT.skus(), sc.FROM_STILLS0 + 777 + i, personal_share=0.3)
        assert str(data["labels"][data["y"][i]]) == spec.label
        jpeg, tx, ty = sc._scene(sc._CAT, spec, None)
        gateway.classify_still(jpeg)
        window, cx, cy = seen[-1]
        assert np.array_equal(window, data["x"][i])
        assert abs(float(np.hypot(cx - tx, cy - ty)) - float(data["centre_err"][i])) < 1e-6
