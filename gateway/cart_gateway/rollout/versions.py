"""Versions on disk: one directory per installed version and a pointer file replaced
atomically (what runs, what rollback returns to, the replay guard)."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .manifest import CATALOGUE_FILE, Check, Kind, Refused

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
