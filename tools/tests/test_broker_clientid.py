"""Client ids bound to users (issue 11 §3), on the real Mosquitto with the
config `cart-flash provision` writes: with one cart board's password and the
client id `gateway-gw1`, a client took over the gateway's persistent session
again and again, and acknowledged events of another cart were lost for good.
The same trick kicked any board off."""
import json
import threading
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cart_testing.broker import SecureBroker
from cart_testing.peer import Peer


@pytest.fixture
def broker(tmp_path):
    b = SecureBroker(tmp_path, carts=("c001", "c002"), gateway="gw1").start()
    yield b
    b.stop()


def gateway_like(b):
    """A client holding the gateway's session as the gateway does (MQTT 5,
    clean_start=False, session expiry, QoS 1 subscription made on every connect)."""
    g = Peer(b.port, "gateway-gw1", b.users["gateway-gw1"], client_id="gateway-gw1", v5=True)
    g.c.reconnect_delay_set(0.1, 0.5)
    inner = g.c.on_connect

    def on_connect(c, u, f, rc, p):
        if not rc.is_failure:
            c.subscribe("carts/+/+/evt", 1)
        inner(c, u, f, rc, p)
    g.c.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    assert not g.connect(clean_start=False, properties=props).is_failure
    g._subacks.get(timeout=30)  # the SUBACK: events published from now on are the gateway's
    return g


def attacker_loop(b, client_id, stop, n):
    """Connect with cart c001's scale credentials under a stolen client id, clean session, n times."""
    for _ in range(n):
        if stop.is_set():
            return
        a = Peer(b.port, "cart-c001-scale", b.users["cart-c001-scale"], client_id=client_id, clean=True)
        try:
            a.connect()
            time.sleep(0.3)
        except Exception:
            pass
        finally:
            a.close()
        time.sleep(0.2)


def test_a_board_password_cannot_take_over_the_gateway_session(broker):
    gw = gateway_like(broker)
    board = Peer(broker.port, "cart-c002-scale", broker.users["cart-c002-scale"])
    assert not board.connect().is_failure
    stop = threading.Event()
    t = threading.Thread(target=attacker_loop, args=(broker, "gateway-gw1", stop, 5))
    try:
        t.start()
        for seq in range(1, 81):  # each acknowledged by the broker (wait_for_publish)
            board.pub("carts/c002/scale/evt", json.dumps({"seq": seq}).encode())
            time.sleep(0.03)
        t.join(20)
        got, end = set(), time.monotonic() + 30   # until all arrive (a loaded machine is slow), or lost
        while got < set(range(1, 81)) and time.monotonic() < end:
            got |= {json.loads(p)["seq"] for topic, p, _ in gw.got(0.5) if topic == "carts/c002/scale/evt"}
        assert sorted(set(range(1, 81)) - got) == [], "acknowledged events lost"
        assert gw.disconnects == 0, "the gateway was kicked off its own session"
    finally:
        stop.set()
        t.join(20)
        board.close()
        gw.close()


def test_a_board_password_cannot_kick_another_cart_off(broker):
    victim = Peer(broker.port, "cart-c002-cam", broker.users["cart-c002-cam"], clean=False)
    assert not victim.connect().is_failure
    stop = threading.Event()
    try:
        attacker_loop(broker, "cart-c002-cam", stop, 3)
        time.sleep(0.3)
        assert victim.disconnects == 0
    finally:
        victim.close()


def test_the_broker_names_a_client_by_its_user_not_its_claim(broker):
    # The gateway's own id and name agree: it still gets its session back.
    g1 = gateway_like(broker)
    g1.close()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    g2 = Peer(broker.port, "gateway-gw1", broker.users["gateway-gw1"], client_id="gateway-gw1", v5=True)
    flags = []
    g2.c.on_connect = lambda c, u, f, rc, p: (flags.append(f.session_present), g2.connects.put(rc))
    try:
        assert not g2.connect(clean_start=False, properties=props).is_failure
        assert flags == [True]
    finally:
        g2.close()
    # A client with no user name is refused outright (no id to bind to).
    anon = Peer(broker.port, None, None, client_id="gateway-gw1")
    try:
        assert anon.connect().is_failure
    finally:
        anon.close()
