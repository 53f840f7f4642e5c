"""The runtime with a board app under the scale board's heap budget
(-X heapsize=96k): runs for a minute (slow variant: five) through a broker
restart and a stream of events and commands, without MemoryError. Prints the
high-water mark of the live heap."""
import json
import time

import pytest

from fwtest import LOADGEN, Broker, board_config

pytestmark = pytest.mark.micropython

BUDGET = 96 * 1024


def soak(tmp_path, board_factory, subscriber_factory, seconds):
    broker = Broker(tmp_path, persistence=True).start()
    try:
        sub = subscriber_factory(broker.port)
        b = board_factory(app=LOADGEN, heap="96k")
        b.write_config(board_config(broker.port, app={"rate_hz": 10, "count": 0}, tele_s=2,
                                    journal={"max_bytes": 65536}))
        b.start()
        t0 = time.time()
        i = 0
        restarted = False
        while time.time() - t0 < seconds:
            time.sleep(1.0)
            i += 1
            sub.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": f"h{i}", "cmd": "status"}))
            if not restarted and time.time() - t0 > seconds / 2:
                broker.stop()
                time.sleep(3)
                broker.start()
                restarted = True
            assert b.alive(), b.text()[-2000:]
        assert sub.wait(lambda: sub.on("/tele") and json.loads(sub.on("/tele")[-1][1])["uptime_s"] >= seconds - 5, 20)
        text = b.text()
        assert "MemoryError" not in text, text[-3000:]
        teles = [json.loads(p) for t, p, r in sub.on("/tele")]
        peak = max(t["heap_peak"] for t in teles)
        low = min(t["heap_free"] for t in teles)
        n = len({(e["epoch"], e["seq"]) for e in sub.events()})
        print(f"\nheap budget {BUDGET} B, live-heap high-water {peak} B ({100 * peak / BUDGET:.0f}%), "
              f"lowest free after gc {low} B, {n} events delivered, {seconds} s")
        assert peak < BUDGET
        assert n >= seconds * 10 * 0.8
    finally:
        broker.stop()


def test_heap_scale_96k_one_minute(tmp_path, board_factory, subscriber_factory):
    soak(tmp_path, board_factory, subscriber_factory, 60)


@pytest.mark.slow
def test_heap_scale_96k_five_minutes(tmp_path, board_factory, subscriber_factory):
    soak(tmp_path, board_factory, subscriber_factory, 300)
