"""Evaluate a committed model on held-out seeded scenes, through the gateway's own detector
(JPEG decode included): top-1/top-3, centroid F1, calibration, latency, look-alike confusion."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors import create_detector
from cart_gateway.detectors.api import softmax
from cart_gateway.reconcile.inputs import PERSONAL_PREFIX

from . import dataset
from .calibrate import ece

CENTROID_RADIUS = 0.1  # a centroid hit: within 0.1 of the frame (normalised units) of the truth


def _detector(model_dir: Path, threads: int):
    return create_detector({"type": "cpu", "model_path": model_dir / "detector.tflite",
                            "labels_path": model_dir / "detector_labels.txt", "num_threads": threads})


def evaluate(model_dir: Path, catalogue_path=None, scenes: int = 1000, seed: int = 0,
             latency_frames: int = 200, workers: int = 2) -> dict:
    cat = Catalogue.load(catalogue_path)
    det = _detector(Path(model_dir), 2)
    labels = det.labels
    skus = [s for s in labels[1:] if not s.startswith(PERSONAL_PREFIX)]   # plain scenes show products only
    missing = [s for s in skus if s not in cat]
    if missing:
        raise ValueError(f"model labels not in catalogue: {missing[:5]}")
    index = {s: i for i, s in enumerate(labels)}
    jpegs, truths = dataset.render_jpegs(catalogue_path, skus, scenes, dataset.TEST_SEED0 + seed, workers)
    n = len(labels)
    raw = np.stack([det.raw(j) for j in jpegs])
    probs = softmax(raw[:, :n].astype(np.float64) / det.temperature)
    y = np.array([index[t["sku"]] if t["sku"] else 0 for t in truths])
    top = np.argsort(-probs, axis=1)
    stages = getattr(det, "stages", 1)
    crop_bytes = (Path(model_dir) / "detector_crop.tflite").stat().st_size if stages == 2 else None
    raw1 = np.stack([det.detect_raw(det.preprocess(j)) for j in jpegs]) if stages == 2 else raw
    top1 = float((top[:, 0] == y).mean())
    top3 = float((top[:, :3] == y[:, None]).any(axis=1).mean())
    # Centroid F1: a product answer is a true positive when SKU and centroid both match.
    tp = fp = fn = 0
    for k, t in enumerate(truths):
        pred = top[k, 0]
        hit = (t["sku"] is not None and pred == y[k]
               and np.hypot(raw[k, n] - t["cx"], raw[k, n + 1] - t["cy"]) <= CENTROID_RADIUS)
        if pred != 0:
            tp += hit
            fp += not hit
        if t["sku"] is not None and not hit:
            fn += 1
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    has = y != 0
    cerr = np.hypot(raw[has, n] - [t["cx"] for t, h in zip(truths, has) if h],
                    raw[has, n + 1] - [t["cy"] for t, h in zip(truths, has) if h])
    # Look-alike confusion: where the top-1 is wrong, is it the same family?
    is_personal = lambda i: labels[i].startswith(PERSONAL_PREFIX)
    fam = lambda i: "none" if i == 0 else ("personal" if is_personal(i) else cat[labels[i]].family)
    kind = lambda i: "none" if i == 0 else ("personal" if is_personal(i)
                                            else (cat[labels[i]].look or {}).get("family_kind", "produce"))
    wrong = np.nonzero(top[:, 0] != y)[0]
    same_family = sum(fam(top[k, 0]) == fam(y[k]) for k in wrong)
    pairs = Counter((labels[y[k]], labels[top[k, 0]]) for k in wrong)
    by_kind = {}
    for kd in ("colour", "text", "size", "produce", "none"):
        m = np.array([kind(i) == kd for i in y])
        if m.any():
            by_kind[kd] = {"n": int(m.sum()), "top1": round(float((top[m, 0] == y[m]).mean()), 4)}
    # The same scenes by condition: how much blur and the hand cost (specs are re-drawn from the seeds).
    specs = [dataset.scene_spec(skus, dataset.TEST_SEED0 + seed + i) for i in range(scenes)]
    conds = {"clean": lambda sp: sp["blur"] == 0 and sp["occlusion"] == 0,
             "blur": lambda sp: sp["blur"] > 0, "blur_over_half": lambda sp: sp["blur"] > 0.5,
             "hand": lambda sp: sp["occlusion"] > 0}
    by_cond = {}
    for name, f in conds.items():
        m = np.array([f(sp) for sp in specs])
        if m.any():
            by_cond[name] = {"n": int(m.sum()), "top1": round(float((top[m, 0] == y[m]).mean()), 4),
                             "top3": round(float((top[m, :3] == y[m, None]).any(axis=1).mean()), 4)}
    res = {
        "model": str(Path(model_dir) / "detector.tflite"),
        # Every model file the detector runs (the 1 MB goal is for all of them together).
        "model_bytes": (Path(model_dir) / "detector.tflite").stat().st_size + (crop_bytes or 0),
        "stages": stages, "crop_model_bytes": crop_bytes,
        "top1_stage1_only": round(float((raw1[:, :n].argmax(1) == y).mean()), 4),
        "scenes": scenes, "classes": n, "seed0": dataset.TEST_SEED0 + seed,
        "top1": round(top1, 4), "top3": round(top3, 4),
        "centroid_f1": round(float(f1), 4), "centroid_median_err": round(float(np.median(cerr)), 4) if len(cerr) else None,
        "none_recall": round(float((top[~has, 0] == 0).mean()), 4) if (~has).any() else None,
        "ece": round(ece(probs, y), 4),
        "ece_uncalibrated": round(ece(softmax(raw[:, :n].astype(np.float64)), y), 4),
        "temperature": det.temperature,
        "errors": int(len(wrong)), "errors_same_family": int(same_family),
        # Right family (look-alike group) or right "no product": what weight then has to settle.
        "family_top1": round(1 - (len(wrong) - int(same_family)) / scenes, 4),
        "top1_by_family_kind": by_kind,
        "by_condition": by_cond,
        "confusion": [{"true": a, "pred": b, "count": c,
                       "true_name": cat[a].name if a in cat else a,
                       "pred_name": cat[b].name if b in cat else b} for (a, b), c in pairs.most_common(15)],
    }
    for threads in (1, 2):
        d = _detector(Path(model_dir), threads)
        frames = jpegs[:latency_frames]
        for j in frames[:10]:  # warm-up
            d.detect(j)
        times = []
        for j in frames:
            t0 = time.perf_counter()
            d.detect(j)
            times.append((time.perf_counter() - t0) * 1000)
        res[f"latency_ms_{threads}t"] = {"median": round(float(np.median(times)), 3),
                                         "p95": round(float(np.percentile(times, 95)), 3)}
    return res
