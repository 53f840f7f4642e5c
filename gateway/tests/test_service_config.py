"""Gateway config: validated, unknown keys rejected with the key named; check-config CLI."""
import subprocess
import sys
from pathlib import Path

import pytest
from gwhelp import ROOT

from cart_gateway.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[1] / "systemd" / "gateway.toml"


def test_example_config_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.client_id == "gateway-gw1" and cfg.carts.accepts("c042") and not cfg.carts.accepts("x1")


@pytest.mark.parametrize("text, match", [
    ("gateway_idd = 'gw1'\n", "gateway_idd: unknown key"),
    ("[mqtt]\nport = 0\n", "mqtt.port"),
    ("[mqtt]\nhost = 'x'\ncolour = 1\n", "mqtt.colour: unknown key"),
    ("[carts]\nknown = ['BAD']\n", "carts.known"),
    ("[carts]\npattern = '('\n", "carts.pattern"),
    ("[carts]\nknown = []\n", "carts"),
    ("[reconcile]\naccept_posterior = 2\n", "reconcile.accept_posterior"),
    ("[reconcile]\nnot_a_threshold = 1\n", "reconcile.not_a_threshold: unknown key"),
    ("gateway_id = 'GW 1'\n", "gateway_id"),
    ("sqlite_synchronous = 'OFF'\n", "sqlite_synchronous"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_configs_name_the_key(tmp_path, text, match):
    p = tmp_path / "g.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert match in str(e.value) and str(p) in str(e.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="file not found"):
        load_config("/nonexistent/gw.toml")


def test_check_config_cli(tmp_path):
    env = {"PYTHONPATH": str(ROOT / "gateway")}
    ok = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "check-config", str(EXAMPLE)],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nprot = 1883\n")
    r = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "check-config", str(bad)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "mqtt.prot: unknown key" in r.stderr
