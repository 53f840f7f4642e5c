"""Still-classifier data: the placed item's window cut from a still, as the gateway cuts it.

Two sources, one crop path (`cart_gateway.detectors.still.still_window`):

* training crops (`render_crops`): the scene drawn at k = 2 pixels per QVGA pixel
  (640x480; a UXGA still is k = 5, 12x the pixels and ~6x the render time), JPEG-encoded,
  then cut by the gateway's own window code around the true centroid plus jitter;
* training crops cut from real stills (`render_still_crops`, `render-still --from-stills`):
  a UXGA still rendered as the held-out ones are, the burst model's stage 1 run on it for
  the centroid, and the window cut exactly as `vision.BurstDetector.classify_still` cuts it
  at run time (~5x the cost of a window-only crop; the crop the gateway sees, not a model of it);
* held-out stills (`render_still_scenes`): real UXGA stills from `render.render_still`,
  cut around the burst model's centroid on the still, exactly as at run time.

SKU split for enrolment (`split_skus`): every UNSEEN_EVERY-th catalogue SKU is never
trained on; the evaluation enrols those from rendered views and measures them apart.

Personal items (`personal:<kind>`) come from `personal.draw_personal` when that module
is in the tree; scenes then paste one on an item-less scene.

Unseen style (`style="unseen"`): another font (DejaVu Serif), a plastic-tub floor
instead of the wire mesh, and a lighting the training never has (a warm cast with a
specular spot and a vignette). It swaps the renderer's font and floor only inside a
`with unseen_style():` block and clears its package caches on the way in and out.
"""
from __future__ import annotations

import contextlib
import random
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from cart_gateway.detectors.api import NONE_LABEL
from cart_gateway.detectors.still import PERSONAL_PREFIX, STILL_INPUT, still_centroid, still_view, still_window

from . import render

UNSEEN_EVERY = 6            # SKU i with i % 6 == 5 is held out of training (enrolled later)
TRAIN_K = 2                 # training scenes: k pixels per QVGA pixel
CROP_JITTER = 0.05          # enrolment views: a small centring error (a store frames its photos)
# Training windows: the burst model's stage-1 centroid error on held-out UXGA stills is median 0.068,
# p90 0.166 of the frame (Euclidean); a single sigma of 0.05 per axis gives 0.059 / 0.107 and never
# trains the far-off windows. A two-sigma mixture per axis matches both: 0.069 / 0.167.
CENTROID_ERROR = ((0.60, 0.045), (0.40, 0.10))     # (share, sigma per axis, of the frame)
NONE_SHARE = 0.08
PERSONAL_SHARE = 0.10       # share of personal items in scenes, when personal.py is available
SCENE_VERSION = 1           # bump when _scene / _unseen_light / _paste_personal change (cache key)
STILL_TRAIN0, STILL_VAL0, STILL_TEST0, STILL_ENROL0 = 0, 60_000_000, 96_000_000, 70_000_000
FROM_STILLS0 = 20_000_000   # training stills (--from-stills): seeds inside the train range, apart from windows'


def personal_kinds() -> tuple[str, ...]:
    """The personal-item kinds the renderer can draw (empty until personal.py is in the tree)."""
    try:
        from .personal import KINDS
    except ImportError:
        return ()
    return tuple(KINDS)


def split_skus(skus: list[str]) -> tuple[list[str], list[str]]:
    """(trained, unseen): the unseen SKUs are never in a training batch."""
    trained = [s for i, s in enumerate(skus) if i % UNSEEN_EVERY != UNSEEN_EVERY - 1]
    unseen = [s for i, s in enumerate(skus) if i % UNSEEN_EVERY == UNSEEN_EVERY - 1]
    return trained, unseen


@dataclass(frozen=True)
class StillSpec:
    seed: int
    label: str                  # SKU id, NONE_LABEL, or "personal:<kind>"
    basket: tuple[str, ...]
    occlusion: float
    out_of_view: float
    style: str = "train"


