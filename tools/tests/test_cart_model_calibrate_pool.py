"""`cart-model calibrate --pool` on the committed burst detector (no personal classes) and its raw-output cache."""
import json
import shutil
from pathlib import Path

import numpy as np

import cart_gateway.detectors as det
from cart_model import dataset
from cart_model.fuse import calibrate_two_stage, stage_outputs


def _models(tmp_path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    for f in ("detector.tflite", "detector_crop.tflite", "detector_labels.txt", "detector.calib.json"):
        shutil.copy(Path(det.DEFAULT_MODEL).parent / f, d / f)
    return d


def test_pool_fit_on_a_model_without_personal_classes_takes_them_as_no_product(tmp_path, monkeypatch):
    d = _models(tmp_path)
    cache = tmp_path / "raw.npz"
    n = 24
    r = stage_outputs(d, None, scenes=n, workers=1, pool=True, raw_cache=cache)
    assert r["z1"].shape == r["z2"].shape == (n, 318) and len(r["y"]) == len(r["cond"]) == n
    personal = r["cond"] == "personal"
    assert personal.any() and (r["y"][personal] == 0).all()      # "no product": the model has no such class
    assert (r["y"][np.isin(r["cond"], ["clear", "hard", "oov"])] > 0).all()

    def no_render(*a, **k):
        raise AssertionError("rendered again")
    monkeypatch.setattr(dataset, "render_pool_jpegs", no_render)
    fit = calibrate_two_stage(d, None, scenes=n, workers=1, pool=True, raw_cache=cache, log=lambda s: None)
    doc = json.loads((d / "detector.calib.json").read_text())
    assert doc["two_stage"] == fit and fit["val_views"] == "pool" and fit["val_n"] == n
    assert 0.05 <= fit["temperature"] <= 20 and 0 <= fit["stage1_weight"] <= 2
    # another split (or other stage files) is not served from that cache
    (d / "detector_labels.txt").write_text((d / "detector_labels.txt").read_text() + "\n")
    try:
        stage_outputs(d, None, scenes=n, workers=1, pool=True, raw_cache=cache)
    except AssertionError as e:
        assert "rendered again" in str(e)
    else:
        raise AssertionError("a cache of other stage files was used")
