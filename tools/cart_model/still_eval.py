"""Still classifier: enrolment, calibration on real stills, and `cart-model eval` section `still`.

Everything runs the gateway's path: a UXGA still from `render.render_still` (JPEG), the
burst model's stage 1 on it for the item's centroid, `still_window`, the int8 embedding
model and the gallery (cart_gateway.detectors.still).

Figures (all on held-out seeds):
* top1, ece, right_sure (right and >= 0.99), confident_wrong (wrong and >= 0.97),
  precision_at_097 / _099 (right among answers that sure), products_called_personal;
* by look-alike kind (colour, text, size, produce, personal, none), by trained / unseen SKU
  (unseen = never in a training batch, enrolled from rendered views), on the training style
  and on the unseen style (other font, floor and lighting; still_crops.unseen_style);
* a larger catalogue (`--still-big N`): N SKUs of a freshly generated catalogue, none
  trained on, all enrolled, scored together with the trained gallery.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors import create_detector
from cart_gateway.detectors.api import NONE_LABEL, softmax
from cart_gateway.detectors.still import (PERSONAL_PREFIX, Gallery, StillClassifier, _unit, still_centroid,
                                          still_window)

from . import still_crops as sc
from .calibrate import ece, fit_temperature

SURE, CONFIDENT = 0.99, 0.97     # the "right and sure" and "confident" thresholds
ENROL_VIEWS = 6
BIG_STILLS = 200                 # held-out stills of the larger enrolled catalogue


def burst_detector(model_dir: Path, threads: int = 2):
    return create_detector({"type": "cpu", "model_path": Path(model_dir) / "detector.tflite",
                            "labels_path": Path(model_dir) / "detector_labels.txt", "num_threads": threads})


def enrol(clf: StillClassifier, cat_path, labels: list[str], views: int = ENROL_VIEWS,
          workers: int = 2, log=print) -> Gallery:
    """Embed `views` rendered windows per label and add each label's mean to the gallery."""
    g = clf.gallery
    if not labels:
        return g
    t0 = time.time()
    specs = sc.enrol_specs(labels, views)
    E = np.stack([clf.embed_window(w) for w in sc.render_windows(cat_path, specs, workers)])
    by: dict[str, list[np.ndarray]] = defaultdict(list)
    for s, e in zip(specs, E):
        by[s.label].append(e)
    labels_all = list(g.entry_labels)
    vecs = [g.vectors]
    for lb, es in by.items():
        labels_all.append(lb)
        vecs.append(_unit(np.mean(es, axis=0, keepdims=True)))
    log(json.dumps({"enrolled": len(by), "views": views, "seconds": round(time.time() - t0, 1)}))
    return Gallery(labels_all, np.concatenate(vecs))


def embed_stills(clf: StillClassifier, det, stills) -> tuple[np.ndarray, list[float]]:
    """Embeddings of the stills, and the ms per still of centroid + window + model."""
    E, ms = [], []
    for jpeg, _, _ in stills:
        t0 = time.perf_counter()
        cx, cy = still_centroid(det, jpeg)
        E.append(clf.embed_window(still_window(jpeg, cx, cy)))
        ms.append((time.perf_counter() - t0) * 1000)
    return np.stack(E), ms


def _kind(cat, label: str) -> str:
    if label == NONE_LABEL:
        return "none"
    if label.startswith(PERSONAL_PREFIX):
        return "personal"
    return (cat[label].look or {}).get("family_kind", "produce") if label in cat else "other"


