"""The gateway detector on the committed model: start-up errors, decode, calibrated output."""
import io
import shutil

import numpy as np
import pydantic
import pytest
from PIL import Image

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors import (NONE_LABEL, Candidate, DetectorLoadError, create_detector,
                                    default_detector_config)
from cart_gateway.detectors.detector_types import api_types, config_types
from cart_gateway.detectors.preprocess import DetectorInputError, decode_for_model


def _jpeg(colour=(120, 120, 120), size=(320, 240)):
    buf = io.BytesIO()
    img = Image.new("RGB", size, colour)
    img.paste((200, 30, 30), (120, 80, 200, 160))
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture(scope="module")
def det():
    return create_detector(default_detector_config())


def test_plugins_discovered():
    assert "cpu" in api_types and "cpu" in config_types
    assert config_types["cpu"].model_config["extra"] == "forbid"


def test_committed_model_labels_are_catalogue_skus(det):
    cat = Catalogue.load()
    assert det.labels[0] == NONE_LABEL
    assert set(det.labels[1:]) == set(cat.skus())
    assert 0.05 <= det.temperature <= 20
    assert default_detector_config().model_path.stat().st_size <= 1_000_000


def test_detect_returns_sorted_calibrated_candidates(det):
    out = det.detect(_jpeg(), top_k=5)
    assert len(out) == 5 and all(isinstance(c, Candidate) for c in out)
    scores = [c.score for c in out]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores) and sum(scores) <= 1 + 1e-6
    for c in out:
        assert 0 <= c.cx <= 1 and 0 <= c.cy <= 1
        assert c.sku is None or c.sku.startswith("SKU")


def test_all_candidates_sum_to_one(det):
    out = det.detect(_jpeg((40, 90, 160)), top_k=len(det.labels))
    assert sum(c.score for c in out) == pytest.approx(1.0, abs=1e-4)
    assert sum(c.sku is None for c in out) == 1


def test_draft_decode_size_and_bad_jpeg():
    a = decode_for_model(_jpeg(), (128, 96))
    assert a.shape == (96, 128, 3) and a.dtype == np.uint8
    with pytest.raises(DetectorInputError, match="cannot decode"):
        decode_for_model(b"\xff\xd8 not really a jpeg", (128, 96))
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    with pytest.raises(DetectorInputError, match="not JPEG"):
        decode_for_model(buf.getvalue(), (128, 96))


@pytest.fixture
def model_copy(tmp_path):
    cfg = default_detector_config()
    m, l = tmp_path / "m.tflite", tmp_path / "labels.txt"
    shutil.copy(cfg.model_path, m)
    shutil.copy(cfg.labels_path, l)
    return m, l


def _cfg(m, l, **kw):
    return {"type": "cpu", "model_path": m, "labels_path": l, **kw}


def test_missing_model_is_a_clear_startup_error(model_copy, tmp_path):
    m, l = model_copy
    with pytest.raises(DetectorLoadError, match="model file not found: .*nope.tflite"):
        create_detector(_cfg(tmp_path / "nope.tflite", l))
    with pytest.raises(DetectorLoadError, match="labels file not found"):
        create_detector(_cfg(m, tmp_path / "nope.txt"))


def test_corrupt_model_is_a_clear_startup_error(model_copy):
    m, l = model_copy
    m.write_bytes(m.read_bytes()[:5000])  # truncated download
    with pytest.raises(DetectorLoadError, match="cannot load model"):
        create_detector(_cfg(m, l))
    m.write_bytes(b"garbage" * 100)
    with pytest.raises(DetectorLoadError, match="cannot load model"):
        create_detector(_cfg(m, l))


def test_labels_that_do_not_match_the_model(model_copy):
    m, l = model_copy
    lines = l.read_text().splitlines()
    l.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DetectorLoadError, match="do not match"):
        create_detector(_cfg(m, l))
    l.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DetectorLoadError, match="first line"):
        create_detector(_cfg(m, l))


def test_bad_calibration_file(model_copy, tmp_path):
    m, l = model_copy
    bad = tmp_path / "calib.json"
    bad.write_text('{"temp": 1}')
    with pytest.raises(DetectorLoadError, match="temperature"):
        create_detector(_cfg(m, l, calibration_path=bad))


def test_config_rejects_unknown_keys_and_types(model_copy):
    m, l = model_copy
    with pytest.raises(pydantic.ValidationError):
        create_detector(_cfg(m, l, threads=2))
    with pytest.raises(pydantic.ValidationError):
        create_detector({"type": "edgetpu", "model_path": m, "labels_path": l})
    with pytest.raises(pydantic.ValidationError):
        create_detector(_cfg(m, l, num_threads=0))
