"""TLS with a store CA made at test time (openssl): Mosquitto serves the
provisioned certificate; a client verifying against the CA connects, one
holding another CA is refused. Nothing here is committed: keys live in tmp."""
import os
import queue
import socket
import ssl
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from cart_flash import provision
from cart_testing.broker import MOSQUITTO, free_port

ROOT_USER = "user root\n" if os.geteuid() == 0 else ""


@pytest.fixture
def tls_broker(tmp_path):
    ca = provision.make_ca(tmp_path / "ca")
    cert, key = provision.make_server_cert(tmp_path / "ca", tmp_path / "ca", ["127.0.0.1", "localhost"])
    creds = provision.provision(tmp_path / "prov", ["c001"], "gw1", [])
    port, local = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(provision.mosquitto_conf(port, tmp_path / "prov" / "mosquitto.passwd",
                                             tmp_path / "prov" / "mosquitto.acl", bind="127.0.0.1",
                                             tls=(ca, cert, key), local_port=local) + ROOT_USER)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=open(tmp_path / "m.log", "wb"),
                            stderr=subprocess.STDOUT)
    # Both listeners: mosquitto listens on them one after the other, and a loaded
    # machine ran the loopback test between the two (connection refused).
    deadline = time.time() + 30
    for p in (port, local):
        while True:
            try:
                socket.create_connection(("127.0.0.1", p), 0.2).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "m.log").read_text())
                time.sleep(0.05)
    yield port, ca, creds["users"], local
    proc.terminate()
    proc.wait(5)


def _connect(port, ca, user, password):
    got = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user)
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=str(ca))
    c.on_connect = lambda cl, u, f, rc, p: got.put(rc)
    c.on_message = lambda cl, u, m: got.put((m.topic, m.payload))
    c.subacks = queue.Queue()
    c.on_subscribe = lambda cl, u, mid, rcs, p: c.subacks.put(rcs)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def test_client_verifying_the_store_ca_connects_and_publishes(tls_broker):
    port, ca, users, _ = tls_broker
    c, got = _connect(port, ca, "cart-c001-scale", users["cart-c001-scale"])
    gw, gw_got = _connect(port, ca, "gateway-gw1", users["gateway-gw1"])
    try:
        assert not got.get(timeout=30).is_failure
        assert not gw_got.get(timeout=30).is_failure
        c.subscribe("carts/c001/scale/cmd", 1)
        c.subacks.get(timeout=30)   # the SUBACK, not a fixed wait
        # the gateway's command reaches the board (the board may only read its cmd topic)
        gw.publish("carts/c001/scale/cmd", b"x", qos=1).wait_for_publish(30)
        assert got.get(timeout=30) == ("carts/c001/scale/cmd", b"x")
    finally:
        for cl in (c, gw):
            cl.loop_stop()
            cl.disconnect()


def test_wrong_ca_is_refused(tls_broker, tmp_path):
    port, _ca, users, _ = tls_broker
    other = provision.make_ca(tmp_path / "other", name="not-the-store")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cart-c001-scale")
    c.username_pw_set("cart-c001-scale", users["cart-c001-scale"])
    c.tls_set(ca_certs=str(other))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        c.connect("127.0.0.1", port)


def test_plain_tcp_to_the_tls_listener_gets_nowhere(tls_broker):
    port, _ca, users, _ = tls_broker
    got = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cart-c001-scale")
    c.username_pw_set("cart-c001-scale", users["cart-c001-scale"])
    c.on_connect = lambda cl, u, f, rc, p: got.put(rc)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        with pytest.raises(queue.Empty):
            got.get(timeout=2)  # no CONNACK ever comes over plain TCP
    finally:
        c.loop_stop()
        c.disconnect()


def test_the_loopback_listener_still_needs_a_password(tls_broker):
    _port, _ca, users, local = tls_broker
    for user, pw, ok in (("gateway-gw1", users["gateway-gw1"], True), (None, None, False)):
        got = queue.Queue()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gateway-gw1")
        if user:
            c.username_pw_set(user, pw)
        c.on_connect = lambda cl, u, f, rc, p: got.put(rc)
        c.connect("127.0.0.1", local)
        c.loop_start()
        try:
            assert got.get(timeout=30).is_failure is not ok, user
        finally:
            c.loop_stop()
            c.disconnect()
