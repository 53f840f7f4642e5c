"""The virtual store's world: catalogue, real pack weights, the camera's scene pool.

Rendering a frame costs ~22 ms and the detector ~2.3 ms (measured on this
machine), so fast mode does not render every frame: it draws each burst's
frames from a seeded pool of `pool_per_condition` scenes per (SKU, viewing
condition), rendered once by cart_model.render and run once through the real
detector. The detector outputs are cached on disk (keyed by every detector file: both stages, labels, calibration;
the catalogue and the camera settings); `jpeg(key)` re-renders the same bytes
for traces. docs/simulation.md states what this approximates.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

from cart_gateway.catalogue import Catalogue

NO_ITEM = "-"
CONDITIONS = ("clear", "hard", "oov")        # with an item
EMPTY_CONDITIONS = ("hand", "covered")        # no product in view


def pack_weight(rng: random.Random, sku) -> float:
    """One physical pack: drawn from the SKU's spread (catalogue weight_sd_g,
    derived from the EU e-mark tolerances), clipped at 3 sd as the
    average-quantity rules reject packs beyond twice the tolerable error."""
    sd = sku.weight_sd_g
    return sku.weight_mean_g + max(-3 * sd, min(3 * sd, rng.gauss(0.0, sd)))


def cache_file(kind: str, tag: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a pool of rendered scenes (or stills) keyed by `tag` is cached between runs."""
    d = Path(cache_dir or os.environ.get("CART_SIM_CACHE", os.path.join(tempfile.gettempdir(), "cart_sim_cache")))
    return d / f"{kind}-{tag}.json"


def read_cache(path: Path) -> dict:
    """A cached pool, or an empty one when it is missing or unreadable (it is rebuilt)."""
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return {}


def write_cache(path: Path, cache: dict) -> None:
    """Atomically: a run stopped mid-write leaves the old cache whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, sort_keys=True))
    tmp.replace(path)


class ScenePool:
    def __init__(self, catalogue: Catalogue, camera: dict, seed: int = 0,
                 cache_dir: str | os.PathLike | None = None, detector=None):
        self.cat = catalogue
        self.cam = camera
        self.seed = seed
        self._det = detector
        self.n = int(camera["pool_per_condition"])
        self.rendered = 0
        self.render_s = 0.0
        tag = json.dumps({"occ": camera["occlusion_max"], "blur": camera["blur_max"], "seed": seed},
                         sort_keys=True)
        from cart_gateway.detectors import DEFAULT_MODEL
        h = hashlib.sha256(tag.encode())
        for f in sorted(Path(DEFAULT_MODEL).parent.glob("detector*")):   # both stages, labels, calibration
            h.update(f.name.encode())
            h.update(f.read_bytes())
        h.update(catalogue.to_json().encode())
        self.tag = h.hexdigest()[:16]
        self.path = cache_file("pool", self.tag, cache_dir)
        self.cache: dict[str, list] = read_cache(self.path)
        self._dirty = False

    @property
    def detector(self):
        if self._det is None:
            from cart_gateway.detectors import create_detector, default_detector_config
            self._det = create_detector(default_detector_config())
        return self._det

    def key(self, sku: str | None, cond: str, i: int) -> str:
        return f"{sku or NO_ITEM}|{cond}|{i % self.n}"

    @staticmethod
    def scene_of(key: str) -> str:
        """The pool scene of a frame key (a key may carry what else is in view, e.g. `|bag`)."""
        return "|".join(key.split("|")[:3])

    def _render(self, key: str):
        from PIL import Image, ImageFilter
        from cart_model.render import render_scene
        key = self.scene_of(key)
        sku, cond, i = key.split("|")
        rng = random.Random(f"{self.seed}|{key}")
        occ_max, blur_max = self.cam["occlusion_max"], self.cam["blur_max"]
        rs = rng.randrange(1 << 30)
        if cond == "covered":   # a palm over the lens: a dark, defocused frame
            img, _ = render_scene(self.cat, None, rs, occlusion=1.0, blur=1.0)
            img = Image.eval(img.filter(ImageFilter.GaussianBlur(12)), lambda v: v // 6)
            return img
        if cond == "hand":
            img, _ = render_scene(self.cat, None, rs, occlusion=rng.uniform(0.3, 0.7),
                                  blur=rng.uniform(0, blur_max))
            return img
        if cond == "clear":
            occ, blur, oov = rng.uniform(0, 0.3 * occ_max), rng.uniform(0, 0.3 * blur_max), 0.0
        elif cond == "hard":
            occ, blur, oov = rng.uniform(0.3 * occ_max, occ_max), rng.uniform(0.3 * blur_max, blur_max), 0.0
        else:
            occ, blur, oov = 0.0, rng.uniform(0, blur_max), rng.uniform(0.4, 0.5)
        img, _ = render_scene(self.cat, sku, rs, occlusion=occ, blur=blur, out_of_view=oov)
        return img

    def jpeg(self, key: str) -> bytes:
        from cart_model.render import encode_jpeg
        return encode_jpeg(self._render(key))

    def candidates(self, key: str) -> list:
        """The real detector's output on that pool scene: [[sku|None, score, cx, cy], ...]."""
        key = self.scene_of(key)
        c = self.cache.get(key)
        if c is None:
            import time
            t0 = time.perf_counter()
            c = detect_list(self.detector, self.jpeg(key))
            self.render_s += time.perf_counter() - t0
            self.cache[key] = c
            self.rendered += 1
            self._dirty = True
        return c

    def save(self) -> None:
        if self._dirty:
            write_cache(self.path, self.cache)
            self._dirty = False


def detect_list(detector, jpeg: bytes) -> list:
    return [[c.sku, round(float(c.score), 6), round(float(c.cx), 4), round(float(c.cy), 4)]
            for c in detector.detect(jpeg)]
