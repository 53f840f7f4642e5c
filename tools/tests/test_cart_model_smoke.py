"""End to end in a few minutes: render -> train both stages -> int8 TFLite -> fuse and
calibrate -> LiteRT -> detect."""
import json
import time

import numpy as np
import pytest

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors import create_detector
from cart_model import dataset
from cart_model.render import encode_jpeg, render_scene
from cart_model.fuse import calibrate_two_stage
from cart_model.train import train, train_crop


def test_training_pipeline_end_to_end(tmp_path):
    t0 = time.time()
    cat = Catalogue.load()
    skus = cat.skus()[:4]
    tr = dataset.render_split(None, skus, 160, dataset.TRAIN_SEED0, workers=1, crops=True)
    va = dataset.render_split(None, skus, 40, dataset.VAL_SEED0, workers=1, crops=True)
    assert tr["x"].shape == (160, 96, 128, 3) and list(tr["labels"]) == ["__none__", *skus]
    assert tr["xc"].shape == (160, 128, 128, 3)
    info = train(tr, va, tmp_path, epochs=1, batch=32, width=0.5, log=lambda s: None)
    model = tmp_path / "detector.tflite"
    assert model.stat().st_size <= 1_000_000 and info["model_bytes"] == model.stat().st_size
    assert (tmp_path / "detector_labels.txt").read_text().split() == ["__none__", *skus]
    assert 0.05 <= info["temperature"] <= 20
    det = create_detector({"type": "cpu", "model_path": model, "labels_path": tmp_path / "detector_labels.txt",
                           "num_threads": 2})
    assert det.temperature == info["temperature"]  # picked up from detector.calib.json
    assert det.interpreter.get_input_details()[0]["dtype"] == np.int8  # full-integer model
    assert det.stages == 1
    img, truth = render_scene(cat, skus[1], 4242, [skus[0]], occlusion=0.2, blur=0.3)
    jpeg = encode_jpeg(img, 80)
    cands = det.detect(jpeg, top_k=3)
    assert len(cands) == 3 and {c.sku for c in cands} <= {None, *skus}
    assert cands[0].score >= cands[1].score >= cands[2].score

    # Stage 2: the crop model, picked up next to the main model once it is calibrated.
    crop_info = train_crop(tr, va, tmp_path, epochs=1, batch=32, width=0.5, log=lambda s: None)
    assert crop_info["crop_model_bytes"] == (tmp_path / "detector_crop.tflite").stat().st_size
    assert model.stat().st_size + crop_info["crop_model_bytes"] <= 1_000_000
    fit = calibrate_two_stage(tmp_path, None, scenes=40, workers=1, log=lambda s: None)
    doc = json.loads((tmp_path / "detector.calib.json").read_text())
    assert doc["two_stage"] == fit and doc["temperature"] == info["temperature"]  # stage-1 entry kept
    assert 0 <= fit["stage1_weight"] <= 2 and 0.05 <= fit["temperature"] <= 20
    det2 = create_detector({"type": "cpu", "model_path": model, "labels_path": tmp_path / "detector_labels.txt"})
    assert det2.stages == 2 and det2.temperature == fit["temperature"]
    r1, z2 = det2.raw_stages(jpeg)
    fused = det2.raw(jpeg)
    assert np.allclose(fused[:5], z2 + fit["stage1_weight"] * r1[:5]) and np.allclose(fused[5:], r1[5:])
    cands2 = det2.detect(jpeg, top_k=5)
    assert sum(c.score for c in cands2) == pytest.approx(1.0, abs=1e-4)
    # A generous bound only: the smoke run takes ~40 s on 2 quiet cores, more on a busy CI box.
    assert time.time() - t0 < 300
