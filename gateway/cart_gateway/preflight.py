"""What `check-config` and `run` verify before touching the broker: the
catalogue and the detector model load, the metrics port can be bound, the
state directory is writable and its database opens. Each problem is one line naming the key and
what to do; `run` refuses to start on any of them (exit 2), so a unit whose
`ExecStartPre` check passes does not then crash at start-up."""
from __future__ import annotations

import contextlib
import errno
import socket
import sqlite3
import tempfile
from pathlib import Path

from .config import GatewayConfig


class StartupError(RuntimeError):
    """The gateway cannot start; the message is one line for the operator."""


def model_description(cfg: GatewayConfig) -> str:
    if not cfg.detector.enabled:
        return "detector disabled"
    from .rollout import model_plugin
    plugin = model_plugin(cfg) or cfg.detector.plugin
    if plugin is None:
        from .detectors import DEFAULT_MODEL
        return f"{DEFAULT_MODEL.name} (packaged, cpu)"
    return f"{plugin.get('model_path', '?')} ({plugin.get('type', '?')})"


def load_detector(cfg: GatewayConfig):
    """The configured detector, loaded (model files read), or None when disabled."""
    if not cfg.detector.enabled:
        return None
    from .detectors import DetectorLoadError
    from .rollout import model_plugin
    from .vision import BurstDetector
    rolled = model_plugin(cfg)     # a model rollout installed (and checked) runs instead of the configured one
    try:
        if rolled is not None:
            from .detectors import create_detector
            return BurstDetector(create_detector(rolled), cfg.detector.barcodes)
        return BurstDetector.from_config(cfg.detector)
    except DetectorLoadError as e:
        raise StartupError(f"detector: {e} (fix [detector] plugin, or enabled = false)") from None


def check_catalogue(cfg: GatewayConfig) -> None:
    from .catalogue import Catalogue, CatalogueError
    from .rollout import catalogue_path
    try:
        Catalogue.load(catalogue_path(cfg))
    except CatalogueError as e:
        raise StartupError(f"catalogue: {e}") from None


def check_metrics_port(cfg: GatewayConfig) -> None:
    if not cfg.metrics_port:
        return
    s = socket.socket(socket.AF_INET6 if ":" in cfg.metrics_host else socket.AF_INET)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((cfg.metrics_host, cfg.metrics_port))
    except OSError as e:
        why = "already in use (another gateway, or another service?)" if e.errno == errno.EADDRINUSE else e.strerror
        raise StartupError(f"metrics_port {cfg.metrics_port} on {cfg.metrics_host}: {why}; "
                           f"choose a free port, or 0 for no metrics") from None
    finally:
        s.close()


def check_state_dir(cfg: GatewayConfig) -> None:
    """Writable, or creatable (systemd's StateDirectory= makes it before ExecStartPre):
    proven by writing a file there, in folders made for the test and removed again."""
    d = Path(cfg.state_dir)
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise StartupError(f"state_dir {d}: {probe} is not a directory")
    made = [p for p in [d, *d.parents] if not p.exists()]
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".write-test-"):
            pass
    except OSError as e:
        raise StartupError(f"state_dir {d}: not writable ({e.strerror}); "
                           f"the gateway keeps its SQLite database and frames there") from None
    finally:
        for p in made:            # deepest first: leave the tree as it was
            with contextlib.suppress(OSError):
                p.rmdir()


def check_database(cfg: GatewayConfig) -> None:
    """An existing database must open (nothing is written: a read of its schema version;
    read-write so that a WAL left by a power cut opens as the gateway will open it)."""
    db = Path(cfg.state_dir) / "gateway.sqlite3"
    if not db.exists():
        return
    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=5)
        try:
            con.execute("PRAGMA schema_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StartupError(f"state_dir database {db}: {e} (restore it from a backup, or move it away "
                           f"to start with an empty state)") from None


def check_rollout_keys(cfg: GatewayConfig) -> None:
    from .rollout import check_keys
    try:
        check_keys(cfg)
    except ValueError as e:
        raise StartupError(f"{e} (the chain's Ed25519 public key, PEM: docs/fleet.md Rollout)") from None


def check_all(cfg: GatewayConfig, detector: bool = True) -> list[str]:
    """Every problem found (empty: the gateway can start, broker aside)."""
    problems = []
    checks = [check_catalogue, check_metrics_port, check_state_dir, check_database, check_rollout_keys] + \
        ([load_detector] if detector else [])
    for check in checks:
        try:
            check(cfg)
        except StartupError as e:
            problems.append(str(e))
    return problems
