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


# ---------------------------------------------------------------- pool-style scenes
# The views the virtual store's fast mode shows the burst detector (cart_sim.world.ScenePool:
# other basket items under the moved one, hands in many poses, the shopper's own things),
# drawn by the pool's own code with seeds of their own, so training, evaluation and the
# bench's pools (pool seed = the bench's --seed, small numbers) never share a view.
POOL_TRAIN_SEED, POOL_VAL_SEED, POOL_TEST_SEED = 1_000_001, 1_000_002, 1_000_003
# What a training scene shows (estimate of a burst's mix, "clear" and "hard" most, since an
# added product is what the detector must name); "personal": cart_model.personal, held.
POOL_CONDITIONS = {"clear": 0.34, "hard": 0.24, "oov": 0.08, "hand": 0.1, "covered": 0.04, "personal": 0.2}
# A hard negative the pool itself never draws: a product held in view as a personal item is
# (a hand over 10-40 % of it, the personal views' blur), so that "a hand holds something"
# does not mean "personal" (the last round called 22-33 % of hand-covered products personal).
HELD = "held"
MIX_CONDITIONS = (*POOL_CONDITIONS, HELD)


def parse_mix(text: str) -> dict[str, float]:
    """`render --pool --mix clear=0.2,personal=0.4,held=0.3`: the share of each condition
    (relative weights; a condition left out is not drawn)."""
    import math
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq or name not in MIX_CONDITIONS:
            raise ValueError(f"--mix: {part!r} is not CONDITION=WEIGHT with CONDITION one of {', '.join(MIX_CONDITIONS)}")
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"--mix: weight of {name!r} is not a number: {value!r}") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"--mix: weight of {name!r} must be a finite number >= 0, got {value!r}")
        if name in mix:
            raise ValueError(f"--mix: {name!r} given twice")
        mix[name] = w
    if sum(mix.values()) <= 0:
        raise ValueError(f"--mix: no condition with a weight > 0 in {text!r}")
    return mix
# The two cameras of the scenarios (default; hard): how much hand and blur "clear"/"hard" views get.
POOL_CAMERAS = ({"occlusion_max": 0.3, "blur_max": 0.3}, {"occlusion_max": 0.6, "blur_max": 0.7})


def personal_labels() -> list[str]:
    from cart_gateway.reconcile.inputs import PERSONAL_PREFIX
    from .personal import KINDS
    return [PERSONAL_PREFIX + k for k in KINDS]


def pool_labels(skus: list[str], personal: bool = True) -> list[str]:
    """The burst model's labels: no product, the SKUs, then the personal kinds."""
    return [NONE_LABEL] + list(skus) + (personal_labels() if personal else [])


def pool_scene_key(skus: list[str], i: int, seed: int, conditions: dict | None = None) -> tuple[int, str, str | None]:
    """Scene i of a pool-style split: (camera index, ScenePool key, label or None for no product)."""
    from .personal import KINDS
    r = random.Random(f"pool-spec|{seed}|{i}")
    conds = conditions or POOL_CONDITIONS
    cond = r.choices(list(conds), weights=list(conds.values()))[0]
    cam = r.randrange(len(POOL_CAMERAS))
    if cond == "personal":
        kind = KINDS[r.randrange(len(KINDS))]
        return cam, f"-|hand|{i}|{kind}", personal_labels()[KINDS.index(kind)]
    if cond in ("hand", "covered"):
        return cam, f"-|{cond}|{i}", None
    # clear, hard, oov and HELD: a product (HELD keys are drawn by render_held, not by ScenePool)
    sku = skus[r.randrange(len(skus))]
    return cam, f"{sku}|{cond}|{i}", sku


_POOLS: list = []


def _pool_init(cat_path, seed):
    from cart_gateway.catalogue import Catalogue
    from cart_sim.world import ScenePool
    global _CAT
    _CAT = Catalogue.load(cat_path)
    _POOLS[:] = [ScenePool(_CAT, dict(cam, pool_per_condition=1 << 30), seed=seed, detector=False)
                 for cam in POOL_CAMERAS]


