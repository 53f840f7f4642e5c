"""What the gateway says when it starts and when it cannot reach the broker:
a start-up banner, then one warning per failed connect naming host:port and
the reason (refused, DNS failure, bad credentials, TLS, no route)."""
import errno
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from cart_testing.broker import MOSQUITTO, ClosedPort, free_port
from cart_gateway.mqtt_client import describe_connect_error
from gwhelp import ROOT, write_config


def _read_until(proc, want, timeout):
    """stderr lines of the gateway process until one contains every string in `want`."""
    lines, found = [], threading.Event()

    def pump():
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            if all(w in line for w in want):
                found.set()
                return
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    found.wait(timeout)
    return found.is_set(), lines


def _start(tmp_path, **mqtt):
    cfg = write_config(tmp_path, mqtt.pop("port", 1883))
    text = cfg.read_text()
    extra = "".join(f'{k} = "{v}"\n' for k, v in mqtt.items())
    cfg.write_text(text.replace("[mqtt]\n", "[mqtt]\n" + extra))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "gateway"))
    proc = subprocess.Popen([sys.executable, "-m", "cart_gateway.cli", "run", "--config", str(cfg)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT))
    return cfg, proc


def test_banner_then_refused_connect_names_host_port(tmp_path):
    closed = ClosedPort()   # closed: nothing listens, nor can start to while the test runs
    port = closed.port
    cfg, proc = _start(tmp_path, port=port)
    try:
        ok, lines = _read_until(proc, ["level=warning", "event=mqtt_connect_failed", f"127.0.0.1:{port}"], 15)
        assert ok, "".join(lines)
        assert "connection refused" in lines[-1], lines[-1]
        banner = next(ln for ln in lines if "event=start" in ln)
        for part in ("cart-gateway 0.1.0", f"config {cfg}", f"broker 127.0.0.1:{port}",
                     "model detector disabled", f"state dir {tmp_path / 'state'}"):
            assert part in banner, banner
    finally:
        proc.terminate()
        proc.wait(15)
        closed.close()


def test_unresolvable_host_is_a_dns_failure(tmp_path):
    cfg, proc = _start(tmp_path, port=1883, host="no-such-broker.invalid")
    try:
        ok, lines = _read_until(proc, ["level=warning", "event=mqtt_connect_failed",
                                       "no-such-broker.invalid:1883"], 20)
        assert ok, "".join(lines)
        assert "DNS failure" in lines[-1], lines[-1]
    finally:
        proc.terminate()
        proc.wait(15)


def test_bad_credentials_are_named(tmp_path):
    port = free_port()
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "gateway", "right"], check=True, capture_output=True)
    pw.chmod(0o600)
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
                    "persistence false\n" + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cfg, proc = _start(tmp_path, port=port, username="gateway", password="wrong")
        try:
            ok, lines = _read_until(proc, ["level=warning", "event=mqtt_connect_failed", f"127.0.0.1:{port}"], 15)
            assert ok, "".join(lines)
            assert "bad credentials (user gateway)" in lines[-1], lines[-1]
        finally:
            proc.terminate()
            proc.wait(15)
    finally:
        broker.terminate()
        broker.wait(5)


def test_reasons_of_real_socket_errors():
    closed = ClosedPort()
    with pytest.raises(OSError) as refused:
        socket.create_connection(("127.0.0.1", closed.port), 2)
    closed.close()
    assert describe_connect_error(refused.value).startswith("connection refused")
    with pytest.raises(OSError) as dns:
        socket.getaddrinfo("no-such-broker.invalid", 1883)
    assert describe_connect_error(dns.value).startswith("DNS failure")
    assert describe_connect_error(OSError(errno.EHOSTUNREACH, "No route to host")).startswith("no route to host")
    assert describe_connect_error(TimeoutError("timed out")).startswith("timed out")


def test_tls_error_against_a_plain_listener():
    """A TLS client talking to a port that does not speak TLS (the plain 1883 listener, say)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        c, _ = srv.accept()
        c.recv(1024)
        c.sendall(b"\x20\x02\x00\x00" * 8)   # MQTT bytes, not a TLS record
        c.close()
    threading.Thread(target=answer, daemon=True).start()
    ctx = ssl.create_default_context()
    with pytest.raises(ssl.SSLError) as e:
        with socket.create_connection(srv.getsockname(), 5) as s:
            ctx.wrap_socket(s, server_hostname="localhost")
    srv.close()
    assert describe_connect_error(e.value).startswith("TLS error")
