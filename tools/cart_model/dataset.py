"""Datasets: seeded synthetic scenes (rendered, JPEG-encoded and decoded exactly as the
gateway does) and folder-per-SKU photo sets. Cached as .npz."""
from __future__ import annotations

import io
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from cart_gateway.detectors.api import NONE_LABEL
from cart_gateway.detectors.preprocess import crop_around, decode_for_model, decode_full

INPUT_SIZE = (128, 96)  # model input (w, h): QVGA decoded at 1/2 scale then resized
CROP_SIZE = (128, 128)  # second stage: a native-resolution window around the first stage's centroid
# Per-axis spread (normalised) of the crop centre around the true centroid in training crops:
# about the first stage's centroid error (median 0.054 of the frame), so the second stage
# learns to classify items that are off-centre in the window as they will be at run time.
CROP_JITTER = 0.05
TRAIN_SEED0, VAL_SEED0, TEST_SEED0 = 0, 50_000_000, 90_000_000  # disjoint seed ranges per split


def scene_spec(skus: list[str], seed: int, none_share: float = 0.08) -> dict:
    """What goes into one scene: drawn from the seed, same on every run."""
    r = random.Random(seed * 7919 + 13)
    sku = None if r.random() < none_share else skus[r.randrange(len(skus))]
    occ = 0.0 if r.random() < 0.5 else r.uniform(0.1, 0.5)
    blur = 0.0 if r.random() < 0.5 else r.uniform(0.1, 1.0)
    basket = r.sample(skus, min(len(skus), r.randint(0, 4)))
    return {"seed": seed, "sku": sku, "occlusion": occ, "blur": blur, "basket": basket, "quality": r.randint(60, 90)}


def scene_jpeg(catalogue, spec: dict) -> tuple[bytes, dict]:
    from .render import encode_jpeg, render_scene
    img, truth = render_scene(catalogue, spec["sku"], spec["seed"], spec["basket"], spec["occlusion"], spec["blur"])
    return encode_jpeg(img, spec["quality"]), truth


_CAT = None


def _init(cat_path):
    global _CAT
    from cart_gateway.catalogue import Catalogue
    _CAT = Catalogue.load(cat_path)


def _jpeg_one(spec):
    return scene_jpeg(_CAT, spec)


def render_jpegs(cat_path, skus: list[str], n: int, seed0: int, workers: int = 2,
                 none_share: float = 0.08) -> tuple[list[bytes], list[dict]]:
    """n camera frames (JPEG bytes, as the camera sends them) and their truth, seeds seed0.."""
    specs = [scene_spec(skus, seed0 + i, none_share) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(cat_path,)) as ex:
            results = list(ex.map(_jpeg_one, specs, chunksize=32))
    else:
        _init(cat_path)
        results = [_jpeg_one(s) for s in specs]
    return [r[0] for r in results], [r[1] for r in results]


def crop_centre(spec: dict, truth: dict) -> tuple[float, float]:
    """Where a training crop is centred: the true centroid plus seeded jitter (random for "no product")."""
    r = random.Random(spec["seed"] * 104729 + 7)
    if truth["sku"] is None:
        return r.uniform(0.3, 0.7), r.uniform(0.3, 0.7)
    clip = lambda v: min(1.0, max(0.0, v))
    return clip(truth["cx"] + r.gauss(0, CROP_JITTER)), clip(truth["cy"] + r.gauss(0, CROP_JITTER))


def _one(args):
    spec, size, crop = args
    jpeg, truth = scene_jpeg(_CAT, spec)
    x = decode_for_model(jpeg, size)
    if not crop:
        return x, truth, None
    cx, cy = crop_centre(spec, truth)
    return x, truth, crop_around(decode_full(jpeg), cx, cy, CROP_SIZE)


def render_split(cat_path, skus: list[str], n: int, seed0: int, size=INPUT_SIZE, workers: int = 2,
                 none_share: float = 0.08, crops: bool = False) -> dict[str, np.ndarray]:
    """n scenes with seeds seed0..seed0+n-1 -> arrays x (uint8), y (label index), c (cx, cy, has_product),
    and with crops=True also xc: the second stage's native-resolution windows (CROP_SIZE)."""
    labels = [NONE_LABEL] + list(skus)
    index = {s: i for i, s in enumerate(labels)}
    specs = [(scene_spec(skus, seed0 + i, none_share), size, crops) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(cat_path,)) as ex:
            results = list(ex.map(_one, specs, chunksize=64))
    else:
        _init(cat_path)
        results = [_one(s) for s in specs]
    x = np.stack([r[0] for r in results])
    y = np.array([index[r[1]["sku"]] if r[1]["sku"] else 0 for r in results], dtype=np.int32)
    c = np.array([[r[1]["cx"], r[1]["cy"], 1.0 if r[1]["sku"] else 0.0] for r in results], dtype=np.float32)
    out = {"x": x, "y": y, "c": c, "labels": np.array(labels)}
    if crops:
        out["xc"] = np.stack([r[2] for r in results])
    return out


def load_photo_folders(root: Path, size=INPUT_SIZE) -> dict[str, np.ndarray]:
    """A folder per SKU (folder name = SKU id; `__none__` for empty-basket shots) of real photos.
    The centroid is unknown for photos, so its loss is masked out (has_product weight 0)."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise ValueError(f"{root}: no SKU folders")
    skus = [p.name for p in folders if p.name != NONE_LABEL]
    labels = [NONE_LABEL] + skus
    xs, ys = [], []
    for p in folders:
        for f in sorted(p.iterdir()):
            if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            data = f.read_bytes()
            if f.suffix.lower() == ".png":  # go through JPEG, as camera frames do
                buf = io.BytesIO()
                Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=85)
                data = buf.getvalue()
            xs.append(decode_for_model(data, size))
            ys.append(labels.index(p.name))
    if not xs:
        raise ValueError(f"{root}: no .jpg/.png images in the SKU folders")
    y = np.array(ys, dtype=np.int32)
    c = np.zeros((len(y), 3), dtype=np.float32)
    c[:, :2] = 0.5
    return {"x": np.stack(xs), "y": y, "c": c, "labels": np.array(labels)}


def split_photos(data: dict, val_share: float = 0.15, seed: int = 0) -> tuple[dict, dict]:
    idx = np.random.default_rng(seed).permutation(len(data["y"]))
    k = max(1, int(len(idx) * val_share))
    pick = lambda ii: {"x": data["x"][ii], "y": data["y"][ii], "c": data["c"][ii], "labels": data["labels"]}
    return pick(idx[k:]), pick(idx[:k])


def save(path: Path, data: dict) -> None:
    np.savez_compressed(path, **data)


def load(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