def render_held(pool, key: str):
    """A HELD scene (`sku|held|i`) with the pool's basket and hands: the product in a hand as a
    held personal item is in ScenePool.render_truth (hand over 10-40 % of it, blur up to the camera's)."""
    from .render import render_scene
    sku = key.split("|")[0]
    rng = random.Random(f"{pool.seed}|{key}")
    rs = rng.randrange(1 << 30)
    basket = pool.drawer.basket(rng, sku)
    return render_scene(pool.cat, sku, rs, basket, occlusion=rng.uniform(0.1, 0.4),
                        blur=rng.uniform(0, pool.cam["blur_max"]), out_of_view=0.0, pool_style=True)


def pool_jpeg(cam: int, key: str) -> tuple[bytes, dict]:
    """The pool scene as the camera sends it (JPEG, the pool's quality) and its truth."""
    from .render import encode_jpeg
    pool = _POOLS[cam]
    img, truth = render_held(pool, key) if key.split("|")[1] == HELD else pool.render_truth(key)
    return encode_jpeg(img), truth


def _pool_one(args):
    cam, key, label, size, crop, i = args
    jpeg, truth = pool_jpeg(cam, key)
    x = decode_for_model(jpeg, size)
    if not crop:
        return x, truth, None
    cx, cy = crop_centre({"seed": i}, dict(truth, sku=label))   # a personal item is cropped around, too
    return x, truth, crop_around(decode_full(jpeg), cx, cy, CROP_SIZE)


def render_pool_split(cat_path, skus: list[str], n: int, seed: int, size=INPUT_SIZE, workers: int = 2,
                      crops: bool = False, first: int = 0, mix: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """As render_split, on pool-style scenes (scenes first..first+n-1 of pool seed `seed`);
    labels pool_labels(skus): personal items are their own classes, with their centroid.
    mix: the conditions' shares (parse_mix; default POOL_CONDITIONS), e.g. more personal and HELD views."""
    labels = pool_labels(skus)
    index = {s: i for i, s in enumerate(labels)}
    keys = [pool_scene_key(skus, i, seed, mix) for i in range(first, first + n)]
    jobs = [(cam, key, lab, size, crops, seed * 7 + i) for (cam, key, lab), i in zip(keys, range(first, first + n))]
    results = _pool_map(_pool_one, jobs, cat_path, seed, workers)
    y = np.array([index[lab] if lab else 0 for _, _, lab in keys], dtype=np.int32)
    x = np.stack([r[0] for r in results])
    c = np.array([[r[1]["cx"], r[1]["cy"], 1.0 if lab else 0.0] for r, (_, _, lab) in zip(results, keys)],
                 dtype=np.float32)
    out = {"x": x, "y": y, "c": c, "labels": np.array(labels)}
    if crops:
        out["xc"] = np.stack([r[2] for r in results])
    return out


def _pool_map(fn, jobs: list, cat_path, seed: int, workers: int) -> list:
    """fn over jobs in order, on `workers` processes (each set up once by _pool_init) or here."""
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_pool_init, initargs=(cat_path, seed)) as ex:
            return list(ex.map(fn, jobs, chunksize=32))
    _pool_init(cat_path, seed)
    return [fn(j) for j in jobs]


def _pool_jpeg_one(args):
    return pool_jpeg(*args)[0]


def render_pool_jpegs(cat_path, skus: list[str], n: int, seed: int, workers: int = 2) -> tuple[list[bytes], list]:
    """n pool-style camera frames (JPEG) and their labels (None: no product)."""
    keys = [pool_scene_key(skus, i, seed) for i in range(n)]
    jobs = [(cam, key) for cam, key, _ in keys]
    jpegs = _pool_map(_pool_jpeg_one, jobs, cat_path, seed, workers)
    return jpegs, [lab for _, _, lab in keys]
