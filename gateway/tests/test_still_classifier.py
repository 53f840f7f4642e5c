"""Still crop classifier (issue 13 part 2) at the gateway: the committed model, gallery and
calibration load and classify a still; every broken file stops start-up with a clear
error; the gallery's enrolment and scoring; a still's candidates reach the engine as a
still's evidence."""
import hashlib
import json
import shutil

import numpy as np
import pytest
from gwcore import JUICE, Harness

from cart_gateway.catalogue import Catalogue
from cart_gateway.config import GatewayConfig
from cart_gateway.detectors import Candidate, DetectorLoadError
from cart_gateway.detectors.still import (DEFAULT_STILL_MODEL, STILL_INPUT, Gallery, StillClassifier,
                                          load_still_classifier, still_window)
from cart_gateway.preflight import StartupError, load_detector
from cart_gateway.vision import BurstDetector, StillFrame, is_still_result

CAT = Catalogue.load()
DATA = DEFAULT_STILL_MODEL.parent


def _still(sku=JUICE[0], seed=11) -> bytes:
    from cart_model.render import encode_jpeg, render_still
    img, _ = render_still(CAT, sku, seed, "UXGA", scale=1.2)
    return encode_jpeg(img)


def _copy(tmp_path):
    for f in ("still.tflite", "still_gallery.npz", "still.calib.json"):
        shutil.copy(DATA / f, tmp_path / f)
    return tmp_path / "still.tflite"


def test_committed_still_model_classifies_a_still_into_calibrated_candidates():
    clf = StillClassifier(DEFAULT_STILL_MODEL)
    assert DEFAULT_STILL_MODEL.stat().st_size <= 1_000_000      # model files <= 5 MB in all (issue 13)
    assert "__none__" in clf.gallery and len(clf.gallery) >= len(CAT)   # every catalogue SKU has a row
    assert set(clf.gallery.labels) - {"__none__"} - {s for s in CAT.skus()} <= {
        f"personal:{k}" for k in ("bag", "phone", "wallet", "keys", "toy")}
    cands = clf.classify(_still(), 0.5, 0.5, top_k=5)
    assert len(cands) == 5 and all(0 <= c.score <= 1 for c in cands)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    assert sum(c.score for c in cands) <= 1 + 1e-6


def test_still_window_is_the_models_input_at_a_quarter_of_uxga():
    w = still_window(_still(), 0.5, 0.5)
    assert w.shape == (STILL_INPUT[1], STILL_INPUT[0], 3) and w.dtype == np.uint8


