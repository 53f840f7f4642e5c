"""Rollout across the real bridge: head office publishes on the central broker (TLS, the
central ACL's `hq-` publisher), the store broker's bridge (`cart-flash provision --fleet`)
carries it in, the gateway process (real LiteRT) checks and installs it, and its status comes
back out to head office. Needs the fleet harness (tools/cart_testing/fleet.py, branch fleet18):
skipped where it is not in the tree."""
from __future__ import annotations

import time

import pytest

fleet = pytest.importorskip("cart_testing.fleet")

from cart_fleet import rollout as R  # noqa: E402
from cart_fleet import rollout_cli  # noqa: E402
from cart_fleet.rollout_bench import DATA  # noqa: E402


def test_publish_and_rollback_across_the_bridge(tmp_path, monkeypatch, capsys):
    from cart_testing.gateway import GatewayProcess, write_config
    central = fleet.CentralBroker(tmp_path, stores=("s001",)).start()
    store = fleet.BridgedStoreBroker(tmp_path, central, carts=("c001",)).start()
    priv, pub = R.keygen(tmp_path / "keys")
    cfg = write_config(tmp_path / "gw.toml", store.port, tmp_path / "gws", carts=("c001",), detector=True,
                       username="gateway-gw1", password=store.users["gateway-gw1"])
    cfg.write_text(cfg.read_text() + f'[rollout]\npublic_keys = ["{pub}"]\nstore = "s001"\n')
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    try:
        monkeypatch.setenv("CART_FLEET_PASSWORD", central.users["hq-hq1"])
        base = ["--broker", f"127.0.0.1:{central.port}", "--username", "hq-hq1", "--cafile", str(central.ca)]
        deadline = time.monotonic() + 60      # the bridge and the gateway come up
        while rollout_cli.main(["publish", "model", str(DATA), "--store", "s001", "--key", str(priv),
                                "--wait", "20"] + base) != 0:
            assert time.monotonic() < deadline, capsys.readouterr()
        assert "s001: model installed" in capsys.readouterr().out
        assert rollout_cli.main(["publish", "catalogue", str(DATA / "catalogue.json"), "--all", "--expect", "s001",
                                 "--key", str(priv), "--wait", "120"] + base) == 0
        assert "s001: catalogue installed" in capsys.readouterr().out
        assert rollout_cli.main(["rollback", "model", "--store", "s001", "--key", str(priv), "--wait", "120"] + base) == 0
        assert "s001: model rolled_back, running configured" in capsys.readouterr().out
    finally:
        gw.stop()
        store.stop()
        central.stop()
