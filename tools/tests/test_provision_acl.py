"""Provisioned credentials and ACL on a real Mosquitto: a cart's boards reach
only their own cart's topics; the gateway reaches every cart."""
import os
import queue
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from cart_flash import provision
from cart_testing.broker import MOSQUITTO, free_port


# As root, mosquitto drops to its own user, which cannot read pytest's private
# tmp dir (on the gateway the files belong to the mosquitto user instead).
ROOT_USER = "user root\n" if os.geteuid() == 0 else ""


@pytest.fixture
def store(tmp_path):
    creds = provision.provision(tmp_path / "prov", ["c001", "c002"], "gw1", ["desk1"])
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(provision.mosquitto_conf(port, tmp_path / "prov" / "mosquitto.passwd",
                                             tmp_path / "prov" / "mosquitto.acl", bind="127.0.0.1")
                    + ROOT_USER)
    log = open(tmp_path / "mosquitto.log", "wb")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    import socket
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    yield port, creds["users"]
    proc.terminate()
    proc.wait(5)


class Peer:
    def __init__(self, port, user, password):
        self.msgs = queue.Queue()
        self.connected = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user)
        self.c.username_pw_set(user, password)
        self.c.on_connect = lambda c, u, f, rc, p: self.connected.put(rc)
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, m.payload))
        self.subacks = queue.Queue()
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.rc = self.connected.get(timeout=30)   # generous: a loaded machine

    def sub(self, topic):
        self.c.subscribe(topic, 1)
        self.subacks.get(timeout=30)   # the SUBACK, not a fixed wait

    def pub(self, topic, payload, retain=False):
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(30)

    def got(self, timeout):
        out = []
        end = time.time() + timeout
        while time.time() < end:
            try:
                out.append(self.msgs.get(timeout=0.1))
            except queue.Empty:
                pass
        return out

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_wrong_password_is_refused(store):
    port, users = store
    p = Peer(port, "cart-c001-scale", "not-the-password")
    try:
        assert p.rc.is_failure
    finally:
        p.close()


def test_cart_cannot_publish_under_another_cart(store):
    port, users = store
    c002 = Peer(port, "cart-c002-scale", users["cart-c002-scale"])
    gw = Peer(port, "gateway-gw1", users["gateway-gw1"])
    c001 = Peer(port, "cart-c001-scale", users["cart-c001-scale"])
    try:
        assert not c001.rc.is_failure and not c002.rc.is_failure and not gw.rc.is_failure
        c002.sub("carts/c002/#")
        gw.sub("carts/#")
        c001.pub("carts/c002/scale/evt", b'{"forged":1}')   # another cart: dropped by the broker
        c001.pub("carts/c001/scale/evt", b'{"own":1}')      # its own: delivered (control)
        assert c002.got(1.0) == []
        got, end = gw.got(1.0), time.time() + 30   # the control must arrive: wait for it
        while ("carts/c001/scale/evt", b'{"own":1}') not in got and time.time() < end:
            got += gw.got(0.2)
        assert ("carts/c001/scale/evt", b'{"own":1}') in got
        assert all(t != "carts/c002/scale/evt" for t, _ in got)
    finally:
        for p in (c001, c002, gw):
            p.close()


def test_cart_cannot_read_the_review_queue_or_other_carts(store):
    port, users = store
    gw = Peer(port, "gateway-gw1", users["gateway-gw1"])
    desk = Peer(port, "review-desk1", users["review-desk1"])
    c001 = Peer(port, "cart-c001-cam", users["cart-c001-cam"])
    try:
        gw.pub("gateway/gw1/review/queue", b'{"v":1,"reviews":[]}', retain=True)
        gw.pub("carts/c002/basket", b'{"v":1}', retain=True)
        c001.sub("gateway/gw1/review/queue")
        c001.sub("carts/c002/#")
        c001.sub("#")
        desk.sub("gateway/gw1/review/queue")
        assert c001.got(1.0) == []
        assert desk.got(1.0) == [("gateway/gw1/review/queue", b'{"v":1,"reviews":[]}')]
    finally:
        for p in (gw, desk, c001):
            p.close()


def test_reprovision_keeps_existing_passwords(tmp_path):
    a = provision.provision(tmp_path, ["c001"], "gw1", [])
    b = provision.provision(tmp_path, ["c001", "c002"], "gw1", [], existing=a["users"])
    assert b["users"]["cart-c001-scale"] == a["users"]["cart-c001-scale"]
    assert "cart-c002-cam" in b["users"]
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0


def test_secrets_are_not_readable_by_others(tmp_path):
    out = tmp_path / "creds"
    os.umask(0o022)  # a usual umask must not leak them
    provision.provision(out, ["c001"], "gw1", [])
    assert out.stat().st_mode & 0o777 == 0o700
    assert (out / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert (out / "mosquitto.passwd").stat().st_mode & 0o777 == 0o600
    assert (out / "mosquitto.acl").stat().st_mode & 0o777 == 0o640
    assert not list(out.glob("*.tmp"))
    text = (out / "mosquitto.passwd").read_text()
    creds = provision.json.loads((out / "credentials.json").read_text())
    assert all(pw not in text for pw in creds["users"].values())  # hashed, never in clear


def test_bad_ids_are_refused(tmp_path):
    with pytest.raises(Exception, match="cart id 'C 1'"):
        provision.provision(tmp_path, ["C 1"], "gw1", [])


def test_provision_cli_adds_the_optional_roles(tmp_path):
    from cart_flash import cli
    out = tmp_path / "creds"
    assert cli.main(["provision", "--out", str(out), "--carts", "c001", "--gateway", "gw1", "--review", "desk1",
                     "--web", "staff1", "--exit", "gate1", "--bench", "rig1", "--fleet-bridge"]) == 0
    roles = provision.json.loads((out / "credentials.json").read_text())["roles"]
    assert roles == {"gateway-gw1": "gateway", "cart-c001-scale": "board", "cart-c001-cam": "board",
                     "screen-c001": "screen", "review-desk1": "review", "web-staff1": "web",
                     "exit-gate1": "exit", "bench-rig1": "bench", "fleet-gw1": "fleet-bridge"}
    acl = (out / "mosquitto.acl").read_text()
    assert "readwrite" not in acl and "topic read #" not in acl