@pytest.mark.parametrize("broken, message", [
    ("no_model", "model file not found"),
    ("corrupt_model", "cannot load model"),
    ("no_gallery", "still gallery not found"),
    ("corrupt_gallery", "unusable"),
    ("nan_gallery", "NaN"),
    ("wrong_dim_gallery", "dims"),
    ("no_none_gallery", "__none__"),
    ("no_calibration", "still calibration not found"),
    ("corrupt_calibration", "needs numbers"),
    ("hot_calibration", "out of range"),
    ("other_model_calibration", "fitted for another model"),
])
def test_a_broken_still_file_stops_start_up_with_a_clear_error(tmp_path, broken, message):
    model = _copy(tmp_path)
    gal, cal = tmp_path / "still_gallery.npz", tmp_path / "still.calib.json"
    g = Gallery.load(gal)
    doc = json.loads(cal.read_text())
    if broken == "no_model":
        model.unlink()
    elif broken == "corrupt_model":
        model.write_bytes(b"TFL3" + b"\x00" * 100)
        doc["model_sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
        cal.write_text(json.dumps(doc))
    elif broken == "no_gallery":
        gal.unlink()
    elif broken == "corrupt_gallery":
        gal.write_bytes(b"PK\x03\x04 not a zip")
    elif broken == "nan_gallery":
        v = g.vectors.copy()
        v[0, 0] = np.nan
        np.savez(gal, labels=np.array(g.entry_labels), vectors=v)
    elif broken == "wrong_dim_gallery":
        np.savez(gal, labels=np.array(g.entry_labels), vectors=g.vectors[:, :16])
    elif broken == "no_none_gallery":
        keep = [i for i, lb in enumerate(g.entry_labels) if lb != "__none__"]
        np.savez(gal, labels=np.array([g.entry_labels[i] for i in keep]), vectors=g.vectors[keep])
    elif broken == "no_calibration":
        cal.unlink()
    elif broken == "corrupt_calibration":
        cal.write_text("{not json")
    elif broken == "hot_calibration":
        cal.write_text(json.dumps(dict(doc, temperature=0.0)))
    elif broken == "other_model_calibration":
        cal.write_text(json.dumps(dict(doc, model_sha256="0" * 64)))
    with pytest.raises(DetectorLoadError, match=message):
        StillClassifier(model)
    # At start-up the same error stops the gateway, naming the file.
    cfg = GatewayConfig.model_validate({"detector": {"still_classifier": True, "still_model_path": str(model)}})
    with pytest.raises(StartupError, match=message):
        load_detector(cfg)


def test_still_classifier_is_off_when_disabled_and_named_files_must_exist(tmp_path):
    assert GatewayConfig().detector.still_classifier is False     # off until a model meets its goals
    assert load_still_classifier(False, tmp_path / "missing.tflite") is None
    with pytest.raises(DetectorLoadError, match="not found"):
        load_still_classifier(True, tmp_path / "missing.tflite")
    assert load_still_classifier(True, None) is not None          # the committed one


def test_gallery_enrolment_adds_a_label_and_scores_its_best_view():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, 8)).astype(np.float32)
    g = Gallery(["__none__", "A", "B"], v)
    views = rng.standard_normal((4, 8)).astype(np.float32)
    g2 = g.enrol("NEW", views)
    assert g2.labels == ["A", "B", "NEW", "__none__"] and "NEW" not in g
    mean = views / np.linalg.norm(views, axis=1, keepdims=True)
    mean = mean.mean(0) / np.linalg.norm(mean.mean(0))
    assert g2.cosines(mean)[g2.labels.index("NEW")] == pytest.approx(1.0, abs=1e-5)
    many = g.enrol("NEW", views, mean=False)                   # several entries: a label scores its best
    e = views[2] / np.linalg.norm(views[2])
    assert many.cosines(e)[many.labels.index("NEW")] == pytest.approx(1.0, abs=1e-5)
    assert len(many.entry_labels) == 3 + 4 and len(many) == 4
    with pytest.raises(ValueError, match="bad labels"):
        Gallery(["personal:umbrella"], v[:1])
    with pytest.raises(ValueError, match="NaN"):
        Gallery(["A"], np.full((1, 8), np.nan))


def test_burst_detector_adds_a_still_frame_for_a_still_and_none_for_a_burst():
    clf = StillClassifier(DEFAULT_STILL_MODEL)
    det = BurstDetector(None, False, clf)
    frames, codes = det.run([_still()])
    assert len(frames) == 1 and isinstance(frames[0], StillFrame) and is_still_result(frames)
    assert all(isinstance(c, Candidate) for c in frames[0]) and det.still_classify_ms
    from cart_model.render import encode_jpeg, render_scene
    qvga = encode_jpeg(render_scene(CAT, JUICE[0], 3)[0])
    frames, _ = det.run([qvga])
    assert frames == [[]] and not is_still_result(frames)       # a burst frame without a burst model


def test_a_sure_still_candidate_settles_the_placement_as_a_still(tmp_path):
    h = Harness(tmp_path)
    sc = h.scale
    h.send(sc.topic, sc.unsettled())
    h.send(sc.topic, sc.weight(JUICE[1], unsettled_seq=sc.seq))
    from test_still_gateway import _send_still
    _send_still(h, _still(), 1, ref=f"c001/scale/1/{sc.seq - 1}")
    (burst_id, jpegs), = h.bursts
    h.bursts.clear()
    frames = [StillFrame([Candidate(JUICE[0], 0.995, 0.5, 0.5), Candidate(None, 0.004, 0.5, 0.5)])]
    h.gw.store.begin()
    h.gw.apply_vision(burst_id, frames, [], h.t)
    h.gw.store.commit()
    rt = h.gw.carts["c001"]
    line = rt.engine.basket()["lines"][0]
    assert (line["sku"], line["status"]) == (JUICE[0], "accepted")
    mv = rt.engine.movement("m1")
    assert mv["vision"]["stills"] == 1                     # counted as a still, not a burst
