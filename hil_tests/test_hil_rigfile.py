"""The rig files themselves: the virtual rig and the documented bench
example parse; mistakes are named with their key."""
import pytest

from cartrig import rigfile
from cartrig.resources import ManualPower, RelayPort, UhubctlPort


def test_bench_example_parses(monkeypatch):
    monkeypatch.setenv("CART_RIG_MQTT_PASSWORD", "x")
    monkeypatch.setenv("CART_RIG_WIFI_PASSWORD", "y")
    spec = rigfile.load(rigfile.resolve("bench-example"))
    assert spec.kind == "bench" and spec.broker.control == "command"
    assert spec.broker.password == "x"
    powers = {f"{b.cart}/{b.name}": b.power for b in spec.boards}
    assert isinstance(powers["b001/scale"], UhubctlPort) and powers["b001/scale"].port == 2
    assert isinstance(powers["b001/cam"], RelayPort)
    assert isinstance(powers["b002/scale"], ManualPower)
    assert spec.boards[1].port.url.startswith("rfc2217://")
    assert spec.weights["1kg"] == 1000.0
    assert spec.boards[0].calibration == (-152000, 86.0)


def test_secret_from_a_missing_env_var_is_named(monkeypatch):
    monkeypatch.delenv("CART_RIG_MQTT_PASSWORD", raising=False)
    with pytest.raises(rigfile.RigFileError, match="CART_RIG_MQTT_PASSWORD"):
        rigfile.load(rigfile.resolve("bench-example"))


def test_unknown_rig_and_bad_keys(tmp_path):
    with pytest.raises(rigfile.RigFileError, match="no rig file .*nope.toml"):
        rigfile.resolve("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('[rig]\nkind="bench"\n[[carts]]\nid="c1"\n[[carts.boards]]\nname="scale"\n'
                   'board="cart-scale-esp32"\nport="/dev/ttyUSB0"\npower={kind="laser"}\n')
    with pytest.raises(rigfile.RigFileError, match=r"boards\[0\]\.power\.kind: 'laser'"):
        rigfile.load(bad)
    bad.write_text('[rig]\nkind="bench"\n[[carts]]\nid="c1"\n[[carts.boards]]\nname="scale"\nboard="sim-scale"\n')
    with pytest.raises(rigfile.RigFileError, match="'virtual' in a bench rig"):
        rigfile.load(bad)
