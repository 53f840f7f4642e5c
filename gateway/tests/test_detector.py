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
from cart_gateway.detectors.preprocess import DetectorInputError, crop_around, decode_for_model, decode_full


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


def test_crop_window_stays_inside_the_frame():
    frame = np.arange(240 * 320 * 3, dtype=np.uint32).reshape(240, 320, 3).astype(np.uint8)
    mid = crop_around(frame, 0.5, 0.5, (128, 128))
    assert mid.shape == (128, 128, 3) and np.array_equal(mid, frame[56:184, 96:224])
    corner = crop_around(frame, 0.0, 1.0, (128, 128))  # shifted in, never padded, on a QVGA frame
    assert np.array_equal(corner, frame[112:240, 0:128])
    small = crop_around(frame[:100, :100], 0.5, 0.5, (128, 128))  # smaller frame: black on the far side
    assert small.shape == (128, 128, 3) and (small[100:] == 0).all() and (small[:, 100:] == 0).all()


def test_full_decode_keeps_native_size():
    assert decode_full(_jpeg()).shape == (240, 320, 3)
    with pytest.raises(DetectorInputError, match="cannot decode"):
        decode_full(b"\xff\xd8 nope")


def _two_stage_copy(tmp_path):
    """A copy of the committed detector with a crop model (the committed one, or a stand-in)."""
    cfg = default_detector_config()
    m, l = tmp_path / "m.tflite", tmp_path / "labels.txt"
    shutil.copy(cfg.model_path, m)
    shutil.copy(cfg.labels_path, l)
    crop = cfg.model_path.with_name("detector_crop.tflite")
    if not crop.exists():
        pytest.skip("no committed crop model")
    shutil.copy(crop, tmp_path / "m_crop.tflite")
    return m, l


def test_crop_model_needs_its_fitted_calibration(tmp_path):
    m, l = _two_stage_copy(tmp_path)
    calib = tmp_path / "m.calib.json"
    with pytest.raises(DetectorLoadError, match="two-stage detector needs"):
        create_detector(_cfg(m, l))  # no calib file at all
    calib.write_text('{"temperature": 1.2}')  # stage-1 calibration only
    with pytest.raises(DetectorLoadError, match="two_stage"):
        create_detector(_cfg(m, l))
    calib.write_text('{"temperature": 1.2, "two_stage": {"temperature": 1.5, "stage1_weight": 99}}')
    with pytest.raises(DetectorLoadError, match="stage1_weight"):
        create_detector(_cfg(m, l))
    calib.write_text('{"temperature": 1.2, "two_stage": {"temperature": 1.5, "stage1_weight": 0.5}}')
    det = create_detector(_cfg(m, l))
    assert det.stages == 2 and det.temperature == 1.5 and det.stage1_weight == 0.5
    single = create_detector(_cfg(m, l, single_stage=True))
    assert single.stages == 1 and single.temperature == 1.2


def test_crop_model_that_does_not_match_the_labels(tmp_path):
    m, l = _two_stage_copy(tmp_path)
    (tmp_path / "m.calib.json").write_text('{"temperature": 1, "two_stage": {"temperature": 1, "stage1_weight": 0.5}}')
    with pytest.raises(DetectorLoadError, match="crop model .*outputs"):
        create_detector(_cfg(m, l, crop_model_path=m))  # stage 1 as the crop model: wrong outputs
    with pytest.raises(DetectorLoadError, match="model file not found"):
        create_detector(_cfg(m, l, crop_model_path=tmp_path / "nope.tflite"))
    (tmp_path / "m_crop.tflite").write_bytes(b"garbage" * 100)
    with pytest.raises(DetectorLoadError, match="cannot load model"):
        create_detector(_cfg(m, l))


def test_committed_detector_runs_both_stages(det):
    crop = default_detector_config().model_path.with_name("detector_crop.tflite")
    assert det.stages == (2 if crop.exists() else 1)
    if det.stages == 2:
        r1, z2 = det.raw_stages(_jpeg())
        fused = det.raw(_jpeg())
        n = len(det.labels)
        assert np.allclose(fused[:n], z2 + det.stage1_weight * r1[:n], atol=1e-4)
        assert np.allclose(fused[n:], r1[n:])  # the centroid comes from stage 1
