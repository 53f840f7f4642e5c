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
    run's bursts draw) and cached on disk with the detector's output. Views depend on `seed`
    (the bench's pool seed): `pool_per_condition` views per SKU and condition, each with other
    basket items lying under the moved one, hands in many poses, and personal items
    (cart_model.personal) in many poses."""

    BASKET_MAX = 6            # other items in view under the moved one (estimate: a filled basket)
    P_SAME_FAMILY = 0.3       # one of them a look-alike of the moved item (estimate)

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
        self._skus = catalogue.skus()
        self._family: dict[str, list[str]] | None = None
        tag = json.dumps({"occ": camera["occlusion_max"], "blur": camera["blur_max"], "seed": seed, "n": self.n},
                         sort_keys=True)
        from cart_gateway.detectors import DEFAULT_MODEL
        import cart_model.personal as pe
        import cart_model.render as rn
        h = hashlib.sha256(tag.encode())
        for f in sorted(Path(DEFAULT_MODEL).parent.glob("detector*")):   # both stages, labels, calibration
            h.update(f.name.encode())
            h.update(f.read_bytes())
        for mod in (rn, pe):                # the scenes change when their drawing does
            h.update(Path(mod.__file__).read_bytes())
        h.update(Path(__file__).read_bytes())
        h.update(catalogue.to_json().encode())
        self.tag = h.hexdigest()[:16]
        self.path = cache_file("pool", self.tag, cache_dir)
        self.cache: dict[str, list] = read_cache(self.path)
        self.loaded = len(self.cache)   # scenes on disk when the run started
        self._new: dict[str, list] = {}

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
        """The pool scene of a frame key: sku|condition|view, plus the personal item in view (`|bag`)."""
        return "|".join(key.split("|")[:4])

    def _basket(self, rng: random.Random, sku: str | None) -> list[str]:
        """Other items already in the basket, seen under the moved one."""
        out = [self._skus[rng.randrange(len(self._skus))] for _ in range(rng.randint(0, self.BASKET_MAX))]
        if sku is not None and out and rng.random() < self.P_SAME_FAMILY:
            if self._family is None:
                self._family = {}
                for s in self.cat:
                    self._family.setdefault(s.family, []).append(s.sku)
            fam = [x for x in self._family[self.cat[sku].family] if x != sku]
            if fam:
                out[0] = rng.choice(fam)
        return [x for x in out if x != sku]

    def _render(self, key: str):
        return self.render_truth(key)[0]

    def render_truth(self, key: str):
        """The pool scene of `key` and its truth (render_scene's; a personal item's box is its own)."""
        from PIL import Image, ImageFilter
        from cart_model.render import render_scene
        parts = self.scene_of(key).split("|")
        sku, cond = parts[0], parts[1]
        sku = None if sku == NO_ITEM else sku
        rng = random.Random(f"{self.seed}|{'|'.join(parts)}")
        occ_max, blur_max = self.cam["occlusion_max"], self.cam["blur_max"]
        rs = rng.randrange(1 << 30)
        basket = self._basket(rng, sku)
        if cond == "covered":   # a palm over the lens: a dark, defocused frame
            img, truth = render_scene(self.cat, None, rs, basket, occlusion=1.0, blur=1.0, pool_style=True)
            return Image.eval(img.filter(ImageFilter.GaussianBlur(12)), lambda v: v // rng.randint(4, 8)), truth
        if cond == "hand":
            personal = None
            if len(parts) > 3:   # the shopper's own thing, held: cart_model.personal in one of many poses
                import numpy as np
                from cart_model.personal import KINDS, draw_personal
                kind = parts[3] if parts[3] in KINDS else KINDS[zlib_crc(parts[3]) % len(KINDS)]
                personal = draw_personal(kind, np.random.default_rng(rng.randrange(1 << 32)), rng.randint(70, 130))
            occ = rng.uniform(0.1, 0.4) if personal is not None else rng.uniform(0.3, 0.7)   # a held thing shows
            return render_scene(self.cat, None, rs, basket, occlusion=occ,
                                blur=rng.uniform(0, blur_max), personal=personal, pool_style=True)
        if cond == "clear":
            occ, blur, oov = rng.uniform(0, 0.3 * occ_max), rng.uniform(0, 0.3 * blur_max), 0.0
        elif cond == "hard":
            occ, blur, oov = rng.uniform(0.3 * occ_max, occ_max), rng.uniform(0.3 * blur_max, blur_max), 0.0
        else:
            occ, blur, oov = 0.0, rng.uniform(0, blur_max), rng.uniform(0.4, 0.5)
        return render_scene(self.cat, sku, rs, basket, occlusion=occ, blur=blur, out_of_view=oov,
                            pool_style=True)

    def jpeg(self, key: str) -> bytes:
        from cart_model.render import encode_jpeg
        import time
        t0 = time.perf_counter()
        img = self._render(key)
        self.draw_s += time.perf_counter() - t0
        return encode_jpeg(img)

    def candidates(self, key: str) -> list:
        """The real detector's output on that pool scene: [[sku|None, score, cx, cy], ...]."""
        key = self.scene_of(key)
        c = self.cache.get(key)
        if c is None:
            import time
            t0 = time.perf_counter()
            c = detect_list(self.detector, self.jpeg(key))
            self.render_s += time.perf_counter() - t0
            self.cache[key] = self._new[key] = c
            self.rendered += 1
        return c

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
            cache = read_cache(self.path)
            cache.update(self._new)
            write_cache(self.path, cache)
            self._new = {}


def zlib_crc(text: str) -> int:
    import zlib
    return zlib.crc32(text.encode())


def detect_list(detector, jpeg: bytes) -> list:
    return [[c.sku, round(float(c.score), 6), round(float(c.cx), 4), round(float(c.cy), 4)]
            for c in detector.detect(jpeg)]
