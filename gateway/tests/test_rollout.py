"""Rollout on the gateway (rollout.py): a signed update is received in chunks, checked
(signature, target, replay, size, chunks, hash, loads on the real LiteRT interpreter /
catalogue parser, evaluates on the held-out scenes) and only then swapped in; every hostile
update leaves the running one in place and says which check failed."""
from __future__ import annotations

import hashlib
import io
import json
import queue
import shutil
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cart_gateway import cli
from cart_gateway.catalogue import Catalogue
from cart_gateway.config import parse_config
from cart_gateway.detectors import DEFAULT_LABELS, DEFAULT_MODEL
from cart_gateway.rollout import (CHUNK_HEADER, Kind, Rollout, SwapHooks, VersionStore, chunk_payload,
                                  model_plugin, sign)
from cart_gateway.service import Gateway
from cart_gateway.vision import BurstDetector

DATA = DEFAULT_MODEL.parent


def model_tar(files: dict[str, bytes] | None = None) -> bytes:
    """The committed model as a rollout archive (files: replace or add members)."""
    members = {"detector.tflite": DEFAULT_MODEL.read_bytes(), "detector_labels.txt": DEFAULT_LABELS.read_bytes(),
               "detector_crop.tflite": (DATA / "detector_crop.tflite").read_bytes(),
               "detector.calib.json": (DATA / "detector.calib.json").read_bytes()}
    members.update(files or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Rig:
    """A gateway's rollout with its real Gateway (catalogue hot reload) and real detector."""

    def __init__(self, tmp: Path, **rollout):
        self.key = Ed25519PrivateKey.generate()
        (tmp / "rollout.pub").write_bytes(pem(self.key))
        self.cfg = parse_config({"gateway_id": "gw1", "state_dir": str(tmp / "state"),
                                 "rollout": {"public_keys": [str(tmp / "rollout.pub")], **rollout}})
        self.gw = Gateway(self.cfg)
        self.det = BurstDetector.from_config(self.cfg.detector)
        self.status: list[dict] = []
        self.results: queue.Queue = queue.Queue()

        def set_detector(d):
            self.det = d
        hooks = SwapHooks(set_detector, self.gw.swap_catalogue,
                          lambda: self.det.detector.labels[1:] if self.det.detector else None,
                          lambda: self.gw.catalogue, self.gw.prepare_catalogue)
        self.r = Rollout(self.cfg, lambda t, p: self.status.append(dict(json.loads(p), topic=t)),
                         self.results.put, hooks)
        self.r.start()
        self.serial = 1000

    def manifest(self, kind: str, data: bytes, key=None, **over) -> dict:
        self.serial += 1
        doc = {"v": 1, "kind": kind, "action": "install", "serial": self.serial, "version": f"v{self.serial}",
               "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "chunk_size": 8192,
               "targets": ["gw1"], "created_ms": 1}
        doc.update(over)
        return sign(doc, key or self.key)

    def send(self, kind: str, data: bytes, m: dict | None = None, chunks=None, t_ms: int = 0) -> dict:
        m = m or self.manifest(kind, data)
        base = f"fleet/in/gw1/rollout/{kind}"
        self.r.handle(f"{base}/manifest", json.dumps(m).encode(), t_ms)
        cs = m["chunk_size"]
        for i in (range(-(-len(data) // cs)) if chunks is None else chunks):
            self.r.handle(f"{base}/chunk", chunk_payload(m["sha256"], i, data[i * cs:(i + 1) * cs]), t_ms)
        return m

    def settle(self, timeout=120) -> dict:
        """Wait for the rollout thread's result, apply it as the core thread does; the last status."""
        if self.status and self.status[-1]["state"] == "checking":
            self.r.apply(self.results.get(timeout=timeout))
        return self.status[-1]

    def close(self):
        self.r.stop()
        self.gw.store.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def current(rig, kind: str):
    return VersionStore(rig.cfg.state_dir, Kind(kind)).read()


# ------------------------------------------------------------------ the good path
def test_model_checked_then_swapped_then_rolled_back(rig):
    old = rig.det
    m = rig.send("model", model_tar())
    assert [s["state"] for s in rig.status] == ["receiving", "checking"]
    st = rig.settle()
    assert st["state"] == "installed", st
    assert st["topic"] == "fleet/out/gw1/rollout/model/status"
    assert st["running"]["serial"] == m["serial"] and st["previous"]["version"] == "configured"
    f = st["figures"]
    # evaluated on the held-out scenes, against the running model: the same model scores the same
    assert f["new"]["scenes"] == 64 and f["new"]["top1"] == f["running"]["top1"] > 0.5
    assert rig.det is not old and rig.det.detector.labels == old.detector.labels
    assert current(rig, "model").current == str(m["serial"])
    d = rig.cfg.state_dir / "rollout" / "model" / "versions" / str(m["serial"])
    assert (d / "detector.tflite").read_bytes() == DEFAULT_MODEL.read_bytes()
    assert model_plugin(rig.cfg)["model_path"] == d / "detector.tflite"     # what a restart loads
    # a signed rollback from head office: the configured model again
    rb = sign({"v": 1, "kind": "model", "action": "rollback", "serial": m["serial"] + 1, "targets": ["*"],
               "created_ms": 2}, rig.key)
    rig.r.handle("fleet/in/all/rollout/model/manifest", json.dumps(rb).encode(), 0)
    rig.r.apply(rig.results.get(timeout=60))
    st = rig.status[-1]
    assert st["state"] == "rolled_back" and st["running"]["version"] == "configured", st
    assert current(rig, "model").current is None and current(rig, "model").previous == str(m["serial"])
    assert model_plugin(rig.cfg) is None


def test_local_rollback_command_is_picked_up_by_the_running_service(rig, capsys):
    m = rig.send("model", model_tar())
    assert rig.settle()["state"] == "installed"
    cfg_file = rig.cfg.state_dir.parent / "gw.toml"
    cfg_file.write_text(f'state_dir = "{rig.cfg.state_dir}"\n')
    assert cli.main(["rollback", "model", "--config", str(cfg_file)]) == 0
    assert "now configured" in capsys.readouterr().out
    assert current(rig, "model").current is None
    before = rig.det
    rig.r.tick(1)                       # the service notices the pointer at its next tick
    rig.r.apply(rig.results.get(timeout=60))
    assert rig.status[-1]["state"] == "rolled_back" and rig.det is not before
    # and forward again
    assert cli.main(["rollback", "model", "--config", str(cfg_file)]) == 0
    assert current(rig, "model").current == str(m["serial"])


def test_rollback_with_nothing_installed_is_refused(rig, capsys):
    rb = sign({"v": 1, "kind": "catalogue", "action": "rollback", "serial": 5000, "targets": ["gw1"],
               "created_ms": 2}, rig.key)
    rig.r.handle("fleet/in/gw1/rollout/catalogue/manifest", json.dumps(rb).encode(), 0)
    st = rig.status[-1]
    assert st["state"] == "failed" and st["check"] == "rollback" and "nothing to roll back" in st["reason"]
    cfg_file = rig.cfg.state_dir.parent / "gw.toml"
    cfg_file.write_text(f'state_dir = "{rig.cfg.state_dir}"\n')
    assert cli.main(["rollback", "model", "--config", str(cfg_file)]) == 1
    assert "nothing to roll back" in capsys.readouterr().err


def test_catalogue_hot_reload_keeps_open_baskets(rig):
    cat = json.loads(Catalogue.load().to_json())
    sku = cat["items"][0]["sku"]
    cat["items"][0]["price_cents"] += 10
    gw = rig.gw
    gw.store.begin()
    gw.handle("carts/c001/checkout", b'{"v":1,"req_id":"r1"}', 1000)   # a cart with a session
    gw.store.commit()
    carts_before = set(gw.carts)
    rig.send("catalogue", json.dumps(cat).encode())
    st = rig.settle()
    assert st["state"] == "installed", st
    assert gw.catalogue[sku].price_cents == cat["items"][0]["price_cents"]
    assert set(gw.carts) == carts_before and gw.carts["c001"].engine.cat.items[sku].price_cents == gw.catalogue[sku].price_cents
    assert st["figures"]["skus"] == len(cat["items"]) and st["figures"]["dropped"] == 0


def test_catalogue_dropping_a_sku_in_an_open_basket_waits(rig):
    rig.det = BurstDetector(None)     # detector off: only the baskets constrain which SKUs may go
    cat = json.loads(Catalogue.load().to_json())
    gone = cat["items"][-1]["sku"]
    rt = rig.gw._cart("c001")
    rt.engine.s["lines"].append({"line_id": "L1", "sku": gone, "name": "x", "qty": 1, "weight_g": 1.0,
                                 "unit_price_cents": 1, "price_cents": 1, "status": "accepted"})
    cat["items"] = cat["items"][:-1]
    rig.send("catalogue", json.dumps(cat).encode())
    st = rig.settle()
    assert st["state"] == "waiting" and gone in st["reason"], st
    assert gone in rig.gw.catalogue                 # the running one stays
    rt.engine.s["lines"].clear()                    # the shopper checked out
    rig.r.tick(1)
    assert rig.status[-1]["state"] == "installed" and gone not in rig.gw.catalogue


# ------------------------------------------------------------------ hostile updates
def assert_refused(rig, check: str, words: str, kind="model"):
    st = rig.status[-1]
    assert st["state"] == "failed" and st["check"] == check, st
    assert words in st["reason"], st["reason"]
    assert current(rig, kind).current is None       # nothing installed
    assert rig.det.detector.config.model_path == DEFAULT_MODEL
    assert len(rig.gw.catalogue) == len(Catalogue.load())


def test_wrong_hash(rig):
    data = model_tar()
    m = rig.manifest("model", data)
    bad = bytearray(data)
    bad[5000] ^= 0xFF                                # a bit flipped on the way
    rig.send("model", bytes(bad), m)
    rig.settle()
    assert_refused(rig, "hash", "manifest says")


def test_truncated_transfer_times_out(rig):
    data = model_tar()
    m = rig.send("model", data, chunks=range(3), t_ms=0)
    assert rig.status[-1]["state"] == "receiving"
    rig.r.tick(int(rig.cfg.rollout.transfer_timeout_s * 1000) + 1)
    assert_refused(rig, "transfer", f"3 of {-(-m['size'] // 8192)} chunks")


def test_restart_during_a_transfer_is_reported_and_the_old_one_runs(tmp_path):
    rig = Rig(tmp_path)
    data = model_tar()
    m = rig.send("model", data, chunks=range(5))
    rig.close()                                   # the gateway stops (or is killed) mid-transfer
    again = Rig.__new__(Rig)
    again.__dict__.update(rig.__dict__, status=[], results=queue.Queue())
    again.gw = Gateway(rig.cfg)
    hooks = rig.r.hooks
    again.r = Rollout(rig.cfg, lambda t, p: again.status.append(json.loads(p)), again.results.put, hooks)
    again.r.start()
    try:
        st = again.status[-1]
        assert st["state"] == "failed" and st["check"] == "transfer" and "restarted" in st["reason"], st
        assert st["claimed_serial"] == m["serial"] and st["running"]["version"] == "configured"
        assert not (rig.cfg.state_dir / "rollout" / "model" / "incoming").exists()
        again.send("model", data)                 # published again: a new serial
        assert again.settle()["state"] == "installed"
    finally:
        again.close()


def test_short_last_chunk(rig):
    data = model_tar()
    m = rig.manifest("model", data)
    rig.send("model", data[:-100], m)             # the last chunk lost its tail
    assert_refused(rig, "chunk", "expected")


def test_oversized(rig):
    data = model_tar()
    m = rig.manifest("model", data, size=rig.cfg.rollout.max_model_bytes + 1)
    rig.r.handle("fleet/in/gw1/rollout/model/manifest", json.dumps(m).encode(), 0)
    assert_refused(rig, "size", "limit")
    assert not rig.r.transfers


def test_replayed_old_version(rig):
    data = model_tar()
    m = rig.send("model", data)
    assert rig.settle()["state"] == "installed"
    newer = rig.send("model", data)
    assert rig.settle()["state"] == "installed"
    rig.r.handle("fleet/in/gw1/rollout/model/manifest", json.dumps(m).encode(), 0)   # the old one again
    st = rig.status[-1]
    assert st["state"] == "failed" and st["check"] == "replay" and "not above" in st["reason"], st
    assert st["running"]["serial"] == newer["serial"]


def test_forged_signature_and_tampered_manifest(rig):
    data = model_tar()
    other = Ed25519PrivateKey.generate()
    rig.send("model", data, rig.manifest("model", data, key=other))
    assert_refused(rig, "signature", "not provisioned")
    m = rig.manifest("model", data)
    m["targets"] = ["*"]                             # changed after signing
    rig.r.handle("fleet/in/gw1/rollout/model/manifest", json.dumps(m).encode(), 0)
    assert_refused(rig, "signature", "does not verify")
    m = rig.manifest("model", data)
    m["sig"] = "!!not base64!!"
    rig.r.handle("fleet/in/gw1/rollout/model/manifest", json.dumps(m).encode(), 0)
    assert_refused(rig, "signature", "does not verify")


def test_other_store_and_malformed_manifests(rig):
    data = model_tar()
    rig.r.handle("fleet/in/gw1/rollout/model/manifest",
                 json.dumps(rig.manifest("model", data, targets=["gw2"])).encode(), 0)
    assert_refused(rig, "target", "not 'gw1'")
    rig.r.handle("fleet/in/gw1/rollout/model/manifest", b"\xff not json", 0)
    assert_refused(rig, "manifest", "not JSON")
    rig.r.handle("fleet/in/gw1/rollout/model/manifest",
                 json.dumps(rig.manifest("catalogue", data)).encode(), 0)
    assert_refused(rig, "manifest", "catalogue manifest on the model topic")
    rig.r.handle("fleet/in/gw1/rollout/model/manifest",
                 json.dumps(rig.manifest("model", data, chunk_size=10**6)).encode(), 0)
    assert_refused(rig, "manifest", "chunk_size")
    rig.r.handle("fleet/in/gw1/rollout/model/manifest", b"{" + b" " * 5000 + b"}", 0)
    assert_refused(rig, "manifest", "limit")


def test_stray_and_headerless_chunks(rig):
    rig.r.handle("fleet/in/gw1/rollout/model/chunk", CHUNK_HEADER.pack(b"\0" * 8, 0) + b"x", 0)
    assert rig.status == []                          # no transfer under way: ignored
    rig.r.handle("fleet/in/gw1/rollout/model/chunk", b"abc", 0)
    assert_refused(rig, "chunk", "no header")


def test_corrupt_model_file(rig):
    tfl = bytearray(DEFAULT_MODEL.read_bytes())
    tfl[:64] = b"\0" * 64                           # signed and hashed correctly, but not a flatbuffer model
    rig.send("model", model_tar({"detector.tflite": bytes(tfl)}))
    rig.settle()
    assert_refused(rig, "load", "does not load")
    assert not any((rig.cfg.state_dir / "rollout" / "model" / "versions").iterdir())


def test_model_archive_with_a_path_or_missing_labels(rig):
    rig.send("model", model_tar({"../../etc/x": b"evil"}))
    rig.settle()
    assert_refused(rig, "load", "only")
    rig.send("model", model_tar({"detector_labels.txt": None}))
    rig.settle()
    assert_refused(rig, "load", "lacks")
    rig.send("model", b"not a tar at all" * 100)
    rig.settle()
    assert_refused(rig, "load", "tar")


def test_worse_model_is_refused_by_the_held_out_scenes(rig):
    labels = DEFAULT_LABELS.read_text().split()
    shuffled = [labels[0]] + labels[2:] + labels[1:2]          # every SKU named by its neighbour's logit
    rig.send("model", model_tar({"detector_labels.txt": ("\n".join(shuffled) + "\n").encode()}))
    st = rig.settle()
    assert_refused(rig, "evaluate", "held-out scenes")
    assert st["figures"] == {} and "top-1" in st["reason"]


def test_catalogue_with_bad_rows(rig):
    cat = json.loads(Catalogue.load().to_json())
    cat["items"][3]["ean13"] = "1234567890123"
    rig.send("catalogue", json.dumps(cat).encode())
    rig.settle()
    assert_refused(rig, "load", "not a valid EAN-13", kind="catalogue")
    cat = json.loads(Catalogue.load().to_json())
    cat["items"][7]["weight_mean_g"] = "heavy"
    rig.send("catalogue", json.dumps(cat).encode())
    rig.settle()
    assert_refused(rig, "load", f"{cat['items'][7]['sku']}: field 'weight_mean_g'", kind="catalogue")
    rig.send("catalogue", b'{"schema": 1, "items": [')
    rig.settle()
    assert_refused(rig, "load", "cannot read", kind="catalogue")


def test_catalogue_that_the_model_cannot_use(rig):
    cat = json.loads(Catalogue.load().to_json())
    cat["items"] = cat["items"][: len(cat["items"]) // 2]
    rig.send("catalogue", json.dumps(cat).encode())
    rig.settle()
    assert_refused(rig, "evaluate", "the running model knows", kind="catalogue")


def test_restart_loads_the_installed_versions(tmp_path):
    rig = Rig(tmp_path)
    try:
        cat = json.loads(Catalogue.load().to_json())
        cat["items"][0]["name"] = "Renamed by rollout"
        rig.send("catalogue", json.dumps(cat).encode())
        assert rig.settle()["state"] == "installed"
        rig.send("model", model_tar())
        assert rig.settle()["state"] == "installed"
    finally:
        rig.close()
    from cart_gateway.preflight import check_all, load_detector
    assert check_all(rig.cfg, detector=False) == []
    gw = Gateway(rig.cfg)
    assert gw.catalogue[cat["items"][0]["sku"]].name == "Renamed by rollout"
    gw.store.close()
    det = load_detector(rig.cfg)
    assert "rollout" in str(det.detector.config.model_path)


def test_holdout_is_packaged_and_labelled():
    from cart_gateway.rollout import HOLDOUT_DIR, Holdout
    h = Holdout.load(HOLDOUT_DIR)
    cat = Catalogue.load()
    assert len(h.jpegs) == 64 and all(j[:2] == b"\xff\xd8" for j in h.jpegs)
    assert all(s is None or s in cat for s in h.truth) and len({s for s in h.truth}) > 30
    shutil.disk_usage(HOLDOUT_DIR)   # on disk, in the package (package-data data/**/*)


def test_rollout_config_and_keys_are_checked(tmp_path):
    from cart_gateway.config import ConfigError
    from cart_gateway.preflight import check_all
    with pytest.raises(ConfigError, match="rollout.store"):
        parse_config({"rollout": {"store": "all"}})
    with pytest.raises(ConfigError, match="rollout.max_model_byte: unknown key"):
        parse_config({"rollout": {"max_model_byte": 5}})
    (tmp_path / "bad.pub").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    cfg = parse_config({"state_dir": str(tmp_path / "s"), "detector": {"enabled": False},
                        "rollout": {"public_keys": [str(tmp_path / "bad.pub"), str(tmp_path / "missing.pub")]}})
    problems = check_all(cfg)
    assert len(problems) == 1 and "bad.pub" in problems[0] and "Ed25519" in problems[0], problems


def test_rollback_to_a_catalogue_the_model_cannot_use_is_refused(rig):
    cat = json.loads(Catalogue.load().to_json())
    rig.send("catalogue", json.dumps(cat).encode())
    assert rig.settle()["state"] == "installed"
    # the configured catalogue would now lack SKUs of the running model
    half = json.loads(Catalogue.load().to_json())
    half["items"] = half["items"][:100]
    f = rig.cfg.state_dir.parent / "half.json"
    f.write_text(json.dumps(half))
    rig.r.cfg = rig.cfg.model_copy(update={"catalogue": f})
    rb = sign({"v": 1, "kind": "catalogue", "action": "rollback", "serial": rig.serial + 10, "targets": ["gw1"],
               "created_ms": 2}, rig.key)
    rig.r.handle("fleet/in/gw1/rollout/catalogue/manifest", json.dumps(rb).encode(), 0)
    rig.r.apply(rig.results.get(timeout=60))
    st = rig.status[-1]
    assert st["state"] == "failed" and st["check"] == "evaluate" and "lacks" in st["reason"], st
    assert current(rig, "catalogue").current is not None and len(rig.gw.catalogue) == len(cat["items"])


def test_personal_classes_need_no_catalogue_row_but_unknown_labels_are_reported():
    """A burst model trained on pool views has `personal:<kind>` classes: they are not SKUs, so
    neither a model rollout nor a catalogue rollout may ask the catalogue for them."""
    from cart_gateway.rollout import skus_missing
    cat = Catalogue.load()
    labels = [cat.skus()[0], "personal:bag", "personal:phone", "personal:umbrella", "SKU-NOT-SOLD-HERE"]
    assert skus_missing(labels, cat) == ["personal:umbrella", "SKU-NOT-SOLD-HERE"]
    assert skus_missing(cat.skus(), cat) == []
