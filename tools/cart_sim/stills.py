"""The simulator's stills (protocol §7.1): barcodes read from cached still renders.

After each placement the camera board takes one still (docs/camera.md
"Stills"); the gateway reads its barcodes (cart_gateway.barcodes). Rendering a
UXGA still and reading it costs about 0.5 s here, so fast mode draws each
placement's still from a seeded pool of `still_pool` scenes per (SKU,
condition) whose code faces the camera, rendered once by
cart_model.render.render_still and read once by the real reader; the codes
read are cached on disk, keyed by the renderer, the reader, the catalogue and
the still settings. A placement whose code faces away (share
1 - camera.p_barcode_facing), whose item is out of the camera's sight (a
hand-held or covered item) or that adds no product gives no code and is not
rendered: no code is drawn that a reader could find.

Trace mode (`cart-sim trace`, real JPEG frames) sends each still as the board
would: the renderer's still of that scene at the scenario's still_res, JPEG-
encoded and chunked as a §7.1 still. There a still without a readable code is
rendered too (`away_key`: the code on a face the camera does not see, or the
item out of sight), so the trace's stills are what a camera would have taken.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path

from cart_gateway.catalogue import Catalogue
from cart_gateway.reconcile.inputs import PERSONAL_PREFIX

from .world import cache_file, read_cache, write_cache

from cartfw.camera.settings import SPEC as CAMERA_SETTINGS

# the camera board's still chunk (app.still_chunk): a UXGA JPEG needs it to fit §7.1's 128 chunks
STILL_CHUNK = CAMERA_SETTINGS["still_chunk"][0]

# the burst's viewing condition (shoppers.Action.view) -> the still's
STILL_CONDITIONS = {"clear": "clear", "hard": "hand", "oov": "oov"}


class StillPool:
    def __init__(self, catalogue: Catalogue, camera: dict, seed: int = 0,
                 cache_dir: str | os.PathLike | None = None):
        self.cat = catalogue
        self.cam = camera
        self.seed = seed
        self.res = camera["still_res"]
        self.view_mm = float(camera["still_view_mm"])
        self.n = int(camera["still_pool"])
        self.classifies = bool(camera["still_classifier"])   # the gateway's still classifier reads them too
        self.rendered = 0
        self.render_s = 0.0
        self.read_ms: list[float] = []
        self.stats = {"stills": 0, "facing": 0, "right": 0, "wrong": 0,
                      "classified": 0, "class_right": 0, "class_sure": 0, "class_sure_wrong": 0}
        self._reader = None
        self._burst = None        # the gateway's BurstDetector with the committed still classifier
        import cart_gateway.barcodes as rd
        import cart_model.render as rn
        h = hashlib.sha256(json.dumps({"res": self.res, "view": self.view_mm, "seed": seed,
                                       "occ": camera["occlusion_max"]}, sort_keys=True).encode())
        for mod in (rn, rd):
            h.update(Path(mod.__file__).read_bytes())
        if self.classifies:       # the classes are the committed models' (burst stage 1 and still)
            for f in still_model_files():
                h.update(f.read_bytes())
        h.update(catalogue.to_json().encode())
        self.tag = h.hexdigest()[:16]
        self.path = cache_file("stills", self.tag, cache_dir)
        self.cache: dict[str, list] = read_cache(self.path)
        self._dirty = False

    AWAY = "away"   # the last part of a trace-mode key whose still shows no code
    CLASS = "class|"   # cache prefix of a still's classifier candidates

    def away_key(self, sku: str | None, view: str, i: int, personal: str | None = None) -> str:
        """Trace mode: the key of a still that shows no code (faces away, out of sight, no product;
        `personal`: the shopper's own item of that class put in, drawn on the basket)."""
        if personal is not None:
            return f"{PERSONAL_PREFIX}{personal}|hand|{i % self.n}|{self.AWAY}"
        cond = STILL_CONDITIONS.get(view)
        if sku is None or cond is None:
            sku, cond = "-", "hand"       # the item under a hand or out of sight: the basket as it is
        return f"{sku}|{cond}|{i % self.n}|{self.AWAY}"

    def jpeg(self, key: str) -> bytes:
        """The still of that key as the camera board sends it (trace mode)."""
        from cart_model.render import encode_jpeg
        return encode_jpeg(self.render(key)[0])

    def key(self, sku: str | None, view: str, i: int) -> str | None:
        """Pool key of a facing still of `sku` seen as `view`; None: nothing to read."""
        cond = STILL_CONDITIONS.get(view)
        if sku is None or cond is None or self.cat[sku].shape == "produce":
            return None
        return f"{sku}|{cond}|{i % self.n}"

    def render(self, key: str):
        from cart_model.render import render_still
        sku, cond, i, *away = key.split("|")
        rng = random.Random(f"{self.seed}|still|{key}")
        rs = rng.randrange(1 << 30)
        occ, oov = 0.0, 0.0
        if cond == "hand":        # a hand still resting on the item
            occ = rng.uniform(0.3 * self.cam["occlusion_max"], self.cam["occlusion_max"])
        elif cond == "oov":
            oov = rng.uniform(0.4, 0.5)
        else:
            occ = rng.uniform(0, 0.3 * self.cam["occlusion_max"])
        if sku.startswith(PERSONAL_PREFIX):   # the basket as it is, the shopper's item on it
            from cart_model.render import CAMERA_SIZE
            from cart_model.still_crops import _paste_personal
            img, truth = render_still(self.cat, None, rs, self.res, facing=False, view_mm=self.view_mm)
            rest = rng.uniform(0, 0.3 * self.cam["occlusion_max"])   # settled: a hand at most brushing it
            img, truth["cx"], truth["cy"] = _paste_personal(img, sku[len(PERSONAL_PREFIX):], rng,
                                                            img.width // CAMERA_SIZE[0], rest)
            return img, truth
        if away:      # trace mode: no code the camera could see
            return render_still(self.cat, None if sku == "-" else sku, rs, self.res, occlusion=occ,
                                out_of_view=oov, facing=False, view_mm=self.view_mm)
        return render_still(self.cat, sku, rs, self.res, occlusion=occ, out_of_view=oov,
                            facing=True, view_mm=self.view_mm)

    def summary(self) -> dict:
        n = self.stats["stills"]
        k = self.stats["classified"]
        classes = {"classified": k, "top1": round(self.stats["class_right"] / k, 4) if k else None,
                   "sure": self.stats["class_sure"], "sure_wrong": self.stats["class_sure_wrong"]}
        return {"classifier": classes if self.classifies else None, "res": self.res, "view_mm": self.view_mm, "stills": n, "facing": self.stats["facing"],
                "read_right": self.stats["right"], "read_wrong": self.stats["wrong"],
                "read_rate": round(self.stats["right"] / n, 4) if n else None,
                "read_rate_facing": round(self.stats["right"] / self.stats["facing"], 4) if self.stats["facing"] else None,
                "stills_rendered": self.rendered, "render_read_s": round(self.render_s, 1)}

    def codes(self, key: str | None) -> list[str]:
        """EAN-13 codes the gateway's reader finds in that still ([] for None)."""
        self.stats["stills"] += 1
        if key is None or key.endswith("|" + self.AWAY):
            return []
        self.stats["facing"] += 1
        got = self._codes(key)
        want = self.cat[key.split("|")[0]].ean13
        self.stats["right"] += want in got
        self.stats["wrong"] += any(c != want for c in got)
        return got

    def classes(self, key: str) -> list[list]:
        """The gateway's still classifier on that still: [[sku or None, score, cx, cy], ...]
        (vision.BurstDetector.classify_still, the committed models), rendered and read once."""
        c = self.cache.get(self.CLASS + key)
        if c is None:
            self._read(key)
            c = self.cache[self.CLASS + key]
        want = self._truth_label(key)
        self.stats["classified"] += 1
        top = c[0] if c else [None, 0.0]
        self.stats["class_right"] += top[0] == want
        self.stats["class_sure"] += top[1] >= SURE
        self.stats["class_sure_wrong"] += top[1] >= SURE and top[0] != want
        return [list(x) for x in c]

    def _truth_label(self, key: str) -> str | None:
        sku = key.split("|")[0]
        return None if sku == "-" else sku

    def _codes(self, key: str) -> list[str]:
        c = self.cache.get(key)
        if c is None:
            self._read(key)
            c = self.cache[key]
        return list(c)

    def _read(self, key: str) -> None:
        """Render the still of `key` once and keep what the gateway reads of it: its codes (none
        on a still whose code the camera cannot see) and, with the classifier, its candidates."""
        from cart_gateway.barcodes import StillBarcodeReader
        from cart_model.render import encode_jpeg
        t0 = time.perf_counter()
        img, _ = self.render(key)
        jpeg = encode_jpeg(img)
        if key.endswith("|" + self.AWAY):
            self.cache[key] = []
        else:
            if self._reader is None:
                self._reader = StillBarcodeReader()
            r = self._reader.read(jpeg)
            self.read_ms.append(r.ms)
            self.cache[key] = list(r.codes)
        if self.classifies:
            if self._burst is None:
                self._burst = still_classifier_stage()
            self.cache[self.CLASS + key] = [[c.sku, round(float(c.score), 6), round(float(c.cx), 4),
                                             round(float(c.cy), 4)] for c in self._burst.classify_still(jpeg)]
        self.render_s += time.perf_counter() - t0
        self.rendered += 1
        self._dirty = True
        if self.rendered % 25 == 0:
            self.save()   # renders are slow: keep them if the run is stopped

    def save(self) -> None:
        if self._dirty:
            write_cache(self.path, self.cache)
            self._dirty = False


SURE = 0.97    # the engine's accept threshold: a still this sure would settle an item alone


def still_model_files() -> list[Path]:
    """The committed models fast mode's still classes come from (their bytes key the cache)."""
    from cart_gateway.detectors.still import DEFAULT_STILL_MODEL
    base = DEFAULT_STILL_MODEL.parent
    return sorted([*base.glob("detector*"), *base.glob("still*")])


def still_classifier_stage():
    """The gateway's detector stage for a still, as `[detector] still_classifier = true` builds it."""
    from cart_gateway.config import parse_config
    from cart_gateway.vision import BurstDetector
    section = parse_config({"gateway_id": "sim", "detector": {"still_classifier": True}}).detector
    return BurstDetector.from_config(section)


class StillCamera:
    """What one basket's camera does after a placement settles: whether it
    takes a still and which pool scene the still shows. Its own random
    stream, so turning stills on does not change the shoppers."""

    def __init__(self, pool: StillPool, camera: dict, rng_seed: str, scenes: bool = False):
        self.pool = pool
        self.scenes = scenes      # trace mode: a still without a code gets a scene key too (away_key)
        self.p_facing = float(camera["p_barcode_facing"])
        self.min_g = float(camera["still_min_g"])
        self.rng = random.Random(rng_seed)

    def still_key(self, action, delta_g: float) -> str | None | bool:
        """False: no still (a removal or small change); else the pool key (None: no code to read)."""
        if delta_g < self.min_g:
            return False
        facing = self.rng.random() < self.p_facing
        i = self.rng.randrange(1 << 20)
        skus = [sku for sku, _, _ in action.adds if sku] if action is not None and action.kind != "lean" else []
        view = action.view if action is not None else "hand"
        if self.scenes and not skus and action is not None and action.kind == "personal_in" and action.personal_class:
            return self.pool.away_key(None, view, i, personal=action.personal_class)
        key = self.pool.key(skus[0], view, i) if skus and facing else None
        if key is None and self.scenes:
            return self.pool.away_key(skus[0] if skus else None, view, i)
        return key


# --- fastsim's hooks (kept here so fastsim.py only calls them) ---------------

def attach(store, camera: dict) -> StillPool | None:
    """Give a fastsim.Store its still pool when the scenario's camera takes
    stills; the gateway then waits for a placement's still (wait_for_still) and the
    fast mode's detector stage reads the still's codes from this pool."""
    if not camera["still"]:
        return None
    return StillPool(store.cat, camera, seed=0)


def real_still(detector, pool: StillPool, key: str) -> bytes:
    """Trace mode: the rendered still of `key`, known to fast mode's detector stage (PoolDetector
    recognises a real JPEG by its digest) as that still, so its codes come from the pool."""
    import hashlib
    jpeg = pool.jpeg(key)
    detector.real[hashlib.blake2b(jpeg, digest_size=16).digest()] = ("still", key)
    return jpeg


def send_still(run, useq: int | None, key: str | None) -> None:
    """The camera's still of the placement that just settled: its chunks (a stand-in JPEG of the
    still's size in fast mode, the rendered still in trace mode), then the §6.3 capture event."""
    from cartfw import proto
    from cart_model.render import STILL_SIZES
    res = run.sc["camera"]["still_res"]
    no = run.send_still_frame(key, res)
    w, h = STILL_SIZES[res]
    run.seq["cam"] += 1
    fields = {"trigger": "settled", "ref": None if useq is None else f"{run.cart}/scale/1/{useq}",
              "frames": [no], "frame_ms": [run.now], "still": {"w": w, "h": h}}
    run._send(f"carts/{run.cart}/cam/evt",
              proto.encode_event(run.cart, "cam", 1, run.seq["cam"], "capture", fields, run._clock()))
