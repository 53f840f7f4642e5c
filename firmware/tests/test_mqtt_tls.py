"""TLS to a real Mosquitto TLS listener (certificates made with openssl in the
test): the firmware verifies the broker against config broker.ca_file (PEM,
converted to DER for mbedTLS) and publishes; with the wrong CA it refuses the
broker, logs it and keeps backing off (no crash)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fwtest import LOADGEN, MOSQUITTO, board_config, free_port, Subscriber

pytestmark = pytest.mark.micropython


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_broker(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path / "pki"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=cart-test-ca", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "srv.pem", "-days", "2", "-extfile", "ext", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem",
            "-days", "2", "-subj", "/CN=someone-else", cwd=d)
    tls_port, plain_port = free_port(), free_port()
    conf = tmp_path / "tls.conf"
    # Run as root (CI containers), mosquitto drops to its own user before
    # reading the key files, which pytest's private tmp dirs forbid: keep root.
    import os
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}per_listener_settings false\nallow_anonymous true\npersistence false\n"
                    f"listener {plain_port} 127.0.0.1\n"
                    f"listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/srv.pem\nkeyfile {d}/srv.key\n")
    p = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=open(tmp_path / "tls.log", "wb"),
                         stderr=subprocess.STDOUT)
    import socket
    import time
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", plain_port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield d, tls_port, plain_port
    finally:
        p.terminate()
        p.wait(5)


def test_tls_verified_publish(tls_broker, board_factory, subscriber_factory):
    pki, tls_port, plain_port = tls_broker
    sub = subscriber_factory(plain_port)
    b = board_factory(app=LOADGEN)
    shutil.copy(pki / "ca.pem", b.flash / "ca.pem")
    b.write_config(board_config(tls_port, broker={"tls": True, "ca_file": "ca.pem"},
                                app={"rate_hz": 10, "count": 20}))
    b.start()
    assert sub.wait(lambda: len(sub.events()) >= 20, 30), b.text()
    assert {e["seq"] for e in sub.events()} == set(range(1, 21))


def test_tls_wrong_ca_refused_without_crash(tls_broker, board_factory, subscriber_factory):
    pki, tls_port, plain_port = tls_broker
    sub = subscriber_factory(plain_port)
    b = board_factory(app=LOADGEN)
    shutil.copy(pki / "other.pem", b.flash / "ca.pem")
    b.write_config(board_config(tls_port, broker={"tls": True, "ca_file": "ca.pem"},
                                app={"rate_hz": 10, "count": 5}))
    b.start()
    assert b.wait_console("mqtt: connect failed", 15), b.text()
    import time
    time.sleep(2)
    assert b.alive()
    assert not sub.events()