def figures(probs: np.ndarray, y: np.ndarray, gallery_labels: list[str]) -> dict:
    if len(y) == 0:
        return {"n": 0}
    conf, pred = probs.max(1), probs.argmax(1)
    right = pred == y
    personal = np.array([lb.startswith(PERSONAL_PREFIX) for lb in gallery_labels])
    product = np.array([not (gallery_labels[i].startswith(PERSONAL_PREFIX) or gallery_labels[i] == NONE_LABEL)
                        for i in y])
    out = {"n": int(len(y)), "top1": round(float(right.mean()), 4),
           "top3": round(float((np.argsort(-probs, 1)[:, :3] == y[:, None]).any(1).mean()), 4),
           "ece": round(ece(probs, y), 4),
           "right_sure": round(float((right & (conf >= SURE)).mean()), 4),
           "confident_wrong": round(float((~right & (conf >= CONFIDENT)).mean()), 4),
           "confident_wrong_n": int((~right & (conf >= CONFIDENT)).sum()),
           "precision_at_097": round(float(right[conf >= CONFIDENT].mean()), 4) if (conf >= CONFIDENT).any() else None,
           "precision_at_099": round(float(right[conf >= SURE].mean()), 4) if (conf >= SURE).any() else None,
           "coverage_at_097": round(float((conf >= CONFIDENT).mean()), 4)}
    if product.any():
        out["products_called_personal"] = round(float(personal[pred[product]].mean()), 4)
    return out


def reliability(probs: np.ndarray, y: np.ndarray) -> list[dict]:
    """Accuracy per confidence bin (the reliability diagram's points)."""
    conf, right = probs.max(1), probs.argmax(1) == y
    edges = [0.0, 0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0001]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf >= lo) & (conf < hi)
        if m.any():
            rows.append({"conf": f"{lo:.2f}-{min(hi, 1):.2f}", "n": int(m.sum()),
                         "mean_conf": round(float(conf[m].mean()), 4), "accuracy": round(float(right[m].mean()), 4)})
    return rows


def _score(clf: StillClassifier, gallery: Gallery, E: np.ndarray, slope: float) -> np.ndarray:
    cos = np.stack([gallery.cosines(e) for e in E])
    return softmax(cos.astype(np.float64) * slope)


def calibrate_still(model_dir: Path, cat_path=None, stills: int = 400, seed: int = 0, views: int = ENROL_VIEWS,
                    workers: int = 2, log=print, cache_dir: Path | None = None,
                    enrol_trained: bool = False) -> dict:
    """Enrol the held-out SKUs and the personal kinds, then fit the temperature on validation
    stills (real UXGA renders, the gateway's path); rewrites still_gallery.npz and still.calib.json.
    `enrol_trained` also gives every trained label a row of its rendered views' mean beside its
    head row (measured: trained SKUs' top-1 on stills 0.16 -> 0.40, docs/model_card.md)."""
    model_dir = Path(model_dir)
    clf = StillClassifier(model_dir / "still.tflite")
    det = burst_detector(model_dir)
    skus = Catalogue.load(cat_path).skus()
    trained, unseen = sc.split_skus(skus)
    personal = [PERSONAL_PREFIX + k for k in sc.personal_kinds()]
    to_enrol = [s for s in unseen + personal if s not in clf.gallery]     # personal kinds are usually trained
    if enrol_trained:     # labels with only their head row (a rerun adds nothing twice)
        rows = defaultdict(int)
        for lb in clf.gallery.entry_labels:
            rows[lb] += 1
        to_enrol += [lb for lb in clf.gallery.labels if rows[lb] == 1 and lb not in to_enrol]
    gallery = enrol(clf, cat_path, to_enrol, views, workers, log)
    specs, val = sc.render_still_scenes(cat_path, skus, skus, stills, sc.STILL_VAL0 + 5_000_000 + seed,
                                        workers=workers, personal_share=sc.PERSONAL_SHARE if personal else 0.0,
                                        cache_dir=cache_dir)
    E, _ = embed_stills(clf, det, val)
    order = {lb: i for i, lb in enumerate(gallery.labels)}
    y = np.array([order[s.label] for s in specs])
    cos = np.stack([gallery.cosines(e) for e in E])
    scale = clf.calibration.scale
    t = fit_temperature(cos * scale, y)
    gallery.save(model_dir / "still_gallery.npz")
    path = model_dir / "still.calib.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update({"temperature": round(t, 4), "fitted_on": f"{stills} validation stills (UXGA)",
                "model_sha256": hashlib.sha256((model_dir / "still.tflite").read_bytes()).hexdigest(),
                "enrolled": sum(s in gallery for s in unseen), "enrol_views": views,   # never-trained SKUs
                "val_stills": figures(softmax(cos * scale / t), y, gallery.labels)})
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    log(json.dumps(doc))
    return doc


