"""check-config refuses what would crash `run` (model files, the detector
plugin section, the metrics port, the state directory, loose types), and
`run` turns every start-up failure into one line and exit 2, no traceback."""
import os
import socket
import subprocess
import sys

import pytest
from gwhelp import ROOT

from cart_gateway.config import ConfigError, load_config

MODEL = ROOT / "gateway" / "cart_gateway" / "data" / "detector.tflite"
LABELS = ROOT / "gateway" / "cart_gateway" / "data" / "detector_labels.txt"


def _cli(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "gateway"))
    return subprocess.run([sys.executable, "-m", "cart_gateway.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def _config(tmp_path, body: str, detector: str = "[detector]\nenabled = false\n"):
    p = tmp_path / "gw.toml"
    p.write_text(f'state_dir = "{tmp_path / "state"}"\n' + body + "\n[mqtt]\nport = 1\n" + detector)
    return p


def _one_clear_line(r, *want):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("cart-gateway:")]
    assert err, r.stderr
    for w in want:
        assert w in r.stderr, r.stderr


@pytest.mark.parametrize("text, match", [
    ('batch_max = "64"\n', "batch_max: Input should be a valid integer"),
    ('metrics_port = "9105"\n', "metrics_port: Input should be a valid integer"),
    ("tick_ms = 200.5\n", "tick_ms"),
    ("[detector]\nenabled = 1\n", "detector.enabled: Input should be a valid boolean"),
    ('[reconcile]\nevidence_window_ms = "1500"\n', "reconcile.evidence_window_ms"),
])
def test_types_are_strict(tmp_path, text, match):
    p = tmp_path / "g.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_floats_may_be_written_as_integers_and_paths_as_strings(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('state_dir = "/srv/x"\n[frames]\nretention_s = 60\n')
    cfg = load_config(p)
    assert cfg.frames.retention_s == 60.0 and str(cfg.state_dir) == "/srv/x"


def test_a_typo_in_the_detector_plugin_section_names_the_key(tmp_path):
    cfg = _config(tmp_path, "", f'[detector]\nplugin = {{ type = "cpu", model_pth = "{MODEL}", '
                                f'labels_path = "{LABELS}" }}\n')
    for cmd in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        _one_clear_line(_cli(*cmd), "detector.plugin.model_pth: unknown key", "detector.plugin.model_path: Field required")


def test_a_missing_model_file_fails_check_config_and_run(tmp_path):
    cfg = _config(tmp_path, "", f'[detector]\nplugin = {{ type = "cpu", model_path = "{tmp_path / "nope.tflite"}", '
                                f'labels_path = "{LABELS}" }}\n')
    for cmd in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        _one_clear_line(_cli(*cmd), f"model file not found: {tmp_path / 'nope.tflite'}")


def test_a_corrupt_model_file_fails_check_config(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 64)
    cfg = _config(tmp_path, "", f'[detector]\nplugin = {{ type = "cpu", model_path = "{bad}", '
                                f'labels_path = "{LABELS}" }}\n')
    _one_clear_line(_cli("check-config", str(cfg)), f"cannot load model {bad}")


def test_a_metrics_port_in_use_fails_check_config_and_run(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        cfg = _config(tmp_path, f"metrics_port = {port}\n")
        for cmd in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
            _one_clear_line(_cli(*cmd), f"metrics_port {port} on 127.0.0.1: already in use")
    finally:
        busy.close()


@pytest.mark.parametrize("state", ["/sys/kernel", "/sys/kernel/cart-gateway"])
def test_an_unwritable_state_dir_fails_check_config(tmp_path, state):
    """sysfs takes no new files, even from root."""
    p = tmp_path / "gw.toml"
    p.write_text(f'state_dir = "{state}"\n[detector]\nenabled = false\n')
    _one_clear_line(_cli("check-config", str(p)), f"state_dir {state}: not writable")


def test_a_state_dir_to_be_created_passes_and_is_not_left_behind(tmp_path):
    p = tmp_path / "gw.toml"
    p.write_text(f'state_dir = "{tmp_path / "a" / "b"}"\n[detector]\nenabled = false\n')
    r = _cli("check-config", str(p))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "a").exists()


def test_a_state_dir_that_is_a_file_fails_check_config(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    p = tmp_path / "gw.toml"
    p.write_text(f'state_dir = "{f / "state"}"\n[detector]\nenabled = false\n')
    _one_clear_line(_cli("check-config", str(p)), "is not a directory")


def test_a_corrupt_database_fails_check_config_and_run(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "gateway.sqlite3").write_bytes(b"this is not SQLite" * 100)
    cfg = _config(tmp_path, "")
    for cmd in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        _one_clear_line(_cli(*cmd), "gateway.sqlite3: file is not a database")


def test_a_missing_catalogue_fails_check_config(tmp_path):
    cfg = _config(tmp_path, f'catalogue = "{tmp_path / "cat.json"}"\n')
    _one_clear_line(_cli("check-config", str(cfg)), f"catalogue file not found: {tmp_path / 'cat.json'}")


def test_the_committed_model_passes_check_config(tmp_path):
    cfg = _config(tmp_path, "", "[detector]\nenabled = true\n")
    r = _cli("check-config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "model detector.tflite (packaged, cpu)" in r.stdout
