"""The real firmware against the real Mosquitto: a broker restart in the middle
of a stream of journaled events loses nothing; duplicates keep their identity."""
import time

import pytest

from fwtest import LOADGEN, Broker, board_config, identities

pytestmark = pytest.mark.micropython


def test_broker_restart_mid_stream_loses_nothing(tmp_path, board_factory, subscriber_factory):
    broker = Broker(tmp_path, persistence=True).start()
    try:
        sub = subscriber_factory(broker.port)
        b = board_factory(app=LOADGEN)
        n = 300
        b.write_config(board_config(broker.port, app={"rate_hz": 60, "count": n},
                                    journal={"max_bytes": 262144}))
        b.start()
        assert sub.wait(lambda: len(sub.events()) >= 60, 20), b.text()
        broker.stop()  # mid-stream: the board keeps journaling while offline
        time.sleep(2.0)
        broker.start()
        assert sub.wait(lambda: len(set(identities(sub.events()))) >= n, 60), b.text()[-3000:]
        evs = sub.events()
        ids = identities(evs)
        assert set(ids) == {f"c001/scale/1/{i}" for i in range(1, n + 1)}
        # a duplicate is the same event: same identity, same content
        first = {}
        for e in evs:
            k = (e["epoch"], e["seq"])
            assert first.setdefault(k, e) == e
        assert "reconnect" in b.text() or "connection lost" in b.text()
        print(f"events {n}, delivered {len(evs)} (duplicates {len(evs) - n})")
    finally:
        broker.stop()