def still_eval(model_dir: Path, cat_path=None, stills: int = 400, seed: int = 0, workers: int = 2,
               big: int = 0, big_views: int = 2, log=print, cache_dir: Path | None = None) -> dict:
    model_dir = Path(model_dir)
    clf = StillClassifier(model_dir / "still.tflite")
    det = burst_detector(model_dir)
    cat = Catalogue.load(cat_path)
    skus = cat.skus()
    trained, unseen = sc.split_skus(skus)
    unseen_set = set(unseen)
    g = clf.gallery
    order = {lb: i for i, lb in enumerate(g.labels)}
    slope = clf.calibration.slope
    has_personal = any(lb.startswith(PERSONAL_PREFIX) for lb in g.labels)
    res: dict = {"model_bytes": (model_dir / "still.tflite").stat().st_size,
                 "gallery_labels": len(g), "gallery_bytes": (model_dir / "still_gallery.npz").stat().st_size,
                 "temperature": clf.calibration.temperature, "slope": round(slope, 4), "seed0": sc.STILL_TEST0 + seed}
    for style in ("train", "unseen"):
        specs, ss = sc.render_still_scenes(cat_path, skus, skus, stills, sc.STILL_TEST0 + seed, style, workers,
                                           personal_share=sc.PERSONAL_SHARE if has_personal else 0.0,
                                           cache_dir=cache_dir)
        E, _ = embed_stills(clf, det, ss)
        y = np.array([order[s.label] for s in specs])
        probs = _score(clf, g, E, slope)
        sec = figures(probs, y, g.labels)
        kinds = np.array([_kind(cat, s.label) for s in specs])
        sec["by_kind"] = {k: figures(probs[kinds == k], y[kinds == k], g.labels)
                          for k in ("colour", "text", "size", "produce", "personal", "none") if (kinds == k).any()}
        is_unseen = np.array([s.label in unseen_set for s in specs])
        is_trained = np.array([s.label in set(trained) for s in specs])
        sec["trained_skus"] = figures(probs[is_trained], y[is_trained], g.labels)
        sec["unseen_skus_enrolled"] = figures(probs[is_unseen], y[is_unseen], g.labels)
        sec["reliability"] = reliability(probs, y)
        res[style + "_style"] = sec
        if style == "train":
            base = (specs, E, set(trained), unseen_set)    # scored again in the larger gallery (--still-big)
        log(json.dumps({style: {k: v for k, v in sec.items() if not isinstance(v, (dict, list))}}))
    for k in ("top1", "ece", "right_sure", "confident_wrong", "products_called_personal"):
        res[k] = res["train_style"].get(k)
    # Per still through the gateway's own call (vision.BurstDetector.classify_still), 2 threads.
    from cart_gateway.vision import BurstDetector
    bd = BurstDetector(det, False, clf)
    for jpeg, _, _ in ss[:5]:
        bd.classify_still(jpeg)
    bd.still_classify_ms = []
    for jpeg, _, _ in ss[:100]:
        bd.classify_still(jpeg)
    ms = bd.still_classify_ms
    res["latency_ms"] = {"median": round(float(np.median(ms)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
                         "n": len(ms), "what": "BurstDetector.classify_still: stage-1 centroid on the still, "
                         "decode at 1/4, window, int8 model, gallery scoring; 2 threads"}
    t0 = time.perf_counter()
    e = _unit(np.random.default_rng(0).standard_normal(g.dim).astype(np.float32))
    big_g = Gallery([f"S{i:06d}" for i in range(30_000)] + [NONE_LABEL],
                    _unit(np.random.default_rng(1).standard_normal((30_001, g.dim)).astype(np.float32)))
    t0 = time.perf_counter()
    for _ in range(50):
        big_g.cosines(e)
    res["gallery_30k_score_ms"] = round((time.perf_counter() - t0) * 1000 / 50, 3)
    if big:
        res["enrolled_catalogue"] = big_catalogue_eval(clf, det, big, big_views, stills, seed, workers, log, cache_dir,
                                                       base=base)
    return res


def big_catalogue_eval(clf: StillClassifier, det, n_skus: int, views: int, stills: int, seed: int,
                       workers: int, log=print, cache_dir: Path | None = None, base=None) -> dict:
    """A catalogue of >= n_skus SKUs the model never saw (catalogue_gen with another seed),
    every one enrolled from `views` rendered views, scored in one gallery with the trained
    classes: how recognition holds up as the catalogue grows without retraining.

    `base` = (specs, embeddings, trained SKUs, enrolled SKUs) of the 317-SKU catalogue's
    held-out stills (training style): scored again in the grown gallery, so trained and
    enrolled SKUs are compared at the larger size too (`trained_skus`, `unseen_skus_enrolled`)."""
    from .catalogue_gen import generate
    fam = max(1, int(n_skus / 2.6))
    big = generate(seed=7, n_families=fam)
    while len(big) < n_skus:
        fam = int(fam * 1.1) + 1
        big = generate(seed=7, n_families=fam)
    # new ids (catalogue_gen numbers from SKU0001 too): nothing may share a trained label
    big = Catalogue([dataclasses.replace(s, sku="N" + s.sku) for s in list(big)[:n_skus]], "catalogue_gen seed 7")
    skus = big.skus()
    gallery = enrol(clf, big, skus, views, workers, log)
    big_only = Gallery([lb for lb in gallery.entry_labels if lb in set(skus) or lb == NONE_LABEL],
                       np.stack([v for lb, v in zip(gallery.entry_labels, gallery.vectors)
                                 if lb in set(skus) or lb == NONE_LABEL]))
    specs, ss = sc.render_still_scenes(big, skus, skus, min(stills, BIG_STILLS), sc.STILL_TEST0 + 3_000_000 + seed,
                                       "train", workers,
                                       cache_dir=cache_dir)
    E, _ = embed_stills(clf, det, ss)
    out = {"skus": len(skus), "enrol_views": views}   # the figures of each gallery: the new SKUs' stills
    for name, g in (("with_trained_gallery", gallery), ("enrolled_only", big_only)):
        order = {lb: i for i, lb in enumerate(g.labels)}
        y = np.array([order[s.label] for s in specs])
        out[name] = figures(_score(clf, g, E, clf.calibration.slope), y, g.labels)
        out[name]["gallery_labels"] = len(g)
    if base is not None:
        b_specs, b_E, b_trained, b_unseen = base
        order = {lb: i for i, lb in enumerate(gallery.labels)}
        y = np.array([order[s.label] for s in b_specs])
        probs = _score(clf, gallery, b_E, clf.calibration.slope)
        for name, keep in (("trained_skus", b_trained), ("unseen_skus_enrolled", b_unseen)):
            m = np.array([s.label in keep for s in b_specs])
            out["with_trained_gallery"][name] = figures(probs[m], y[m], gallery.labels)
    log(json.dumps({"enrolled_catalogue": out}))
    return out


def enrol_photos(model_dir: Path, root: Path, views_mean: bool = True, log=print) -> dict:
    """A store's own pictures: a folder per label (SKU id or personal:<kind>) of photos
    framed on the item (JPEG/PNG); each is decoded as a still is and its centre window
    embedded; the label's gallery row becomes their mean. No retraining."""
    import io

    from PIL import Image

    from cart_gateway.detectors.still import STILL_INPUT, still_view
    model_dir = Path(model_dir)
    clf = StillClassifier(model_dir / "still.tflite")
    g = clf.gallery
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if not folders:
        raise ValueError(f"{root}: no label folders")
    added = {}
    for f in folders:
        wins = []
        for img_path in sorted(f.iterdir()):
            if img_path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            buf = io.BytesIO()
            Image.open(img_path).convert("RGB").save(buf, "JPEG", quality=90)
            wins.append(still_view(buf.getvalue(), STILL_INPUT[0])[:STILL_INPUT[1]])
        if not wins:
            raise ValueError(f"{f}: no .jpg/.png pictures")
        wins = [np.pad(w, ((0, STILL_INPUT[1] - w.shape[0]), (0, 0), (0, 0))) for w in wins]
        g = g.enrol(f.name, np.stack([clf.embed_window(w) for w in wins]), mean=views_mean)
        added[f.name] = len(wins)
    g.save(model_dir / "still_gallery.npz")
    log(json.dumps({"enrolled": added, "gallery_labels": len(g)}))
    return added
