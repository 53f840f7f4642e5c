"""End to end in under a minute: render -> train -> int8 TFLite -> LiteRT -> detect."""
import time

import numpy as np
import pytest

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors import create_detector
from cart_model import dataset
from cart_model.render import encode_jpeg, render_scene
from cart_model.train import train


def test_training_pipeline_end_to_end(tmp_path):
    t0 = time.time()
    cat = Catalogue.load()
    skus = cat.skus()[:4]
    tr = dataset.render_split(None, skus, 160, dataset.TRAIN_SEED0, workers=1)
    va = dataset.render_split(None, skus, 40, dataset.VAL_SEED0, workers=1)
    assert tr["x"].shape == (160, 96, 128, 3) and list(tr["labels"]) == ["__none__", *skus]
    info = train(tr, va, tmp_path, epochs=1, batch=32, width=0.5, log=lambda s: None)
    model = tmp_path / "detector.tflite"
    assert model.stat().st_size <= 1_000_000 and info["model_bytes"] == model.stat().st_size
    assert (tmp_path / "detector_labels.txt").read_text().split() == ["__none__", *skus]
    assert 0.05 <= info["temperature"] <= 20
    det = create_detector({"type": "cpu", "model_path": model, "labels_path": tmp_path / "detector_labels.txt",
                           "num_threads": 2})
    assert det.temperature == info["temperature"]  # picked up from detector.calib.json
    assert det.interpreter.get_input_details()[0]["dtype"] == np.int8  # full-integer model
    img, truth = render_scene(cat, skus[1], 4242, [skus[0]], occlusion=0.2, blur=0.3)
    cands = det.detect(encode_jpeg(img, 80), top_k=3)
    assert len(cands) == 3 and {c.sku for c in cands} <= {None, *skus}
    assert cands[0].score >= cands[1].score >= cands[2].score
    # A generous bound only: the smoke run takes ~40 s on 2 quiet cores, more on a busy CI box.
    assert time.time() - t0 < 300
