"""Rollout's wire records: the signed manifest, its checks' names, the chunk header
(docs/protocol.md §17)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import struct
import tarfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

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


def read_archive_members(data: bytes) -> list[str]:
    """Names in a model archive (for tools and tests)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return tar.getnames()
