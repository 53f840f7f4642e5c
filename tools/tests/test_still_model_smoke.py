"""Still classifier end to end, small: render windows -> train (CosFace head) -> int8
LiteRT embedding model + gallery -> enrol a never-trained SKU -> calibrate on real UXGA
stills -> the gateway's StillClassifier and BurstDetector classify a still."""
import json
import shutil
import time

import numpy as np
import pytest

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors.still import STILL_INPUT, StillClassifier
from cart_gateway.vision import BurstDetector, StillFrame
from cart_model import still_crops as sc
from cart_model.cli import DATA_DIR
from cart_model.still_eval import burst_detector, calibrate_still, enrol, figures
from cart_model.train import _margin_warmup, train_still


def test_margin_is_zero_through_the_warm_up_then_ramps_to_its_value():
    import tensorflow as tf      # no tensor made here: the training test still sets TF's threads

    class Margin:                # what the callback needs of the tf.Variable
        value = None

        def assign(self, v):
            self.value = v
    m = Margin()
    cb = _margin_warmup(tf, m, 0.15, 2)
    seen = []
    for epoch in range(5):
        cb.on_epoch_begin(epoch)
        seen.append(round(m.value, 4))
    assert seen == [0.0, 0.0, 0.075, 0.15, 0.15]


def test_still_training_pipeline_end_to_end(tmp_path):
    t0 = time.time()
    small = Catalogue(list(Catalogue.load())[:12])
    cat_path = tmp_path / "cat.json"
    cat_path.write_text(small.to_json())
    skus = small.skus()
    trained, unseen = sc.split_skus(skus)
    assert unseen and not set(unseen) & set(trained)
    tr = sc.render_crops(cat_path, trained, skus, 48, sc.STILL_TRAIN0, workers=1)
    va = sc.render_crops(cat_path, trained, skus, 8, sc.STILL_VAL0, workers=1)
    assert tr["x"].shape == (48, STILL_INPUT[1], STILL_INPUT[0], 3)
    assert list(tr["labels"]) == ["__none__", *trained]          # unseen SKUs never in a batch
    for f in ("detector.tflite", "detector_crop.tflite", "detector_labels.txt", "detector.calib.json"):
        shutil.copy(DATA_DIR / f, tmp_path / f)                  # stage 1 finds the item on the still
    # The round-5 recipe: CosFace + the view-mean prototype loss, batches of whole look-alike
    # families, appearance augmentation.
    info = train_still(tr, va, tmp_path, epochs=1, batch=32, width=0.5, embed_dim=64, proto_weight=1.0,
                       per_class=4, style_augment=True, family_batches=True, catalogue_path=cat_path,
                       log=lambda s: None)
    assert info["proto_weight"] == 1.0 and info["embed_dim"] == 64 and info["style_augment"] and info["family_batches"]
    model = tmp_path / "still.tflite"
    assert info["model_bytes"] == model.stat().st_size <= 1_000_000
    clf = StillClassifier(model)
    assert clf.model.interpreter.get_input_details()[0]["dtype"] == np.int8   # full-integer
    assert sorted(clf.gallery.labels) == sorted(["__none__", *trained])

    # Enrol the held-out SKU from rendered views: it gets a row, no retraining.
    g = enrol(clf, cat_path, unseen, views=2, workers=1, log=lambda s: None)
    assert set(unseen) <= set(g.labels) and len(g) == len(clf.gallery) + len(unseen)

    doc = calibrate_still(tmp_path, cat_path, stills=6, views=2, workers=1, log=lambda s: None)
    assert 0.05 <= doc["temperature"] <= 20 and doc["enrolled"] == len(unseen)
    assert json.loads((tmp_path / "still.calib.json").read_text())["model_sha256"] == doc["model_sha256"]
    clf = StillClassifier(model)                                   # reloads the enrolled gallery
    assert set(unseen) <= set(clf.gallery.labels)
    # Trained labels get a rendered-views row beside their head row, once only.
    calibrate_still(tmp_path, cat_path, stills=6, views=2, workers=1, log=lambda s: None, enrol_trained=True)
    rows = list(StillClassifier(model).gallery.entry_labels)
    assert all(rows.count(lb) == 2 for lb in ["__none__", *trained])
    calibrate_still(tmp_path, cat_path, stills=6, views=2, workers=1, log=lambda s: None, enrol_trained=True)
    assert list(StillClassifier(model).gallery.entry_labels) == rows
    clf = StillClassifier(model)
    from cart_model.render import encode_jpeg, render_still
    img, _ = render_still(small, unseen[0], 77, "UXGA")
    frames, _ = BurstDetector(burst_detector(tmp_path), False, clf).run([encode_jpeg(img)])
    (frame,) = frames
    assert isinstance(frame, StillFrame) and len(frame) == 5
    assert sum(c.score for c in frame) <= 1 + 1e-6
    assert {c.sku for c in frame} <= set(clf.gallery.labels) | {None}
    # A generous bound only: 8.5 min at load 15 on 2 cores under nice 10; about a minute quiet.
    assert time.time() - t0 < 900


