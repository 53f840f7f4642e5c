"""The firmware's MQTT client against the real Mosquitto through a proxy that
misbehaves: a half-open connection, PUBACKs that never come, garbage and
oversized input. The client must notice, recover and lose nothing."""
import json
import re
import time

import pytest

from fwtest import LOADGEN, board_config, identities

pytestmark = pytest.mark.micropython


def last_tele(sub):
    t = sub.on("/tele")
    return json.loads(t[-1][1]) if t else {}


def all_delivered(sub, n):
    return len(set(identities(sub.events()))) >= n


def check_identities(sub, n):
    evs = sub.events()
    assert set(identities(evs)) == {f"c001/scale/1/{i}" for i in range(1, n + 1)}
    first = {}
    for e in evs:
        assert first.setdefault(e["seq"], e) == e  # duplicates are the same event
    return len(evs) - n


def test_half_open_connection_detected_by_keepalive(mosquitto, proxy_factory, board_factory, subscriber_factory):
    sub = subscriber_factory(mosquitto.port)
    proxy = proxy_factory(mosquitto.port)
    b = board_factory(app=LOADGEN)
    n = 120
    b.write_config(board_config(proxy.port, app={"rate_hz": 20, "count": n}))
    b.start()
    assert sub.wait(lambda: len(sub.events()) >= 30, 15), b.text()
    t0 = time.time()
    proxy.freeze()  # the peer stops answering; nothing is closed
    assert b.wait_console("keepalive", 15), (b.text(), proxy.events)
    detect_s = time.time() - t0
    assert sub.wait(lambda: all_delivered(sub, n), 30), b.text()[-2000:]
    dups = check_identities(sub, n)
    assert proxy.accepts >= 2
    # keepalive 4 s: pings every 1 s, dead after 2 s of silence, as the board measured it
    # (its own clock: the host's view below adds however long a loaded machine delays both)
    silent = [int(x) for x in re.findall(r"keepalive: broker silent for (\d+) ms", b.text())]
    assert silent and 2000 < silent[0] < 5000, (silent, b.text()[-2000:])
    assert detect_s < 12, detect_s
    print(f"half-open detected after {detect_s:.1f} s (board: {silent[0]} ms of silence); duplicates {dups}")


def test_missing_puback_retransmits_with_dup_then_reconnects(mosquitto, proxy_factory, board_factory,
                                                            subscriber_factory):
    sub = subscriber_factory(mosquitto.port)
    proxy = proxy_factory(mosquitto.port)
    b = board_factory(app=LOADGEN)
    n = 60
    b.write_config(board_config(proxy.port, app={"rate_hz": 20, "count": n},
                                broker={"ack_ms": 500}))
    b.start()
    assert sub.wait(lambda: len(sub.events()) >= 10, 15), b.text()
    proxy.drop_pubacks = True
    assert b.wait_console("no PUBACK after 2 retransmissions", 10), b.text()
    proxy.drop_pubacks = False
    assert sub.wait(lambda: all_delivered(sub, n), 30), b.text()[-2000:]
    dups = check_identities(sub, n)
    assert dups >= 1  # the broker got the unacknowledged copies too
    assert proxy.dropped >= 3
    assert proxy.accepts >= 2
    assert sub.wait(lambda: last_tele(sub).get("retransmits", 0) >= 2, 10)
    print(f"pubacks dropped {proxy.dropped}, duplicates delivered {dups}, tele {last_tele(sub)}")


def test_garbage_from_broker_drops_connection_and_recovers(mosquitto, proxy_factory, board_factory,
                                                          subscriber_factory):
    sub = subscriber_factory(mosquitto.port)
    proxy = proxy_factory(mosquitto.port)
    b = board_factory(app=LOADGEN)
    n = 80
    b.write_config(board_config(proxy.port, app={"rate_hz": 20, "count": n}))
    b.start()
    assert sub.wait(lambda: len(sub.events()) >= 10, 15), b.text()
    proxy.inject(b"\x00\xff\xff\xff\xff\x7f")  # packet type 0, 5-byte length
    assert b.wait_console("unexpected packet", 10) or b.wait_console("remaining length", 1), b.text()
    assert sub.wait(lambda: all_delivered(sub, n), 30), b.text()[-2000:]
    check_identities(sub, n)
    assert b.alive()
    assert proxy.accepts >= 2
    assert sub.wait(lambda: last_tele(sub).get("protocol_errors", 0) >= 1, 10)


def test_oversized_message_is_discarded_and_counted(mosquitto, board_factory, subscriber_factory):
    sub = subscriber_factory(mosquitto.port)
    b = board_factory(app=LOADGEN)
    b.write_config(board_config(mosquitto.port, app={"rate_hz": 5, "count": 0}))
    b.start()
    assert sub.wait(lambda: len(sub.on("/status")) >= 1, 15), b.text()
    big = b'{"v":1,"id":"big","cmd":"status","args":{"pad":"' + b"x" * 20000 + b'"}}'
    sub.publish("carts/c001/scale/cmd", big)
    sub.publish("carts/c001/scale/cmd", b'{"v":1,"id":"after","cmd":"status"}')
    assert sub.wait(lambda: any(b'"after"' in p for t, p, r in sub.on("/cmd/res")), 10), b.text()
    res = [json.loads(p) for t, p, r in sub.on("/cmd/res")]
    after = [r for r in res if r["id"] == "after"][0]
    assert after["ok"] and after["result"]["rx_oversize"] == 1
    assert after["result"]["reconnects"] == 0  # survived without dropping the connection
    assert not any(r["id"] == "big" for r in res)
    assert "oversized" in b.text()
