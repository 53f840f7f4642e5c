"""The checks an update passes before it replaces the running one: hash, load, evaluate
(the model on the held-out scenes against the running model; the catalogue against the
running model's labels and the open baskets). They run on the rollout's own thread."""
from __future__ import annotations

import hashlib
import json
import math
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .manifest import CATALOGUE_FILE, MODEL_FILES, MODEL_OPTIONAL, Check, Kind, Manifest, Refused, State
from .versions import VersionStore, model_plugin

HOLDOUT_DIR = Path(__file__).parent.parent / "data" / "holdout"


def skus_missing(labels, catalogue) -> list[str]:
    """The model labels a catalogue lacks. A personal class (`personal:bag`) is not a SKU and
    needs no catalogue row; an unknown personal kind is reported like an unknown SKU."""
    from ..reconcile.inputs import PERSONAL_CLASSES, PERSONAL_PREFIX

    def known_personal(s: str) -> bool:
        return s.startswith(PERSONAL_PREFIX) and s[len(PERSONAL_PREFIX):] in PERSONAL_CLASSES
    return [s for s in labels if s not in catalogue and not known_personal(s)]


@dataclass
class Holdout:
    """The scenes kept on the gateway for the evaluation check (JPEG as the camera sends, truth)."""
    jpegs: list[bytes]
    truth: list[str | None]

    @classmethod
    def load(cls, d: Path) -> "Holdout":
        doc = json.loads((Path(d) / "scenes.json").read_text(encoding="utf-8"))
        scenes = doc["scenes"]
        return cls([(Path(d) / s["file"]).read_bytes() for s in scenes], [s["sku"] for s in scenes])


@dataclass(frozen=True)
class Score:
    top1: float
    nll: float        # mean -log p(true class), calibrated
    scenes: int
    ms_per_scene: float

    def brief(self) -> dict:
        return {"top1": round(self.top1, 4), "nll": round(self.nll, 4), "scenes": self.scenes,
                "ms_per_scene": round(self.ms_per_scene, 2)}


def score_detector(det, holdout: Holdout) -> Score:
    from ..detectors.api import NONE_LABEL
    index = {lab: i for i, lab in enumerate(det.labels)}
    hits, nll, n = 0, 0.0, 0
    t0 = time.perf_counter()
    for jpeg, sku in zip(holdout.jpegs, holdout.truth):
        cands = det.detect(jpeg, top_k=len(det.labels))
        probs = {c.sku: c.score for c in cands}
        want = sku if sku in index else (None if sku is None else NONE_LABEL + "?")
        hits += cands[0].sku == want
        nll += -math.log(max(probs.get(want, 0.0), 1e-9))
        n += 1
    ms = (time.perf_counter() - t0) * 1000 / max(1, n)
    return Score(hits / max(1, n), nll / max(1, n), n, ms)


def unpack_model(data_path: Path, dest: Path, limit: int) -> None:
    """A model archive (tar) -> dest/. Only the known file names, regular files, within `limit`."""
    allowed = set(MODEL_FILES) | set(MODEL_OPTIONAL)
    try:
        with tarfile.open(data_path, "r:*") as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            bad = [n for n in names if n not in allowed]
            if bad:
                raise Refused(Check.LOAD, f"model archive holds {bad[:3]}: only {sorted(allowed)} are allowed")
            if len(set(names)) != len(names):
                raise Refused(Check.LOAD, "model archive names a file twice")
            missing = [n for n in MODEL_FILES if n not in names]
            if missing:
                raise Refused(Check.LOAD, f"model archive lacks {missing}")
            if any(not m.isreg() for m in members):
                raise Refused(Check.LOAD, "model archive holds a link or device, not only files")
            if sum(m.size for m in members) > limit:
                raise Refused(Check.SIZE, f"model archive unpacks to {sum(m.size for m in members)} bytes, "
                                          f"limit {limit}")
            dest.mkdir(parents=True)
            for m in members:
                (dest / m.name).write_bytes(tar.extractfile(m).read())
    except tarfile.TarError as e:
        raise Refused(Check.LOAD, f"not a model archive (tar): {e}") from None


@dataclass
class Ready:
    """A checked version, loaded, waiting for the core thread to swap it in."""
    kind: Kind
    manifest: Manifest | None     # None: a rollback / a pointer changed by `cart-gateway rollback`
    name: str | None              # version dir (None: the configured one)
    obj: object                   # BurstDetector | Catalogue
    figures: dict
    state: State = State.INSTALLED


@dataclass
class Failed:
    kind: Kind
    manifest: Manifest | None
    check: Check
    reason: str


