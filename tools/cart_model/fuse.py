"""Fit the two-stage fusion on validation frames run through the gateway's own detector:
fused logits = stage2 + w * stage1, then one temperature (Guo et al. 2017) on the result.
Both are fitted on the int8 models' outputs, with the crop taken where stage 1 put the
centroid, exactly as at run time."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from cart_gateway.detectors import create_detector
from cart_gateway.detectors.api import softmax

from . import dataset
from .calibrate import ece, fit_temperature, nll

WEIGHTS = np.round(np.arange(0.0, 2.01, 0.1), 2)  # stage-1 weights tried


def fit_fusion(z1: np.ndarray, z2: np.ndarray, y: np.ndarray) -> dict:
    """Stage-1 weight and temperature minimising validation NLL of the fused logits."""
    best = None
    for w in WEIGHTS:
        z = z2 + w * z1
        t = fit_temperature(z, y)
        loss = nll(z, y, t)
        if best is None or loss < best[0]:
            best = (loss, float(w), t)
    _, w, t = best
    z = z2 + w * z1
    return {"stage1_weight": w, "temperature": round(t, 4), "val_nll": round(best[0], 4),
            "val_top1_fused": round(float((z.argmax(1) == y).mean()), 4),
            "val_top1_stage1": round(float((z1.argmax(1) == y).mean()), 4),
            "val_top1_stage2": round(float((z2.argmax(1) == y).mean()), 4),
            "val_ece_before": round(ece(softmax(z), y), 4),
            "val_ece_after": round(ece(softmax(z / t), y), 4)}


def stage_outputs(model_dir: Path, catalogue_path=None, scenes: int = 2000, seed: int = 0, workers: int = 2,
                  pool: bool = False, raw_cache: Path | None = None) -> dict:
    """The int8 stages' raw outputs on the validation frames (z1: stage-1 logits, z2: stage-2
    logits, y: truth index, cond / cam: a pool view's condition and camera index). pool: pool-style
    views (dataset.render_pool_jpegs); a personal item the model has no class for is "no product"
    (what such a model should say of it). raw_cache: an .npz kept between fits, used again when it
    was made from the same stage files and split."""
    model_dir = Path(model_dir)
    import hashlib
    h = hashlib.sha256(json.dumps([scenes, seed, pool, str(catalogue_path)]).encode())
    for f in ("detector.tflite", "detector_crop.tflite", "detector_labels.txt"):
        h.update((model_dir / f).read_bytes())
    key = h.hexdigest()[:16]
    if raw_cache is not None and Path(raw_cache).exists():
        with np.load(raw_cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in ("z1", "z2", "y", "cond", "cam")}
    with tempfile.TemporaryDirectory() as tmp:  # neutral calibration: raw_stages does not use it
        neutral = Path(tmp) / "neutral.calib.json"
        neutral.write_text('{"temperature": 1.0, "two_stage": {"temperature": 1.0, "stage1_weight": 0.0}}')
        det = create_detector({"type": "cpu", "model_path": model_dir / "detector.tflite",
                               "labels_path": model_dir / "detector_labels.txt", "calibration_path": neutral})
    if det.stage2 is None:
        raise ValueError(f"{model_dir}: no detector_crop.tflite to fuse (train it with `cart-model train --stage crop`)")
    labels = det.labels
    index = {s: i for i, s in enumerate(labels)}
    if pool:
        from cart_gateway.reconcile.inputs import PERSONAL_PREFIX
        skus = [s for s in labels[1:] if not s.startswith(PERSONAL_PREFIX)]
        vseed = dataset.POOL_VAL_SEED + 10 * seed + 5
        jpegs, truth = dataset.render_pool_jpegs(catalogue_path, skus, scenes, vseed, workers)
        y = np.array([index.get(lab, 0) if lab else 0 for lab in truth])
        specs = [dataset.pool_scene_key(skus, i, vseed) for i in range(scenes)]
        cond = np.array([("personal" if len(k.split("|")) > 3 else k.split("|")[1]) for _, k, _ in specs])
        cam = np.array([c for c, _, _ in specs])
    else:
        jpegs, truths = dataset.render_jpegs(catalogue_path, labels[1:], scenes, dataset.VAL_SEED0 + seed, workers)
        y = np.array([index[t["sku"]] if t["sku"] else 0 for t in truths])
        cond, cam = np.array(["plain"] * len(y)), np.zeros(len(y), int)
    n = len(labels)
    outs = [det.raw_stages(j) for j in jpegs]
    out = {"z1": np.stack([o[0][:n] for o in outs]).astype(np.float64),
           "z2": np.stack([o[1] for o in outs]).astype(np.float64), "y": y, "cond": cond, "cam": cam}
    if raw_cache is not None:
        np.savez_compressed(raw_cache, key=np.array(key), **out)
    return out


def calibrate_two_stage(model_dir: Path, catalogue_path=None, scenes: int = 2000, seed: int = 0,
                        workers: int = 2, pool: bool = False, raw_cache: Path | None = None, log=print) -> dict:
    """pool: fit on pool-style validation views (dataset.render_pool_jpegs), the views fast mode shows."""
    model_dir = Path(model_dir)
    r = stage_outputs(model_dir, catalogue_path, scenes, seed, workers, pool, raw_cache)
    fit = fit_fusion(r["z1"], r["z2"], r["y"])
    fit["val_n"] = int(scenes)
    fit["val_views"] = "pool" if pool else "plain"
    calib_path = model_dir / "detector.calib.json"
    doc = json.loads(calib_path.read_text(encoding="utf-8")) if calib_path.exists() else {"temperature": 1.0}
    doc["two_stage"] = fit
    calib_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    log(json.dumps(fit))
    return fit
