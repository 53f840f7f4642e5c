"""Rollout: a model or catalogue published by head office replaces the running one only
after it is checked, and can be rolled back (docs/protocol.md §17, docs/fleet.md Rollout).

An update arrives over the bridged in-topics as a signed manifest (Ed25519, the chain's
key; the gateway holds only public keys) followed by the file in chunks. Before the file
replaces the running one it passes, in order: signature, target, replay (serial strictly
above every serial this gateway accepted for the kind), size bound, chunk bounds, SHA-256,
loads (LiteRT interpreter / catalogue parser), evaluates (the model on the held-out scenes
kept on the gateway, against the running model; the catalogue against the running model's
labels and the open baskets). Then the swap: files already sit in a versioned directory,
a `state.json` pointer is replaced atomically, and the running service switches to the
object the check already loaded. A failed check leaves the running one in place and says
which check failed and why on the retained status topic (bridged out).

Threads: `Rollout.handle` / `tick` / `apply` run on the service's core thread (cheap:
a chunk is one positioned write); hashing, loading and evaluation run on the rollout's
own thread, whose result goes back to the core thread, where the swap happens between
batches, so no event is lost or handled by a half-swapped service.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import queue
import shutil
import struct
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from .logs import event

INFO, WARN = logging.INFO, logging.WARNING
PROTOCOL_V = 1
# A chunk's payload: the first 8 bytes of the file's SHA-256 (binds it to its manifest),
# its index, then the bytes. The store broker refuses packets over 16 KiB
# (gateway/systemd/mosquitto.conf max_packet_size): 8 KiB chunks leave room.
CHUNK_HEADER = struct.Struct(">8sI")
CHUNK_SIZE = 8192
CHUNK_SIZE_MAX = 12288
MANIFEST_MAX_BYTES = 4096
# The files of a model version (a tar archive of them); crop model and calibration are optional.
MODEL_FILES = ("detector.tflite", "detector_labels.txt")
MODEL_OPTIONAL = ("detector_crop.tflite", "detector.calib.json")
CATALOGUE_FILE = "catalogue.json"
CHECK_SWITCH_INTERVAL_S = 0.0005   # while a check runs (Python's default: 0.005)
HOLDOUT_DIR = Path(__file__).parent / "data" / "holdout"


def skus_missing(labels, catalogue) -> list[str]:
    """The model labels a catalogue lacks. A personal class (`personal:bag`) is not a SKU and
    needs no catalogue row; an unknown personal kind is reported like an unknown SKU."""
    from .reconcile.inputs import PERSONAL_CLASSES, PERSONAL_PREFIX

    def known_personal(s: str) -> bool:
        return s.startswith(PERSONAL_PREFIX) and s[len(PERSONAL_PREFIX):] in PERSONAL_CLASSES
    return [s for s in labels if s not in catalogue and not known_personal(s)]


class Kind(str, Enum):
    MODEL = "model"
    CATALOGUE = "catalogue"


class Action(str, Enum):
    INSTALL = "install"
    ROLLBACK = "rollback"


class State(str, Enum):
    RECEIVING = "receiving"
    CHECKING = "checking"
    WAITING = "waiting"          # checked; the swap waits (an open basket holds a dropped SKU)
    INSTALLED = "installed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class Check(str, Enum):
    """Which check refused an update (the status message's `check`)."""
    MANIFEST = "manifest"
    SIGNATURE = "signature"
    TARGET = "target"
    REPLAY = "replay"
    SIZE = "size"
    CHUNK = "chunk"
    TRANSFER = "transfer"
    HASH = "hash"
    LOAD = "load"
    EVALUATE = "evaluate"
    SWAP = "swap"
    ROLLBACK = "rollback"


class Refused(Exception):
    def __init__(self, check: Check, reason: str):
        super().__init__(f"{check.value}: {reason}")
        self.check, self.reason = check, reason


# ====================================================================== manifest + signature
def canonical(doc: dict) -> bytes:
    """The signed bytes: the manifest without `sig`, sorted keys, no spaces."""
    return json.dumps({k: v for k, v in doc.items() if k != "sig"}, sort_keys=True,
                      separators=(",", ":")).encode()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def load_public_key(path: Path):
    """An Ed25519 public key (PEM) -> (key id, key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key_id(raw), key


def sign(doc: dict, private_key) -> dict:
    """Head office's side (cart-fleet publish): `doc` plus `key_id` and `sig`."""
    from cryptography.hazmat.primitives import serialization
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    out = dict(doc, key_id=key_id(raw))
    out["sig"] = base64.b64encode(private_key.sign(canonical(out))).decode()
    return out


@dataclass(frozen=True)
class Manifest:
    kind: Kind
    action: Action
    serial: int                # strictly increasing per kind (publisher's clock, ms)
    targets: tuple[str, ...]   # store ids, or ("*",)
    created_ms: int
    key_id: str
    version: str = ""          # the publisher's label (install)
    sha256: str = ""
    size: int = 0
    chunk_size: int = 0

    @property
    def chunks(self) -> int:
        return math.ceil(self.size / self.chunk_size) if self.chunk_size else 0

    def brief(self) -> dict:
        return {"serial": self.serial, "version": self.version, "sha256": self.sha256, "size": self.size}


def _field(doc: dict, name: str, typ, check=None, what: str = ""):
    v = doc.get(name)
    if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
        raise Refused(Check.MANIFEST, f"field '{name}' missing or not {typ.__name__}: {v!r}"[:200])
    if check is not None and not check(v):
        raise Refused(Check.MANIFEST, f"field '{name}' {what}: {v!r}"[:200])
    return v


def parse_manifest(payload: bytes, keys: dict, store: str, kind: Kind) -> Manifest:
    """Decode and verify a manifest (Refused names the check). Signature before anything
    else is believed: an unsigned field never decides what we do."""
    if len(payload) > MANIFEST_MAX_BYTES:
        raise Refused(Check.MANIFEST, f"manifest is {len(payload)} bytes, limit {MANIFEST_MAX_BYTES}")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Refused(Check.MANIFEST, f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise Refused(Check.MANIFEST, "not a JSON object")
    kid = _field(doc, "key_id", str)
    sig = _field(doc, "sig", str)
    key = keys.get(kid)
    if key is None:
        raise Refused(Check.SIGNATURE, f"signed with key {kid!r}, which is not provisioned on this gateway")
    from cryptography.exceptions import InvalidSignature
    try:
        key.verify(base64.b64decode(sig, validate=True), canonical(doc))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(Check.SIGNATURE, f"signature does not verify with key {kid}") from None
    _field(doc, "v", int, lambda v: v == PROTOCOL_V, f"must be {PROTOCOL_V}")
    k = _field(doc, "kind", str, lambda v: v in {x.value for x in Kind}, "must be model|catalogue")
    if k != kind.value:
        raise Refused(Check.MANIFEST, f"a {k} manifest on the {kind.value} topic")
    act = _field(doc, "action", str, lambda v: v in {x.value for x in Action}, "must be install|rollback")
    targets = _field(doc, "targets", list, lambda v: 0 < len(v) <= 10_000 and all(isinstance(t, str) for t in v),
                     "must be a non-empty list of store ids")
    if "*" not in targets and store not in targets:
        raise Refused(Check.TARGET, f"for stores {targets[:5]}{'...' if len(targets) > 5 else ''}, not {store!r}")
    m = dict(kind=Kind(k), action=Action(act), serial=_field(doc, "serial", int, lambda v: v > 0, "must be > 0"),
             targets=tuple(targets), created_ms=_field(doc, "created_ms", int), key_id=kid)
    if m["action"] is Action.INSTALL:
        m.update(version=_field(doc, "version", str, lambda v: 0 < len(v) <= 64, "must be 1..64 characters"),
                 sha256=_field(doc, "sha256", str, lambda v: len(v) == 64 and all(c in "0123456789abcdef" for c in v),
                               "must be 64 lower-case hex digits"),
                 size=_field(doc, "size", int, lambda v: v > 0, "must be > 0"),
                 chunk_size=_field(doc, "chunk_size", int, lambda v: 256 <= v <= CHUNK_SIZE_MAX,
                                   f"must be 256..{CHUNK_SIZE_MAX}"))
    return Manifest(**m)


def _claimed_serial(payload: bytes) -> int | None:
    try:
        v = json.loads(payload).get("serial")
    except (ValueError, AttributeError):
        return None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def chunk_payload(sha256_hex: str, index: int, data: bytes) -> bytes:
    return CHUNK_HEADER.pack(bytes.fromhex(sha256_hex)[:8], index) + data


# ====================================================================== versions on disk
@dataclass
class Pointers:
    """<state_dir>/rollout/<kind>/state.json: what runs, what rollback returns to, and the
    highest serial accepted (replay guard). None = the configured / packaged file."""
    current: str | None = None
    previous: str | None = None
    serial_seen: int = 0
    versions: dict = field(default_factory=dict)   # version dir -> manifest brief

    @classmethod
    def from_json(cls, text: str) -> "Pointers":
        d = json.loads(text)
        return cls(d.get("current"), d.get("previous"), int(d.get("serial_seen", 0)), dict(d.get("versions", {})))


class VersionStore:
    """Versioned directories of one kind and the pointer file, replaced atomically."""

    def __init__(self, root: Path, kind: Kind):
        self.kind = kind
        self.dir = Path(root) / "rollout" / kind.value
        self.versions = self.dir / "versions"
        self.state_path = self.dir / "state.json"

    def read(self) -> Pointers:
        try:
            return Pointers.from_json(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):   # nothing rolled out (state_dir checks say the rest)
            return Pointers()

    @contextlib.contextmanager
    def locked(self):
        """One writer at a time (the service and `cart-gateway rollback` may both write)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def write(self, p: Pointers) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(asdict(p), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)        # the atomic swap of the pointer
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def current_dir(self) -> Path | None:
        cur = self.read().current
        return self.versions / cur if cur else None

    def note_serial(self, serial: int) -> None:
        with self.locked():
            p = self.read()
            p.serial_seen = max(p.serial_seen, serial)
            self.write(p)

    def promote(self, name: str, brief: dict) -> Pointers:
        """`versions/<name>` becomes current, current becomes previous; older versions are deleted."""
        with self.locked():
            p = self.read()
            if p.current != name:
                p.previous, p.current = p.current, name
            p.versions[name] = brief
            keep = {p.current, p.previous}
            p.versions = {k: v for k, v in p.versions.items() if k in keep}
            self.write(p)
        self.prune(keep)
        return p

    def rollback(self) -> Pointers:
        """Swap current and previous (a second rollback rolls forward again)."""
        with self.locked():
            p = self.read()
            if p.current is None and p.previous is None:
                raise Refused(Check.ROLLBACK, f"no {self.kind.value} was ever installed by rollout: "
                                              "the configured one runs and there is nothing to roll back to")
            if p.previous is not None and not (self.versions / p.previous).is_dir():
                raise Refused(Check.ROLLBACK, f"previous {self.kind.value} {p.previous} is missing on disk")
            p.current, p.previous = p.previous, p.current
            self.write(p)
            return p

    def prune(self, keep: set) -> None:
        if not self.versions.is_dir():
            return
        for d in self.versions.iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)


def current_catalogue_path(cfg) -> Path | None:
    """The catalogue rollout installed (None: the configured / packaged one)."""
    d = VersionStore(cfg.state_dir, Kind.CATALOGUE).current_dir()
    return d / CATALOGUE_FILE if d is not None else None


def catalogue_path(cfg):
    """What the gateway loads at start: the rolled-out catalogue, else `catalogue` in the config."""
    return current_catalogue_path(cfg) or cfg.catalogue


def model_plugin(cfg, model_dir: Path | None = None) -> dict | None:
    """The detector plugin config of a rolled-out model directory (default: the current one),
    keeping the configured plugin's thread count; None = no rolled-out model."""
    d = model_dir or VersionStore(cfg.state_dir, Kind.MODEL).current_dir()
    if d is None:
        return None
    plugin = {"type": "cpu", "model_path": d / "detector.tflite", "labels_path": d / "detector_labels.txt"}
    if (d / "detector.calib.json").exists():
        plugin["calibration_path"] = d / "detector.calib.json"
    threads = (cfg.detector.plugin or {}).get("num_threads")
    if threads:
        plugin["num_threads"] = threads
    return plugin


# ====================================================================== checks
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
    from .detectors.api import NONE_LABEL
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
        from .detectors import DetectorLoadError, create_detector, default_detector_config
        from .vision import BurstDetector
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
        from .catalogue import CatalogueError
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
    from .catalogue import Catalogue, CatalogueError
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

    from .catalogue import Catalogue, CatalogueError, Sku
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


# ====================================================================== the manager
@dataclass
class Transfer:
    manifest: Manifest
    path: Path
    started_ms: int
    got: bytearray
    count: int = 0

    def add(self, index: int, data: bytes) -> bool:
        """Store one chunk (idempotent); True when the file is complete."""
        m = self.manifest
        if index >= m.chunks:
            raise Refused(Check.CHUNK, f"chunk {index} of a {m.chunks}-chunk file")
        want = m.chunk_size if index < m.chunks - 1 else m.size - m.chunk_size * (m.chunks - 1)
        if len(data) != want:
            raise Refused(Check.CHUNK, f"chunk {index} has {len(data)} bytes, expected {want}")
        if not self.got[index]:
            with open(self.path, "r+b") as f:
                f.seek(index * m.chunk_size)
                f.write(data)
            self.got[index] = 1
            self.count += 1
        return self.count == m.chunks


class Rollout:
    """The gateway's end of rollout: topics, transfers, checks, swaps, status."""

    def __init__(self, cfg, publish: Callable[[str, bytes], None], post: Callable[[object], None],
                 hooks: "SwapHooks"):
        self.cfg = cfg
        self.rcfg = cfg.rollout
        self.store_id = self.rcfg.store or cfg.gateway_id
        self.publish = publish          # publish(topic, payload): retained QoS 1, from the core thread
        self.post = post                # post(result): hand a check's result to the core thread
        self.hooks = hooks
        self.keys = dict(load_public_key(p) for p in self.rcfg.public_keys)
        self.stores = {k: VersionStore(cfg.state_dir, k) for k in Kind}
        self.transfers: dict[Kind, Transfer] = {}
        self.pending: dict[Kind, Ready] = {}       # checked, waiting to be swapped in
        self.checker = Checker(cfg, self.rcfg, hooks.labels, hooks.catalogue, hooks.prepare_catalogue)
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rollout", daemon=True)
        self._busy: set[Kind] = set()
        self._loaded = {k: self.stores[k].read().current for k in Kind}   # what the service runs
        self._refused: dict[Kind, str | None] = {}
        self.swap_ms: list[float] = []

    # ------------------------------------------------------------ topics (docs/protocol.md §17)
    def subscriptions(self) -> list[str]:
        return [f"fleet/in/{self.store_id}/rollout/#", "fleet/in/all/rollout/#"]

    def status_topic(self, kind: Kind) -> str:
        return f"fleet/out/{self.store_id}/rollout/{kind.value}/status"

    def start(self) -> None:
        """Start the check thread; a transfer cut by a restart (its .part is still there) is reported."""
        for kind, st in self.stores.items():
            parts = sorted((st.dir / "incoming").glob("*.part")) if (st.dir / "incoming").is_dir() else []
            if parts:
                shutil.rmtree(st.dir / "incoming", ignore_errors=True)
                self._status(kind, State.FAILED, None, Check.TRANSFER,
                             f"the gateway restarted during the transfer of serial {parts[-1].stem}: publish again",
                             claimed=int(parts[-1].stem) if parts[-1].stem.isdigit() else None)
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)

    # ------------------------------------------------------------ core thread
    def handle(self, topic: str, payload: bytes, t_ms: int) -> None:
        parts = topic.split("/")
        if len(parts) != 6 or parts[:2] != ["fleet", "in"] or parts[2] not in (self.store_id, "all") \
                or parts[3] != "rollout" or parts[4] not in {k.value for k in Kind}:
            event(WARN, "rollout_bad_topic", f"not a rollout topic: {topic!r}", topic=topic)
            return
        kind, part = Kind(parts[4]), parts[5]
        m = None
        try:
            if part == "manifest":
                m = parse_manifest(payload, self.keys, self.store_id, kind)
                self._on_manifest(kind, m, t_ms)
            elif part == "chunk":
                t = self.transfers.get(kind)
                m = t.manifest if t else None
                self._on_chunk(kind, payload, t_ms)
            else:
                raise Refused(Check.MANIFEST, f"unknown rollout message {part!r} (manifest|chunk)")
        except Refused as e:
            if e.check is Check.CHUNK:
                self._drop_transfer(kind)
            self._status(kind, State.FAILED, m, e.check, e.reason,
                         claimed=_claimed_serial(payload) if m is None and part == "manifest" else None)
            event(WARN, "rollout_refused", f"{kind.value} update refused: {e.check.value}: {e.reason}",
                  kind=kind.value, check=e.check.value)

    def _on_manifest(self, kind: Kind, m: Manifest, t_ms: int) -> None:
        st = self.stores[kind]
        seen = st.read().serial_seen
        active = self.transfers.get(kind)
        if active is not None and active.manifest.serial == m.serial:
            return                         # a QoS 1 duplicate of the manifest being received
        if m.serial <= seen:
            raise Refused(Check.REPLAY, f"serial {m.serial} is not above {seen}, the last this gateway accepted "
                                        f"for the {kind.value}: an old or replayed manifest")
        limit = self.rcfg.max_model_bytes if kind is Kind.MODEL else self.rcfg.max_catalogue_bytes
        if m.action is Action.INSTALL and m.size > limit:
            st.note_serial(m.serial)
            raise Refused(Check.SIZE, f"{m.size} bytes, limit {limit} (rollout.max_{kind.value}_bytes)")
        st.note_serial(m.serial)           # accepted: this serial and older ones are spent
        if active is not None:
            self._drop_transfer(kind)
            self._status(kind, State.FAILED, active.manifest, Check.TRANSFER,
                         f"superseded by serial {m.serial} before it was complete")
        if m.action is Action.ROLLBACK:
            self._start_rollback(kind, m)
            return
        incoming = st.dir / "incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        path = incoming / f"{m.serial}.part"
        with open(path, "wb") as f:
            f.truncate(m.size)
        self.transfers[kind] = Transfer(m, path, t_ms, bytearray(m.chunks))
        self._status(kind, State.RECEIVING, m, None, f"0 of {m.chunks} chunks")
        event(INFO, "rollout_receiving", f"{kind.value} {m.version} (serial {m.serial}): receiving "
              f"{m.size} bytes in {m.chunks} chunks", kind=kind.value, serial=m.serial, version=m.version)

    def _on_chunk(self, kind: Kind, payload: bytes, t_ms: int) -> None:
        t = self.transfers.get(kind)
        if len(payload) < CHUNK_HEADER.size:
            raise Refused(Check.CHUNK, f"chunk of {len(payload)} bytes has no header")
        prefix, index = CHUNK_HEADER.unpack_from(payload)
        if t is None or prefix != bytes.fromhex(t.manifest.sha256)[:8]:
            # not for the transfer under way (late chunks of a failed or superseded one): ignore
            event(INFO, "rollout_stray_chunk", f"{kind.value} chunk {index} for no transfer under way", kind=kind.value)
            return
        if t.add(index, payload[CHUNK_HEADER.size:]):
            del self.transfers[kind]
            self._status(kind, State.CHECKING, t.manifest, None, "hash, load, evaluate")
            self._submit(("install", kind, t.manifest, t.path))

    def _start_rollback(self, kind: Kind, m: Manifest) -> None:
        """A signed rollback: load the previous version; the pointers swap once it loaded."""
        p = self.stores[kind].read()
        if p.current is None and p.previous is None:
            raise Refused(Check.ROLLBACK, f"no {kind.value} was ever installed by rollout: the configured "
                                          "one runs and there is nothing to roll back to")
        self._submit(("load", kind, m, p.previous))

    def tick(self, t_ms: int) -> None:
        """Transfer timeouts; a pointer changed by `cart-gateway rollback` is loaded."""
        for kind, t in list(self.transfers.items()):
            if t_ms - t.started_ms > self.rcfg.transfer_timeout_s * 1000:
                self._drop_transfer(kind)
                self._status(kind, State.FAILED, t.manifest, Check.TRANSFER,
                             f"incomplete: {t.count} of {t.manifest.chunks} chunks after "
                             f"{self.rcfg.transfer_timeout_s:g} s (truncated; publish again)")
        for kind in Kind:
            if kind in self._busy or kind in self.pending:
                continue
            cur = self.stores[kind].read().current
            if cur != self._loaded[kind] and cur != self._refused.get(kind, ""):
                self._submit(("load", kind, None, cur))
        for kind, ready in list(self.pending.items()):
            self.apply(ready)

    def apply(self, result) -> None:
        """A check's result, on the core thread: swap it in, or report the failure."""
        kind = result.kind
        self._busy.discard(kind)
        if isinstance(result, Failed):
            self.pending.pop(kind, None)
            if result.manifest is None:      # a pointer moved under us that does not load: not again
                self._refused[kind] = self.stores[kind].read().current
            self._status(kind, State.FAILED, result.manifest, result.check, result.reason)
            event(WARN, "rollout_failed", f"{kind.value} not installed: {result.check.value}: {result.reason}",
                  kind=kind.value, check=result.check.value)
            return
        t0 = time.perf_counter()
        try:
            if kind is Kind.MODEL:
                self.hooks.set_detector(result.obj)
            else:
                waiting = self.hooks.set_catalogue(result.obj)
                if waiting:
                    first = self.pending.get(kind) is None
                    self.pending[kind] = result
                    if first:
                        self._status(kind, State.WAITING, result.manifest, None, waiting)
                    return
        except Exception as e:     # the running one stays (the hook swaps all or nothing)
            self.pending.pop(kind, None)
            self._status(kind, State.FAILED, result.manifest, Check.SWAP, f"{type(e).__name__}: {e}")
            return
        swap_ms = (time.perf_counter() - t0) * 1000
        self.swap_ms = (self.swap_ms + [swap_ms])[-64:]
        self.pending.pop(kind, None)
        if result.manifest is not None and result.manifest.action is Action.INSTALL:
            self.stores[kind].promote(result.name, result.manifest.brief())
        elif result.manifest is not None:        # a signed rollback: its version loaded, now the pointers
            self.stores[kind].rollback()
        self._loaded[kind] = result.name
        result.figures["swap_ms"] = round(swap_ms, 2)
        self._status(kind, result.state, result.manifest, None, "", result.figures)
        now = self._running(kind)
        event(INFO, "rollout_installed", f"{kind.value} now {now['version']} (serial {now['serial']})", kind=kind.value,
              state=result.state.value, swap_ms=round(swap_ms, 2))

    def _drop_transfer(self, kind: Kind) -> None:
        t = self.transfers.pop(kind, None)
        if t is not None:
            with contextlib.suppress(OSError):
                t.path.unlink()

    def _submit(self, job) -> None:
        self._busy.add(job[1])
        self._jobs.put(job)

    def _running(self, kind: Kind) -> dict:
        p = self.stores[kind].read()
        brief = p.versions.get(self._loaded[kind] or "", None)
        return brief or {"serial": 0, "version": "configured"}

    def _status(self, kind: Kind, state: State, m: Manifest | None, check: Check | None, reason: str,
                figures: dict | None = None, claimed: int | None = None) -> None:
        p = self.stores[kind].read()
        doc = {"v": PROTOCOL_V, "store": self.store_id, "kind": kind.value, "state": state.value,
               "update": m.brief() if m else None, "action": m.action.value if m else None,
               "check": check.value if check else None, "reason": reason,
               "running": self._running(kind),
               "previous": p.versions.get(p.previous or "", {"serial": 0, "version": "configured"}),
               "figures": figures or {}, "t_ms": int(time.time() * 1000)}
        if claimed is not None:     # a manifest refused before it was verified: the serial it claims
            doc["claimed_serial"] = claimed
        self.publish(self.status_topic(kind), json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())

    # ------------------------------------------------------------ rollout thread
    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            # While this thread computes, the core thread waits for the GIL after each of its
            # SQLite / socket calls: a shorter switch interval hands it back sooner.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, CHECK_SWITCH_INTERVAL_S))
            try:
                result = self.run_job(job)
            finally:
                sys.setswitchinterval(interval)
            self.post(result)

    def run_job(self, job):
        op, kind, m, arg = job
        try:
            if op == "install":
                dest = self.stores[kind].versions / str(m.serial)
                shutil.rmtree(dest, ignore_errors=True)
                try:
                    return self.checker.check_install(m, arg, dest)
                except BaseException:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise
                finally:
                    with contextlib.suppress(OSError):
                        Path(arg).unlink()
            # "load": a pointer moved (rollback): the version was checked when installed
            d = self.stores[kind].versions / arg if arg else None
            if kind is Kind.MODEL:
                obj = self.checker.load_model(d)
                cat = self.checker.running_catalogue()
                unknown = skus_missing(obj.detector.labels[1:], cat) if obj.detector and cat is not None else []
                if unknown:
                    raise Refused(Check.EVALUATE, f"that model names {len(unknown)} SKUs the running catalogue "
                                                  f"lacks (e.g. {unknown[:3]})")
            else:
                from .catalogue import Catalogue, CatalogueError
                try:
                    cat = Catalogue.load(d / CATALOGUE_FILE if d else self.cfg.catalogue)
                except CatalogueError as e:
                    raise Refused(Check.LOAD, str(e)) from None
                missing = skus_missing(self.checker.running_labels() or [], cat)
                if missing:
                    raise Refused(Check.EVALUATE, f"that catalogue lacks {len(missing)} SKUs the running model "
                                                  f"knows (e.g. {missing[:3]})")
                obj = self.checker.prepare_catalogue(cat)
            return Ready(kind, m, arg, obj, {}, State.ROLLED_BACK)
        except Refused as e:
            return Failed(kind, m, e.check, e.reason)
        except Exception as e:     # a bug or a disk error: reported, the running one stays
            logging.getLogger("cart_gateway").exception("rollout check failed")
            return Failed(kind, m, Check.LOAD, f"{type(e).__name__}: {e}")


@dataclass
class SwapHooks:
    """How the running service is switched (mqtt_client.Runner provides them)."""
    set_detector: Callable[[object], None]
    set_catalogue: Callable[[object], str | None]   # None = swapped; else why it must wait
    labels: Callable[[], list[str] | None]           # the running detector's SKU labels
    catalogue: Callable[[], object]                  # the running catalogue
    prepare_catalogue: Callable[[object], object]    # off the core thread: what set_catalogue takes


def read_archive_members(data: bytes) -> list[str]:
    """Names in a model archive (for tools and tests)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return tar.getnames()


def check_keys(cfg) -> None:
    """check-config / start: every configured public key loads (ValueError names the file)."""
    for p in cfg.rollout.public_keys:
        try:
            load_public_key(p)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"rollout.public_keys: {p}: {e}") from None


def local_rollback(cfg, kind: Kind) -> str:
    """`cart-gateway rollback KIND`: the previous version is loaded here first (a version that
    no longer loads is refused), then the pointers swap; a running service notices at its
    next tick and switches. Returns a line for the operator; raises Refused."""
    vs = VersionStore(cfg.state_dir, kind)
    p = vs.read()
    if p.current is None and p.previous is None:
        raise Refused(Check.ROLLBACK, f"no {kind.value} was ever installed by rollout: nothing to roll back to")
    target = vs.versions / p.previous if p.previous else None
    checker = Checker(cfg, cfg.rollout, lambda: None, lambda: None)
    if kind is Kind.MODEL:
        checker.load_model(target)
    else:
        from .catalogue import Catalogue, CatalogueError
        try:
            Catalogue.load(target / CATALOGUE_FILE if target else cfg.catalogue)
        except CatalogueError as e:
            raise Refused(Check.LOAD, str(e)) from None
    p = vs.rollback()
    now = p.versions.get(p.current or "", {"version": "configured", "serial": 0})
    return f"{kind.value}: now {now['version']} (serial {now['serial']}); rollback again to return"