class Checker:
    """Hash, load, evaluate: runs on the rollout thread."""

    def __init__(self, cfg, rcfg, running_labels: Callable[[], list[str] | None],
                 running_catalogue: Callable[[], object], prepare_catalogue: Callable = lambda c: c):
        self.cfg, self.rcfg = cfg, rcfg
        self.prepare_catalogue = prepare_catalogue
        self.running_labels = running_labels
        self.running_catalogue = running_catalogue
        self._holdout: Holdout | None = None
        self._baseline: tuple[str, Score] | None = None   # (model dir or "config", its score)

    def holdout(self) -> Holdout:
        if self._holdout is None:
            self._holdout = Holdout.load(self.rcfg.holdout_dir or HOLDOUT_DIR)
        return self._holdout

    def check_install(self, m: Manifest, data: Path, dest: Path) -> Ready:
        t0 = time.perf_counter()
        h = hashlib.sha256()
        with open(data, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != m.sha256:
            raise Refused(Check.HASH, f"SHA-256 of the {data.stat().st_size} bytes received is {h.hexdigest()[:16]}..., "
                                      f"manifest says {m.sha256[:16]}...")
        figures = {"hash_ms": round((time.perf_counter() - t0) * 1000, 1)}
        if m.kind is Kind.MODEL:
            unpack_model(data, dest, self.rcfg.max_model_bytes * 4)
            obj = self._check_model(dest, figures)
        else:
            dest.mkdir(parents=True)
            os.replace(data, dest / CATALOGUE_FILE)
            obj = self._check_catalogue(dest / CATALOGUE_FILE, figures)
        figures["check_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return Ready(m.kind, m, dest.name, obj, figures)

    def load_model(self, model_dir: Path | None):
        from ..detectors import DetectorLoadError, create_detector, default_detector_config
        from ..vision import BurstDetector
        plugin = model_plugin(self.cfg, model_dir) if model_dir else (self.cfg.detector.plugin or default_detector_config())
        try:
            return BurstDetector(create_detector(plugin), self.cfg.detector.barcodes)
        except (DetectorLoadError, ValueError) as e:
            raise Refused(Check.LOAD, f"the detector does not load: {e}") from None

    def _check_model(self, d: Path, figures: dict):
        t0 = time.perf_counter()
        bd = self.load_model(d)
        figures["load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        cat = self.running_catalogue()
        unknown = skus_missing(bd.detector.labels[1:], cat)
        if unknown:
            raise Refused(Check.EVALUATE, f"{len(unknown)} model labels are not in the running catalogue "
                                          f"(e.g. {unknown[:3]}): roll out the catalogue first")
        holdout = self.holdout()
        new = score_detector(bd.detector, holdout)
        base = self.baseline()
        figures.update(new=new.brief(), running=base.brief())
        r = self.rcfg
        if new.top1 < base.top1 - r.eval_top1_margin:
            raise Refused(Check.EVALUATE, f"top-1 {new.top1:.3f} on {new.scenes} held-out scenes, running model "
                                          f"{base.top1:.3f}: worse than the allowed margin {r.eval_top1_margin}")
        if new.nll > base.nll + r.eval_nll_margin:
            raise Refused(Check.EVALUATE, f"mean -log p(true) {new.nll:.3f} on {new.scenes} held-out scenes, running "
                                          f"model {base.nll:.3f}: worse than the allowed margin {r.eval_nll_margin}")
        return bd

    def baseline(self) -> Score:
        """The running model's score on the same scenes (a separate copy: the running
        interpreter belongs to the detector thread). Cached per running version."""
        cur = VersionStore(self.cfg.state_dir, Kind.MODEL).current_dir()
        key = str(cur or "config")
        if self._baseline is None or self._baseline[0] != key:
            self._baseline = (key, score_detector(self.load_model(cur).detector, self.holdout()))
        return self._baseline[1]

    def _check_catalogue(self, path: Path, figures: dict):
        from ..catalogue import CatalogueError
        t0 = time.perf_counter()
        try:
            cat = load_catalogue_gently(path)
        except CatalogueError as e:
            raise Refused(Check.LOAD, str(e).replace(str(path), "catalogue")) from None
        figures["load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        labels = self.running_labels()
        if labels:
            missing = skus_missing(labels, cat)
            if missing:
                raise Refused(Check.EVALUATE, f"the running model knows {len(missing)} SKUs this catalogue lacks "
                                              f"(e.g. {missing[:3]}): its detections would name unknown SKUs")
        running = self.running_catalogue()
        dropped = [s.sku for s in running if s.sku not in cat]
        share = len(dropped) / max(1, len(running))
        if share > self.rcfg.max_dropped_share:
            raise Refused(Check.EVALUATE, f"drops {len(dropped)} of {len(running)} running SKUs ({share:.0%}), "
                                          f"more than max_dropped_share {self.rcfg.max_dropped_share:.0%}")
        figures.update(skus=len(cat), dropped=len(dropped), added=sum(s.sku not in running for s in cat))
        return self.prepare_catalogue(cat)


def _validate_catalogue(path: str, lines_path: str) -> str | None:
    """In a child process: Catalogue.load's checks; the validated records one per line
    (None), or the error. 30,000 records parsed and checked in the service's process kept
    the GIL from its core thread for seconds (cart_fleet.rollout_bench --catalogue-skus)."""
    from ..catalogue import Catalogue, CatalogueError
    try:
        cat = Catalogue.load(path)
    except CatalogueError as e:
        return str(e)
    with open(lines_path, "w", encoding="utf-8") as f:
        for sku in cat:
            f.write(json.dumps(asdict(sku), separators=(",", ":")) + "\n")
    return None


def load_catalogue_gently(path: Path, slice_items: int = 200):
    """A catalogue checked in a child process, then read here record by record in slices
    that let the core thread in (no single long hold of the GIL)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ..catalogue import Catalogue, CatalogueError, Sku
    lines = Path(path).with_suffix(".checked.jsonl")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        err = ex.submit(_validate_catalogue, str(path), str(lines)).result()
    if err is not None:
        raise CatalogueError(err)
    items = []
    try:
        with open(lines, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                items.append(Sku(**json.loads(line)))
                if n % slice_items == 0:
                    time.sleep(0.001)       # hand the GIL to the core thread
    finally:
        lines.unlink(missing_ok=True)
    return Catalogue(items, str(path))
