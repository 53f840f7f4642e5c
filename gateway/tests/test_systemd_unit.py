"""The systemd unit verifies, and the gateway speaks sd_notify: READY=1 once connected, WATCHDOG=1 pings."""
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from gwhelp import start_gateway, stop, write_config

from cart_gateway.notify import _address, sd_notify, watchdog_interval_s

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "cart-gateway.service"


def test_unit_file_passes_systemd_analyze_verify(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    # the unit names the Pi's install path; point it at an executable that exists here
    text = UNIT.read_text().replace("/opt/cart-gateway/venv/bin/cart-gateway", "/bin/true")
    unit = tmp_path / "cart-gateway.service"
    unit.write_text(text)
    r = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "cart-gateway.service" not in r.stderr, r.stderr   # no warnings about our unit


def test_unit_has_the_required_settings():
    text = UNIT.read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=2", "DynamicUser=yes",
                "StateDirectory=cart-gateway", "ProtectSystem=strict", "NoNewPrivileges=yes",
                "ExecStart=/opt/cart-gateway/venv/bin/cart-gateway run --config /etc/cart-gateway/gateway.toml"):
        assert key in text, key


def test_sd_notify_reaches_abstract_and_path_sockets(tmp_path):
    for name in (f"@cart-test-{os.getpid()}", str(tmp_path / "notify")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(_address(name))
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": name})
        assert s.recv(100) == b"READY=1"
        s.close()
    assert sd_notify("READY=1", {}) is False
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000"}) == 2.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None


def test_gateway_sends_ready_after_connecting_and_watchdog_pings(mosquitto, tmp_path):
    sock_path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(60)   # generous: the gateway starts in ~1 s, longer on a loaded machine
    cfg = write_config(tmp_path, mosquitto.port)
    # WATCHDOG_PID is left unset: systemd sets it to the service's pid, which we cannot know before exec
    gw = start_gateway(cfg, {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}, tmp_path / "gw.log")
    got = []
    try:
        t0 = time.time()
        while time.time() - t0 < 60 and (not any(m.startswith("READY=1") for m in got)
                                         or sum(m == "WATCHDOG=1" for m in got) < 3):
            got.append(s.recv(200).decode())
        assert any(m.startswith("READY=1") for m in got), got
        pings = [i for i, m in enumerate(got) if m == "WATCHDOG=1"]
        assert len(pings) >= 3, got
        log = (tmp_path / "gw.log").read_text()
        assert "mqtt_connected" in log      # READY came with the broker connection, not before
    finally:
        stop(gw)
        s.close()


WEB_UNIT = UNIT.parent / "cart-gateway-web.service"


def test_web_unit_passes_systemd_analyze_verify_with_the_same_hardening(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    unit = tmp_path / "cart-gateway-web.service"
    unit.write_text(WEB_UNIT.read_text().replace("/opt/cart-gateway/venv/bin/cart-gateway", "/bin/true"))
    r = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "cart-gateway-web.service" not in r.stderr, r.stderr
    hardening = [ln for ln in UNIT.read_text().splitlines()
                 if re.match(r"(Protect|Restrict|Private|NoNewPriv|SystemCall|Capability|Ambient|DevicePolicy|"
                             r"IPAddress|LockPersonality|DynamicUser|UMask)", ln)]
    web = WEB_UNIT.read_text().splitlines()
    assert hardening and all(ln in web for ln in hardening), [ln for ln in hardening if ln not in web]
    assert "MemoryDenyWriteExecute=yes" in web and "User=cart-gateway" in web
    assert "ExecStart=/opt/cart-gateway/venv/bin/cart-gateway web --config /etc/cart-gateway/web.toml" in web
