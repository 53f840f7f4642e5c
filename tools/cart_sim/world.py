"""The virtual store's world: catalogue, real pack weights, the camera's scene pool.

Rendering a frame costs ~22 ms and the detector ~2.3 ms (measured on this
machine), so fast mode does not render every frame: it draws each burst's
frames from a seeded pool of `pool_per_condition` scenes per (SKU, viewing
condition), rendered once by cart_model.render and run once through the real
detector. The detector's stage outputs before fusion are cached on disk (keyed by
both stage models, the labels, the drawing and detector code, the catalogue and
the camera settings; not the calibration, which is applied when a run reads
them); `jpeg(key)` re-renders the same bytes for traces. docs/simulation.md states what this approximates.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np

from cart_gateway.catalogue import Catalogue

from .pool_scenes import CONDITIONS, EMPTY_CONDITIONS, NO_ITEM, SceneDrawer, scene_of  # noqa: F401 (re-exported)


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
    tmp = path.with_suffix(f".{os.getpid()}.tmp")   # one per process: two workers may save at once
    tmp.write_text(json.dumps(cache, sort_keys=True))
    tmp.replace(path)


def load_catalogue(spec: str | None, cache_dir: str | os.PathLike | None = None) -> Catalogue:
    """The catalogue a run uses: None = the packaged one; a generated store's name
    (`store-20k`, cart_bench.synth.STORE_SIZES: the packaged SKUs plus generated ones) = written
    once to the cache as an ordinary
    catalogue file (the gateway's schema) and read back by the gateway's own loader; else a path."""
    if not spec:
        return Catalogue.load()
    from cart_bench import synth
    if spec in synth.STORE_SIZES:
        import cart_model.catalogue_gen as gen
        h = hashlib.sha256(spec.encode())
        from cart_gateway import catalogue as packaged
        h.update(packaged.DEFAULT_PATH.read_bytes())
        for mod in (synth, gen):   # the file changes when its generator does
            h.update(Path(mod.__file__).read_bytes())
        path = cache_file("catalogue", f"{spec}-{h.hexdigest()[:12]}", cache_dir)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            store = synth.store_catalogue(synth.STORE_SIZES[spec], base=Catalogue.load())
            tmp.write_text(store.to_json(), encoding="utf-8")
            tmp.replace(path)
        return Catalogue.load(path)
    if not Path(spec).exists() and not any(c in spec for c in "/\\."):
        from cart_gateway.catalogue import CatalogueError
        raise CatalogueError(f"catalogue {spec!r}: not a file and not a generated store "
                             f"(one of {', '.join(synth.STORE_SIZES)})")
    return Catalogue.load(spec)


class ScenePool:
    """The camera's scenes of one run, rendered lazily (only the (SKU, condition, view) keys the
    run's bursts draw) and cached on disk with what the detector's stages output before fusion
    (stage 1's logits and centroid, stage 2's logits). Candidates are fused from those under the
    calibration on disk now, so a new calibration re-fuses without re-rendering; the cache is
    keyed by what the raw outputs depend on: the stage models and labels, the detector and
    preprocessing code, the scene drawing (pool_scenes.py, render.py, personal.py), the catalogue
    and the camera. Views depend on `seed` (the bench's pool seed): `pool_per_condition` views per
    SKU and condition (pool_scenes.SceneDrawer)."""

    def __init__(self, catalogue: Catalogue, camera: dict, seed: int = 0,
                 cache_dir: str | os.PathLike | None = None, detector=None):
        self.cat = catalogue
        self.cam = camera
        self.seed = seed
        self._det = detector
        self.n = int(camera["pool_per_condition"])
        self.rendered = 0
        self.render_s = 0.0       # render + detect, first time only
        self.draw_s = 0.0         # of which drawing the scene
        self.drawer = SceneDrawer(catalogue, camera, seed)
        self._fusion = None
        self._fused: dict[str, list] = {}
        tag = json.dumps({"occ": camera["occlusion_max"], "blur": camera["blur_max"], "seed": seed, "n": self.n},
                         sort_keys=True)
        import cart_model.personal as pe
        import cart_model.render as rn
        from cart_gateway.detectors import preprocess
        from cart_gateway.detectors.plugins import cpu_tfl
        from . import pool_scenes
        h = hashlib.sha256(tag.encode())
        h.update(RAW_FORMAT.encode())
        for f in stage_files():             # both stages and the labels, not the calibration
            h.update(f.name.encode())
            h.update(f.read_bytes())
        for mod in (rn, pe, pool_scenes, cpu_tfl, preprocess):   # the views and raw outputs change with these
            h.update(Path(mod.__file__).read_bytes())
        h.update(catalogue.to_json().encode())
        self.tag = h.hexdigest()[:16]
        self.path = cache_file("pool", self.tag, cache_dir).with_suffix(".npz")
        self.cache: dict[str, tuple] = read_raw_cache(self.path)   # scene -> (stage-1 output, stage-2 logits)
        self.loaded = len(self.cache)   # scenes on disk when the run started
        self._new: dict[str, tuple] = {}

    @property
    def detector(self):
        if self._det is None:
            from cart_gateway.detectors import create_detector, default_detector_config
            self._det = create_detector(default_detector_config())
        return self._det

    @property
    def fusion(self):
        """The committed detector's fusion (labels, temperature, stage-1 weight), read from disk."""
        if self._fusion is None:
            from cart_gateway.detectors import default_detector_config
            from cart_gateway.detectors.plugins.cpu_tfl import fusion_of
            self._fusion = fusion_of(default_detector_config())[0]
        return self._fusion

    def key(self, sku: str | None, cond: str, i: int) -> str:
        return f"{sku or NO_ITEM}|{cond}|{i % self.n}"

    scene_of = staticmethod(scene_of)

    def _render(self, key: str):
        return self.render_truth(key)[0]

    def render_truth(self, key: str):
        """The pool scene of `key` and its truth (render_scene's; a personal item's box is its own)."""
        return self.drawer.render_truth(key)

    def jpeg(self, key: str) -> bytes:
        from cart_model.render import encode_jpeg
        import time
        t0 = time.perf_counter()
        img = self._render(key)
        self.draw_s += time.perf_counter() - t0
        return encode_jpeg(img)

    def raw(self, key: str) -> tuple:
        """The detector's stages on that pool scene, before fusion: (stage-1 logits + cx, cy as
        float32, stage-2 logits or None); rendered and detected the first time."""
        key = self.scene_of(key)
        r = self.cache.get(key)
        if r is None:
            import time
            t0 = time.perf_counter()
            r1, z2 = self.detector.raw_stages(self.jpeg(key))
            r = (np.asarray(r1, np.float32), None if z2 is None else np.asarray(z2, np.float32))
            self.render_s += time.perf_counter() - t0
            self.cache[key] = self._new[key] = r
            self.rendered += 1
        return r

    def candidates(self, key: str) -> list:
        """The real detector's output on that pool scene: [[sku|None, score, cx, cy], ...], fused
        from the cached stage outputs under the calibration on disk."""
        key = self.scene_of(key)
        c = self._fused.get(key)
        if c is None:
            c = self._fused[key] = candidate_list(self.fusion.candidates(*self.raw(key)))
        return c

    def add(self, entries: dict) -> None:
        """Scenes another process of this run rendered (a worker): kept and saved with this pool's."""
        self.cache.update(entries)
        self._new.update(entries)

    def figures(self) -> dict:
        """What the bench JSON reports of the pool."""
        n = max(1, self.rendered)
        return {"pool_seed": self.seed, "pool_views_per_condition": self.n, "pool_scenes_rendered": self.rendered,
                "pool_scenes_cached": self.loaded,
                "pool_render_ms_per_view": round(1000 * self.draw_s / n, 1) if self.rendered else None,
                "pool_detect_ms_per_view": round(1000 * (self.render_s - self.draw_s) / n, 1) if self.rendered else None}

    def save(self) -> None:
        """Write the new scenes, merged with what is on disk now (another process of the same
        run, e.g. a second worker, may have added its own meanwhile)."""
        if self._new:
            cache = read_raw_cache(self.path)
            cache.update(self._new)
            write_raw_cache(self.path, cache)
            self._new = {}


RAW_FORMAT = "raw-stages-v1"   # what a pool cache file holds (in its key)


def stage_files() -> list[Path]:
    """The files the committed detector's raw stage outputs depend on: both models and the labels."""
    from cart_gateway.detectors import default_detector_config
    from cart_gateway.detectors.plugins.cpu_tfl import fusion_of
    return fusion_of(default_detector_config())[1]


def read_raw_cache(path: Path) -> dict:
    """A cached pool's raw stage outputs, {} when missing or unreadable (it is rebuilt)."""
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, r1 = [str(k) for k in z["keys"]], z["r1"]
            z2 = z["z2"] if "z2" in z.files else None
    except (OSError, ValueError, KeyError):
        return {}
    return {k: (r1[i], None if z2 is None else z2[i]) for i, k in enumerate(keys)}


def write_raw_cache(path: Path, cache: dict) -> None:
    """Atomically (one temporary file per process: two workers may save at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(cache)
    arrays = {"keys": np.array(keys), "r1": np.stack([cache[k][0] for k in keys]).astype(np.float32)}
    if keys and cache[keys[0]][1] is not None:
        arrays["z2"] = np.stack([cache[k][1] for k in keys]).astype(np.float32)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def candidate_list(cands) -> list:
    return [[c.sku, round(float(c.score), 6), round(float(c.cx), 4), round(float(c.cy), 4)] for c in cands]