def scene_spec(items: list[str], basket_pool: list[str], seed: int, style: str = "train",
               none_share: float = NONE_SHARE, personal_share: float = 0.0) -> StillSpec:
    r = random.Random(seed * 7907 + 29)
    kinds = personal_kinds()
    u = r.random()
    if u < none_share:
        label = NONE_LABEL
    elif kinds and u < none_share + personal_share:
        label = PERSONAL_PREFIX + r.choice(kinds)
    else:
        label = items[r.randrange(len(items))]
    occ = 0.0 if r.random() < 0.55 else r.uniform(0.1, 0.45)     # a hand still on the item
    oov = r.uniform(0.1, 0.35) if r.random() < 0.12 else 0.0
    basket = tuple(r.sample(basket_pool, min(len(basket_pool), r.randint(0, 4))))
    return StillSpec(seed, label, basket, occ, oov, style)


# ---------------------------------------------------------------- unseen style
_SERIF = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"),
          Path("/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf")]


def _serif_font(size: int):
    for p in _SERIF:
        if p.exists():
            return ImageFont.truetype(str(p), size)
    raise RuntimeError("unseen style needs a serif TrueType font (fonts-dejavu-core): none of "
                       + ", ".join(str(p) for p in _SERIF))


def _tub_floor(rng: random.Random, size, k: int = 1) -> Image.Image:
    """A moulded plastic tub instead of a wire mesh: a saturated colour with soft ribs."""
    W, H = size
    base = rng.choice([(40, 90, 170), (170, 40, 40), (40, 140, 70), (200, 200, 205), (30, 30, 35)])
    img = Image.new("RGB", size, base)
    d = ImageDraw.Draw(img)
    step = rng.randint(30, 50) * k
    hi = tuple(min(255, c + 35) for c in base)
    for x in range(0, W, step):
        d.rectangle([x, 0, x + step // 3, H], fill=hi)
    return img.filter(ImageFilter.GaussianBlur(2 * k))


@contextlib.contextmanager
def unseen_style():
    old_font, old_bg = render._font, render._background
    render._PACKAGES.clear()
    render._STILL_PACKAGES.clear()
    render._font, render._background = _serif_font, _tub_floor
    try:
        yield
    finally:
        render._font, render._background = old_font, old_bg
        render._PACKAGES.clear()
        render._STILL_PACKAGES.clear()


def _unseen_light(img: Image.Image, rng: random.Random) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    H, W = a.shape[:2]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    sx, sy = rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H
    spot = np.exp(-(((xs - sx) / (0.18 * W)) ** 2 + ((ys - sy) / (0.18 * H)) ** 2)) * rng.uniform(40, 90)
    vig = 1 - 0.35 * (((xs / W - 0.5) ** 2 + (ys / H - 0.5) ** 2) / 0.5)
    cast = np.array([1.12, 1.0, 0.8], np.float32)
    a = a * vig[:, :, None] * cast[None, None, :] + spot[:, :, None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- scenes
def _paste_personal(img: Image.Image, kind: str, rng: random.Random, k: int, occlusion: float):
    """A personal item on an item-less scene (k px per QVGA px); returns its centroid (0..1)."""
    from .personal import draw_personal
    size = int(rng.uniform(70, 130) * k)
    rgba = Image.fromarray(draw_personal(kind, np.random.default_rng(rng.randrange(2**32)), size))
    rgba = rgba.rotate(rng.uniform(0, 360), resample=Image.BILINEAR, expand=True)
    W, H = img.size
    cx, cy = rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H
    x0, y0 = int(cx - rgba.width / 2), int(cy - rgba.height / 2)
    canvas = img.convert("RGBA")
    canvas.paste(rgba, (x0, y0), rgba)
    if occlusion > 0:
        render._hand(canvas, rng, (x0, y0, x0 + rgba.width, y0 + rgba.height), occlusion, k)
    return canvas.convert("RGB"), cx / W, cy / H


def _scene(cat, spec: StillSpec, k: int | None, res: str = "UXGA") -> tuple[bytes, float, float]:
    """JPEG of the scene (k = None: a real still at `res`) and the item's centroid (0.5 if none)."""
    rng = random.Random(f"still|{spec.seed}")
    sku = spec.label if spec.label != NONE_LABEL and not spec.label.startswith(PERSONAL_PREFIX) else None
    personal = spec.label[len(PERSONAL_PREFIX):] if spec.label.startswith(PERSONAL_PREFIX) else None
    occ = spec.occlusion if sku is not None else 0.0
    if k is None:
        img, truth = render.render_still(cat, sku, spec.seed, res, basket_skus=list(spec.basket), occlusion=occ,
                                         out_of_view=spec.out_of_view, facing=rng.random() < 0.35)
    else:
        img, truth, _ = render._compose(cat, sku, random.Random(spec.seed), k, list(spec.basket), occ, 0.0,
                                        None, spec.out_of_view)
    cx, cy = truth["cx"], truth["cy"]
    if personal is not None:
        img, cx, cy = _paste_personal(img, personal, rng, img.width // render.CAMERA_SIZE[0], spec.occlusion)
    if spec.style == "unseen":
        img = _unseen_light(img, rng)
    return render.encode_jpeg(img, rng.randint(70, 90)), cx, cy


_CAT = None


def _init(cat_path) -> None:
    global _CAT
    from cart_gateway.catalogue import Catalogue
    _CAT = Catalogue.load(cat_path) if not hasattr(cat_path, "skus") else cat_path


def _lighting_f32(img: Image.Image, rng: random.Random) -> Image.Image:
    """render._lighting's model with the same draws from `rng`, in float32 (half its time):
    training scenes only; held-out stills use the renderer's own."""
    a = np.asarray(img, dtype=np.float32)
    H, W = a.shape[:2]
    gain = rng.uniform(0.6, 1.3)
    temp = np.array([rng.uniform(0.88, 1.12), 1.0, rng.uniform(0.88, 1.12)], dtype=np.float32)
    gx, gy = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4)
    grad = 1.0 + gx * (np.arange(W, dtype=np.float32)[None, :] / W - 0.5) \
        + gy * (np.arange(H, dtype=np.float32)[:, None] / H - 0.5)
    a = a * (gain * temp)[None, None, :] * grad[:, :, None]
    noise = np.random.default_rng(rng.randrange(2**32)).standard_normal(a.shape, dtype=np.float32)
    a += noise * np.float32(rng.uniform(1, 6))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@contextlib.contextmanager
def _fast_lighting():
    old = render._lighting
    render._lighting = _lighting_f32
    try:
        yield
    finally:
        render._lighting = old


WINDOW_QVGA = 128   # the model's window spans 128 QVGA px of the view (still.STILL_INPUT at 1.25 px each)


def centre_sigma(rng: random.Random, mixture=CENTROID_ERROR) -> float:
    """One window's centring-error sigma (per axis, of the frame), drawn from the mixture
    (a single sigma draws nothing: enrolment views stay the renders they were)."""
    if len(mixture) == 1:
        return mixture[0][1]
    u = rng.random()
    for share, sigma in mixture:
        if u < share:
            return sigma
        u -= share
    return mixture[-1][1]


def _window_scene(cat, spec: StillSpec, k: int = TRAIN_K, jitter=CENTROID_ERROR) -> Image.Image:
    """Only the window of a scene, drawn at k px per QVGA px (5x fewer pixels than the full
    frame): the floor, 0-3 basket items around, the item centred plus the burst model's
    centroid error (`jitter`: a sigma mixture), a hand, the renderer's lighting model."""
    rng = random.Random(spec.seed)
    W = H = WINDOW_QVGA * k
    canvas = render._background(rng, (W, H), k).convert("RGBA")
    for b in spec.basket[:3]:
        pkg = render._still_package(cat[b], k)
        bx, by = rng.choice([rng.uniform(-0.2, 0.1), rng.uniform(0.9, 1.2)]) * W, rng.uniform(-0.2, 1.2) * H
        if rng.random() < 0.5:
            bx, by = by, bx
        render._place(canvas, pkg, bx, by, rng.uniform(0.5, 0.8), rng.uniform(0, 360), rng.uniform(0.55, 0.8))
    sigma = centre_sigma(rng, jitter)
    jx, jy = rng.gauss(0, sigma * 320), rng.gauss(0, sigma * 240)     # QVGA px
    sku = spec.label if spec.label != NONE_LABEL and not spec.label.startswith(PERSONAL_PREFIX) else None
    if spec.label.startswith(PERSONAL_PREFIX):
        canvas, _, _ = _paste_personal(canvas.convert("RGB"), spec.label[len(PERSONAL_PREFIX):], rng, k,
                                       spec.occlusion)
        canvas = canvas.convert("RGBA")
    elif sku is not None:
        pkg = render._still_package(cat[sku], k)
        ang = rng.uniform(-45, 45) + rng.choice([0, 0, 90, 180])
        cx, cy = W / 2 + jx * k, H / 2 + jy * k
        if spec.out_of_view > 0:    # part of the item past a frame edge: that edge is in the window
            edge = rng.choice(["left", "right", "top", "bottom"])
            off = (0.5 - spec.out_of_view) * pkg.height * 0.5
            cx = {"left": off, "right": W - off}.get(edge, cx)
            cy = {"top": off, "bottom": H - off}.get(edge, cy)
        bbox = render._place(canvas, pkg, cx, cy, rng.uniform(0.8, 1.4), ang)
        if spec.out_of_view > 0:
            canvas = _frame_edge(canvas, edge, bbox, rng)
        if spec.occlusion > 0:
            render._hand(canvas, rng, bbox, spec.occlusion, k)
    elif spec.occlusion > 0:
        render._hand(canvas, rng, (W * 0.2, H * 0.2, W * 0.8, H * 0.8), spec.occlusion, k)
    img = _lighting_f32(canvas.convert("RGB"), rng)
    if spec.style == "unseen":
        img = _unseen_light(img, rng)
    return img


def _frame_edge(canvas: Image.Image, edge: str, bbox, rng: random.Random) -> Image.Image:
    """Black beyond the frame edge the item was pushed past (a window shifted to stay inside
    the frame shows the edge; here the window is the canvas, so mark the outside)."""
    W, H = canvas.size
    d = ImageDraw.Draw(canvas)
    m = int(rng.uniform(0.0, 0.12) * W)
    box = {"left": [0, 0, m, H], "right": [W - m, 0, W, H], "top": [0, 0, W, m], "bottom": [0, H - m, W, H]}[edge]
    if m > 0:
        d.rectangle(box, fill=(0, 0, 0, 255))
    return canvas


def _train_one(spec: StillSpec, jitter=CENTROID_ERROR) -> np.ndarray:
    ctx = unseen_style() if spec.style == "unseen" else contextlib.nullcontext()
    with ctx:
        img = _window_scene(_CAT, spec, jitter=jitter)
    jpeg = render.encode_jpeg(img, random.Random(spec.seed + 1).randint(70, 90))
    return still_view(jpeg, STILL_INPUT[0])     # the window's JPEG decoded as a still is: to 1.25 px per QVGA px


def _still_one(spec: StillSpec) -> tuple[bytes, float, float]:
    ctx = unseen_style() if spec.style == "unseen" else contextlib.nullcontext()
    with ctx:
        return _scene(_CAT, spec, None)


def _map(fn, specs, cat_path, workers: int):
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(cat_path,)) as ex:
            return list(ex.map(fn, specs, chunksize=16))
    _init(cat_path)
    return [fn(s) for s in specs]


def render_crops(cat_path, items: list[str], basket_pool: list[str], n: int, seed0: int,
                 workers: int = 2, personal_share: float = 0.0) -> dict[str, np.ndarray]:
    """n training windows: x (n, H, W, 3) uint8, y (label index), labels (__none__, items..., personal...)."""
    labels = [NONE_LABEL] + list(items) + [PERSONAL_PREFIX + k for k in personal_kinds() if personal_share > 0]
    index = {s: i for i, s in enumerate(labels)}
    specs = [scene_spec(items, basket_pool, seed0 + i, personal_share=personal_share) for i in range(n)]
    xs = _map(_train_one, specs, cat_path, workers)
    return {"x": np.stack(xs), "y": np.array([index[s.label] for s in specs], np.int32), "labels": np.array(labels)}


_DETECTORS: dict = {}


def _stage_one(model_dir: str):
    """This process's burst detector (one thread per worker: the workers are the parallelism)."""
    det = _DETECTORS.get(model_dir)
    if det is None:
        from .still_eval import burst_detector
        det = _DETECTORS[model_dir] = burst_detector(Path(model_dir), threads=1)
    return det


def still_crop(det, jpeg: bytes) -> tuple[np.ndarray, float, float]:
    """The window the gateway classifies on this still, and the stage-1 centroid it is cut
    around: `vision.BurstDetector.classify_still`'s own centroid and `still_window`."""
    cx, cy = still_centroid(det, jpeg)
    return still_window(jpeg, cx, cy), cx, cy


def _still_crop_one(spec: StillSpec, model_dir: str) -> tuple[np.ndarray, float]:
    jpeg, tx, ty = _scene(_CAT, spec, None)
    win, cx, cy = still_crop(_stage_one(model_dir), jpeg)
    return win, float(np.hypot(cx - tx, cy - ty))


def render_still_crops(cat_path, items: list[str], basket_pool: list[str], n: int, seed0: int, model_dir: Path,
                       workers: int = 2, personal_share: float = 0.0) -> dict[str, np.ndarray]:
    """n training windows cut from real UXGA stills (training style) through `model_dir`'s
    burst detector: the same arrays as render_crops, plus `centre_err` (stage 1's miss, of the frame)."""
    import functools
    labels = [NONE_LABEL] + list(items) + [PERSONAL_PREFIX + k for k in personal_kinds() if personal_share > 0]
    index = {s: i for i, s in enumerate(labels)}
    specs = [scene_spec(items, basket_pool, seed0 + i, personal_share=personal_share) for i in range(n)]
    out = _map(functools.partial(_still_crop_one, model_dir=str(model_dir)), specs, cat_path, workers)
    return {"x": np.stack([w for w, _ in out]), "y": np.array([index[s.label] for s in specs], np.int32),
            "labels": np.array(labels), "centre_err": np.array([e for _, e in out], np.float32)}


def render_still_scenes(cat_path, items: list[str], basket_pool: list[str], n: int, seed0: int,
                        style: str = "train", workers: int = 2, personal_share: float = 0.0,
                        cache_dir: Path | None = None) -> tuple[list[StillSpec], list[tuple[bytes, float, float]]]:
    """n held-out UXGA stills (JPEG, true cx, cy) with their specs; with cache_dir, kept
    there under a key of everything that shapes them (renders cost ~0.4 s each)."""
    specs = [scene_spec(items, basket_pool, seed0 + i, style, personal_share=personal_share) for i in range(n)]
    path = None
    if cache_dir is not None:
        import hashlib
        import pickle
        key = hashlib.sha256(repr((SCENE_VERSION, specs, str(getattr(cat_path, "source", cat_path)))).encode()
                             + Path(render.__file__).read_bytes()).hexdigest()[:20]
        path = Path(cache_dir) / f"stills-{key}.pkl"
        if path.exists():
            return specs, pickle.loads(path.read_bytes())
    out = _map(_still_one, specs, cat_path, workers)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(out))
        tmp.replace(path)
    return specs, out


def enrol_specs(labels: list[str], views: int) -> list[StillSpec]:
    """`views` clean enrolment scenes per label (SKU or personal:<kind>): what a store would
    photograph or render when it adds a product; seeds disjoint from every split."""
    return [StillSpec(STILL_ENROL0 + (zlib.crc32(lb.encode()) % 1_000_000) * 64 + i, lb, (), 0.0, 0.0)
            for lb in labels for i in range(views)]


def _enrol_one(spec: StillSpec) -> np.ndarray:
    return _train_one(spec, jitter=((1.0, CROP_JITTER),))


def render_windows(cat_path, specs: list[StillSpec], workers: int = 2) -> list[np.ndarray]:
    """Enrolment views: framed on the item (small centring error), as a store's photos are."""
    return _map(_enrol_one, specs, cat_path, workers)


def save(path: Path, data: dict) -> None:
    np.savez(path, **data)   # uncompressed: windows barely compress, and saving is 10x faster


def load(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
