"""The burst detector on the virtual store's own views (cart_sim.world.ScenePool, held-out
pool seed): what fast mode's headline rests on. Per camera (the default and hard scenarios')
and per condition: top-1, sure-right and sure-wrong at the engine's accept score, and for
personal items how often a product is named instead."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cart_gateway.detectors import create_detector
from cart_gateway.detectors.api import softmax
from cart_gateway.reconcile.inputs import PERSONAL_PREFIX

from . import dataset

SURE = 0.97          # the engine's accept score (reconcile config accept_score)
CONDITIONS = ("clear", "hard", "oov", "hand", "covered", "personal")


def _views(skus: list[str], cond: str, n: int) -> list[tuple[str, str | None]]:
    """n (pool key, truth label) of one condition, the same for every model."""
    from .personal import KINDS
    out = []
    for i in range(n):
        if cond == "personal":
            kind = KINDS[i % len(KINDS)]
            out.append((f"-|hand|{i}|{kind}", PERSONAL_PREFIX + kind))
        elif cond in ("hand", "covered"):
            out.append((f"-|{cond}|{i}", None))
        else:
            out.append((f"{skus[(i * 7919) % len(skus)]}|{cond}|{i}", skus[(i * 7919) % len(skus)]))
    return out


def _render(args):
    cam, key = args
    return dataset.pool_jpeg(cam, key)[0]


def pool_eval(model_dir: Path, catalogue_path=None, views: int = 40, seed: int = 0, workers: int = 2,
              latency_frames: int = 100) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    model_dir = Path(model_dir)
    det = create_detector({"type": "cpu", "model_path": model_dir / "detector.tflite",
                           "labels_path": model_dir / "detector_labels.txt", "num_threads": 2})
    labels = det.labels
    skus = [s for s in labels[1:] if not s.startswith(PERSONAL_PREFIX)]
    index = {s: i for i, s in enumerate(labels)}
    n = len(labels)
    personal_idx = np.array([lab.startswith(PERSONAL_PREFIX) for lab in labels])
    pool_seed = dataset.POOL_TEST_SEED + 10 * seed
    jobs, truth = [], []
    for cam in range(len(dataset.POOL_CAMERAS)):
        for cond in CONDITIONS:
            for key, lab in _views(skus, cond, views):
                jobs.append((cam, key))
                truth.append((cam, cond, lab))
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=dataset._pool_init, initargs=(catalogue_path, pool_seed)) as ex:
            jpegs = list(ex.map(_render, jobs, chunksize=16))
    else:
        dataset._pool_init(catalogue_path, pool_seed)
        jpegs = [_render(j) for j in jobs]
    probs = np.stack([softmax(det.raw(j)[:n].astype(np.float64) / det.temperature) for j in jpegs])
    top, score = probs.argmax(1), probs.max(1)
    # truth index: None -> no product; a personal kind the model lacks -> -1 (never right)
    y = np.array([0 if lab is None else index.get(lab, -1) for _, _, lab in truth])
    res: dict = {"model": str(model_dir / "detector.tflite"), "pool_seed": pool_seed, "views_per_condition": views,
                 "sure": SURE, "classes": n, "personal_classes": int(personal_idx.sum())}
    cams = {0: "default_camera", 1: "hard_camera"}
    for cam, name in cams.items():
        res[name] = {}
        for cond in CONDITIONS:
            m = np.array([c == cam and k == cond for c, k, _ in truth])
            right = top[m] == y[m]
            sure = score[m] >= SURE
            row = {"n": int(m.sum()), "top1": round(float(right.mean()), 4),
                   "sure_right": round(float((right & sure).mean()), 4),
                   "sure_wrong": round(float((~right & sure).mean()), 4)}
            product = (top[m] != 0) & ~personal_idx[top[m]]
            if cond == "personal":
                row["named_product"] = round(float(product.mean()), 4)
            elif cond in ("hand", "covered"):
                row["named_product"] = round(float(product.mean()), 4)
            else:
                row["called_personal"] = round(float(personal_idx[top[m]].mean()), 4)
            res[name][cond] = row
    times = []
    for j in jpegs[:latency_frames]:
        t0 = time.perf_counter()
        det.detect(j)
        times.append((time.perf_counter() - t0) * 1000)
    res["latency_ms_2t"] = {"median": round(float(np.median(times)), 3), "p95": round(float(np.percentile(times, 95)), 3)}
    res["model_bytes"] = sum(p.stat().st_size for p in (model_dir / "detector.tflite", model_dir / "detector_crop.tflite")
                             if p.exists())
    return res
