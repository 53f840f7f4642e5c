"""Head office's end of rollout: sign a model or catalogue update, publish it to the store
gateways through the central broker (the bridge carries it in), roll back, read the stores'
status (docs/fleet.md Rollout, docs/protocol.md §17).

The manifest format, signature and chunk layout are the gateway's own
(cart_gateway.rollout): one definition for both ends.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cart_gateway.rollout import (CHUNK_SIZE, MODEL_FILES, MODEL_OPTIONAL, Action, Kind, chunk_payload,
                                  sign)

ALL = "all"


class RolloutError(RuntimeError):
    """A publish or rollback cannot be made (bad file, key, broker); the message says which."""


# ---------------------------------------------------------------- keys
def keygen(out: Path, name: str = "rollout") -> tuple[Path, Path]:
    """An Ed25519 key pair for the chain: <name>.key (private, 0600, stays at head office)
    and <name>.pub (goes to every gateway: [rollout] public_keys)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    priv, pub = out / f"{name}.key", out / f"{name}.pub"
    if priv.exists():
        raise RolloutError(f"{priv} exists: refusing to overwrite a signing key")
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def load_private_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise RolloutError(f"signing key {path}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RolloutError(f"signing key {path}: not an Ed25519 private key")
    return key


# ---------------------------------------------------------------- artefacts
def model_archive(path: Path) -> bytes:
    """A model version as the gateway installs it: a tar of detector.tflite, its labels and,
    when present, the crop model and calibration. `path`: a directory holding them, or the
    .tflite (its siblings are taken by the same names)."""
    path = Path(path)
    d = path if path.is_dir() else path.parent
    main = path if path.is_file() else d / "detector.tflite"
    names = {"detector.tflite": main, "detector_labels.txt": d / "detector_labels.txt",
             "detector_crop.tflite": main.with_name(main.stem + "_crop.tflite"),
             "detector.calib.json": main.with_suffix(".calib.json")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arc in MODEL_FILES + MODEL_OPTIONAL:
            src = names[arc]
            if not src.is_file():
                if arc in MODEL_FILES:
                    raise RolloutError(f"model {path}: {src} not found")
                continue
            data = src.read_bytes()
            info = tarfile.TarInfo(arc)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def artefact(kind: Kind, path: Path) -> bytes:
    if kind is Kind.MODEL:
        return model_archive(path)
    try:
        data = Path(path).read_bytes()
        json.loads(data)    # a typo'd path or a non-JSON file fails here, not on every gateway
    except (OSError, ValueError) as e:
        raise RolloutError(f"catalogue {path}: {e}") from None
    return data


# ---------------------------------------------------------------- messages
@dataclass
class Update:
    """What one publish sends: a signed manifest and the chunks."""
    kind: Kind
    target: str                   # a store id, or "all"
    manifest: bytes
    chunks: list[bytes]
    serial: int

    def topics(self) -> tuple[str, str]:
        base = f"fleet/in/{self.target}/rollout/{self.kind.value}"
        return f"{base}/manifest", f"{base}/chunk"


def next_serial() -> int:
    """The publisher's clock in ms: strictly above any earlier publish from this clock."""
    return time.time_ns() // 1_000_000


def make_update(kind: Kind, data: bytes, target: str, key, version: str | None = None,
                serial: int | None = None, chunk_size: int = CHUNK_SIZE) -> Update:
    serial = serial or next_serial()
    doc = {"v": 1, "kind": kind.value, "action": Action.INSTALL.value, "serial": serial,
           "version": version or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(serial / 1000)),
           "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "chunk_size": chunk_size,
           "targets": ["*"] if target == ALL else [target], "created_ms": int(time.time() * 1000)}
    m = sign(doc, key)
    chunks = [chunk_payload(m["sha256"], i, data[o:o + chunk_size])
              for i, o in enumerate(range(0, len(data), chunk_size))]
    return Update(kind, target, json.dumps(m, sort_keys=True, separators=(",", ":")).encode(), chunks, serial)


def make_rollback(kind: Kind, target: str, key, serial: int | None = None) -> Update:
    serial = serial or next_serial()
    doc = {"v": 1, "kind": kind.value, "action": Action.ROLLBACK.value, "serial": serial,
           "targets": ["*"] if target == ALL else [target], "created_ms": int(time.time() * 1000)}
    m = sign(doc, key)
    return Update(kind, target, json.dumps(m, sort_keys=True, separators=(",", ":")).encode(), [], serial)


# ---------------------------------------------------------------- broker
@dataclass(frozen=True)
class Central:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    client_id: str = "cart-fleet-rollout"


def _client(c: Central, client_id: str):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    cl = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if c.username:
        cl.username_pw_set(c.username, c.password)
    if c.cafile:
        cl.tls_set(ca_certs=c.cafile)
    cl.max_inflight_messages_set(64)
    try:
        rc = cl.connect(c.host, c.port, keepalive=30)
    except OSError as e:
        raise RolloutError(f"central broker {c.host}:{c.port}: {e}") from None
    if rc != 0:
        raise RolloutError(f"central broker {c.host}:{c.port}: connect failed ({rc})")
    cl.loop_start()
    return cl


# Chunks a second: 200 x 8 KiB = 1.6 MB/s. A store's gateway handles chunks on the thread
# that handles its carts: unpaced, a 13 MB catalogue (1,643 chunks) queued ahead of the carts'
# messages and held checkouts ~1 s (cart_fleet.rollout_bench --catalogue-skus 30000).
CHUNK_RATE = 200.0


def send(c: Central, updates: list[Update], timeout_s: float = 300, rate: float = CHUNK_RATE) -> float:
    """Publish manifests then chunks at QoS 1, in order, `rate` chunks a second at most;
    returns seconds until all were acknowledged."""
    cl = _client(c, f"{c.client_id}-{os.getpid()}")
    t0 = time.perf_counter()
    try:
        infos = []
        for u in updates:
            mt, ct = u.topics()
            infos.append(cl.publish(mt, u.manifest, qos=1))
            t_next = time.monotonic()
            for ch in u.chunks:
                infos.append(cl.publish(ct, ch, qos=1))
                t_next += 1.0 / rate
                time.sleep(max(0.0, t_next - time.monotonic()))
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise RolloutError(f"central broker {c.host}:{c.port}: not acknowledged within {timeout_s:g} s")
        return time.perf_counter() - t0
    finally:
        cl.disconnect()
        cl.loop_stop()


def watch_status(c: Central, kind: Kind, stores: list[str] | None, serial: int | None, timeout_s: float,
                 done=("installed", "failed", "rolled_back")) -> dict[str, dict]:
    """The stores' retained status for `kind` (fleet/out/<store>/rollout/<kind>/status); with
    `serial`, wait until each named store reports an end state for that serial (or the timeout)."""
    got: dict[str, dict] = {}
    ready = threading.Event()

    def on_message(cl, userdata, msg):
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        store = doc.get("store")
        said = (doc.get("update") or {}).get("serial", doc.get("claimed_serial"))
        if serial is not None and (said != serial or doc.get("state") not in done):
            return
        got[store] = dict(doc, received_at=time.perf_counter())   # (stopping paho's loop takes up to 1 s)
        if stores and all(s in got for s in stores):
            ready.set()

    cl = _client(c, f"{c.client_id}-watch-{os.getpid()}")
    try:
        cl.on_message = on_message
        cl.subscribe(f"fleet/out/+/rollout/{kind.value}/status", qos=1)
        if stores and serial is not None:
            ready.wait(timeout_s)
        else:
            time.sleep(min(timeout_s, 1.0))   # retained statuses arrive at once
    finally:
        cl.disconnect()
        cl.loop_stop()
    return got


def status_line(doc: dict) -> str:
    run = doc.get("running") or {}
    line = f"{doc.get('store')}: {doc.get('kind')} {doc.get('state')}, running {run.get('version')} " \
           f"(serial {run.get('serial')})"
    if doc.get("check"):
        line += f"; check '{doc['check']}' failed: {doc.get('reason')}"
    return line