def test_figures_count_confident_wrong_and_right_sure():
    labels = ["A", "B", "__none__"]
    probs = np.array([[0.995, 0.004, 0.001],    # right, sure
                      [0.98, 0.01, 0.01],       # wrong (truth B), confident
                      [0.5, 0.4, 0.1]])         # right, unsure
    y = np.array([0, 1, 0])
    f = figures(probs, y, labels)
    assert f["top1"] == pytest.approx(2 / 3, abs=1e-3) and f["right_sure"] == pytest.approx(1 / 3, abs=1e-3)
    assert f["confident_wrong"] == pytest.approx(1 / 3, abs=1e-3) and f["confident_wrong_n"] == 1
    assert f["precision_at_097"] == 0.5 and f["products_called_personal"] == 0.0


def test_warm_start_rebuilds_the_committed_still_model_and_fine_tunes_it(tmp_path):
    """`train --stage still --init-from DIR`: the committed int8 model back in Keras (BN folded)
    embeds as the int8 one does, its cosine head is the gallery's rows, any input side; a
    one-epoch fine-tune from it writes a model the gateway loads."""
    from cart_gateway.detectors.still import _unit, fit_window
    from cart_model.train import _tf
    from cart_model.warmstart import warm_still_model
    tf = _tf(2)
    committed = StillClassifier(DATA_DIR / "still.tflite")
    labels = ["__none__"] + [lb for lb in committed.gallery.labels if lb.startswith("SKU")][:39]
    skus = labels[1:7]
    wins = sc.render_windows(None, sc.enrol_specs(skus, 2), workers=1)
    side = committed.model.input_size[0]          # 96 for the committed model
    x = np.stack([fit_window(w, side) for w in wins]).astype(np.float32)
    model, embed = warm_still_model(tf, DATA_DIR, (side, side), labels)
    ek = _unit(embed.predict(x, verbose=0))
    ei = np.stack([committed.embed_window(w) for w in wins])
    assert (ek * ei).sum(1).min() > 0.99
    head = model.get_layer("cos").get_weights()[0]
    first = {}
    for lb, v in zip(committed.gallery.entry_labels, committed.gallery.vectors):
        first.setdefault(lb, v)
    assert np.allclose(head[:, labels.index(skus[0])], first[skus[0]], atol=1e-5)
    _, embed160 = warm_still_model(tf, DATA_DIR, (160, 160), labels)    # fully convolutional
    assert embed160.output_shape[-1] == committed.gallery.dim
    tr = {"x": np.stack(wins), "y": np.array([labels.index(skus[i // 2]) for i in range(len(wins))], np.int32),
          "labels": np.array(labels)}
    info = train_still(tr, tr, tmp_path, epochs=1, batch=8, input_size=side, init_from=DATA_DIR,
                       log=lambda s: None)
    assert info["init_from"] == DATA_DIR.name and info["input"] == side
    clf = StillClassifier(tmp_path / "still.tflite")
    assert sorted(clf.gallery.labels) == sorted(labels)


def test_a_widened_warm_start_embeds_as_the_committed_model_and_trains_on_prototypes(tmp_path):
    """`--init-from DIR --widen 2 --embed-dim 192`: Net2WiderNet copies every trunk channel and
    splits the next layer's weights, so the twice-as-wide Keras model embeds as the committed
    int8 one (the new embedding units start small); a one-epoch fine-tune on prototypes from it
    writes a wider model the gateway loads."""
    from cart_gateway.detectors.still import _unit, fit_window
    from cart_model.train import _tf
    from cart_model.warmstart import warm_still_model
    tf = _tf(2)
    committed = StillClassifier(DATA_DIR / "still.tflite")
    labels = ["__none__"] + [lb for lb in committed.gallery.labels if lb.startswith("SKU")][:9]
    skus = labels[1:5]
    wins = sc.render_windows(None, sc.enrol_specs(skus, 2), workers=1)
    side = committed.model.input_size[0]
    x = np.stack([fit_window(w, side) for w in wins]).astype(np.float32)
    narrow, _ = warm_still_model(tf, DATA_DIR, (side, side), labels)
    model, embed = warm_still_model(tf, DATA_DIR, (side, side), labels, widen=2, embed_dim=192)
    assert embed.output_shape[-1] == 192 and embed.count_params() > 2.5 * narrow.count_params()
    ek = _unit(embed.predict(x, verbose=0))
    ei = np.stack([committed.embed_window(w) for w in wins])
    assert (ek[:, :committed.gallery.dim] * ei).sum(1).min() > 0.99    # the same function, wider
    tr = {"x": np.stack(wins), "y": np.array([labels.index(skus[i // 2]) for i in range(len(wins))], np.int32),
          "labels": np.array(labels)}
    info = train_still(tr, tr, tmp_path, epochs=1, batch=8, input_size=side, init_from=DATA_DIR, widen=2,
                       embed_dim=192, proto_weight=1.0, per_class=2, style_augment=True, log=lambda s: None)
    assert info["widen"] == 2 and info["embed_dim"] == 192
    clf = StillClassifier(tmp_path / "still.tflite")
    assert clf.gallery.dim == 192 and sorted(clf.gallery.labels) == sorted(labels)
    assert np.isfinite(clf.embed_window(wins[0])).all()
