"""Rollout end to end on the real parts: `cart-fleet publish | rollback` through a real
Mosquitto to the gateway service running as a process (real LiteRT detector); the store's
checkouts go on throughout and every one is answered."""
from __future__ import annotations

import json
import time

import pytest

from cart_fleet import rollout as R
from cart_fleet import rollout_cli
from cart_fleet.rollout_bench import DATA, CheckoutProbe, store_with_rollout
from cart_gateway.rollout import Kind


@pytest.fixture
def store(tmp_path):
    with store_with_rollout(tmp_path) as s:
        yield s


def cli(port, *args) -> int:
    return rollout_cli.main([*args, "--broker", f"127.0.0.1:{port}"])


def test_publish_model_and_catalogue_then_central_rollback(store, tmp_path, capsys):
    broker, key, gw = store
    probe = CheckoutProbe(broker.port).start()
    try:
        assert cli(broker.port, "publish", "model", str(DATA), "--store", "gw1", "--key", str(key),
                   "--version", "m2", "--wait", "120") == 0
        out = capsys.readouterr().out
        assert "gw1: model installed, running m2" in out, out
        cat = json.loads((DATA / "catalogue.json").read_text())
        cat["items"][0]["price_cents"] += 5
        f = tmp_path / "catalogue-new.json"
        f.write_text(json.dumps(cat))
        assert cli(broker.port, "publish", "catalogue", str(f), "--all", "--expect", "gw1", "--key", str(key),
                   "--version", "c2", "--wait", "120") == 0
        assert "gw1: catalogue installed, running c2" in capsys.readouterr().out
        assert cli(broker.port, "rollback", "model", "--store", "gw1", "--key", str(key), "--wait", "120") == 0
        assert "gw1: model rolled_back, running configured" in capsys.readouterr().out
    finally:
        probe.stop()
    assert probe.lat and not probe.sent, f"checkouts unanswered during the rollout: {sorted(probe.sent)}"
    assert gw.proc.poll() is None
    got = R.watch_status(R.Central("127.0.0.1", broker.port), Kind.CATALOGUE, None, None, 2)
    assert got["gw1"]["running"]["version"] == "c2" and got["gw1"]["figures"]["skus"] == len(cat["items"])


def test_forged_and_replayed_updates_are_reported_on_the_status_topic(store, tmp_path, capsys):
    broker, key, gw = store
    central = R.Central("127.0.0.1", broker.port)
    priv2, _ = R.keygen(tmp_path / "other", "forger")
    assert cli(broker.port, "publish", "model", str(DATA), "--store", "gw1", "--key", str(priv2),
               "--wait", "60") == 1
    out = capsys.readouterr().out
    assert "check 'signature' failed" in out and "not provisioned" in out, out
    # a recorded genuine update, sent again after a newer one
    good = R.make_update(Kind.MODEL, R.artefact(Kind.MODEL, DATA), "gw1", R.load_private_key(key))
    R.send(central, [good])
    assert R.watch_status(central, Kind.MODEL, ["gw1"], good.serial, 120)["gw1"]["state"] == "installed"
    newer = R.make_update(Kind.MODEL, R.artefact(Kind.MODEL, DATA), "gw1", R.load_private_key(key))
    R.send(central, [newer])
    assert R.watch_status(central, Kind.MODEL, ["gw1"], newer.serial, 120)["gw1"]["state"] == "installed"
    R.send(central, [good])
    deadline = time.monotonic() + 30
    st = {}
    while time.monotonic() < deadline and st.get("check") != "replay":
        st = R.watch_status(central, Kind.MODEL, None, None, 1).get("gw1", {})
    assert st["state"] == "failed" and st["check"] == "replay", st
    assert st["running"]["serial"] == newer.serial      # the newer one keeps running
    assert gw.proc.poll() is None


def test_publish_refuses_a_bad_file_before_sending(tmp_path, capsys):
    key, _ = R.keygen(tmp_path / "k")
    (tmp_path / "m").mkdir()
    assert rollout_cli.main(["publish", "model", str(tmp_path / "m"), "--store", "gw1", "--key", str(key)]) == 2
    assert "detector.tflite not found" in capsys.readouterr().err
    (tmp_path / "c.json").write_text("{ not json")
    assert rollout_cli.main(["publish", "catalogue", str(tmp_path / "c.json"), "--all", "--key", str(key)]) == 2
    assert "catalogue" in capsys.readouterr().err
    assert rollout_cli.main(["publish", "catalogue", str(DATA / "catalogue.json"), "--key", str(key)]) == 2
    assert "--store S" in capsys.readouterr().err
