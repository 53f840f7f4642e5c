"""Each board's real firmware (scale app, camera app) runs under its heap
budget for a while, with items going in and out, without a MemoryError or a
restart; the heap high-water mark from telemetry is printed (run with -s).
The default run is 40 s; `-m slow` runs 10 minutes."""
import json
import random
import time

import pytest

from cart_testing.watch import Watcher


def _soak(mosquitto, virtual_boards, seconds):
    w = Watcher(mosquitto.port)
    scale = virtual_boards("sim-scale", "c001")
    cam = virtual_boards("sim-cam", "c001")
    for vb in (scale, cam):
        cfg = vb.default_config()
        cfg["tele_s"] = 5
        vb.flash(cfg)
        vb.power_on()
    frame = (json.dumps({"pad": "x" * 15000}).encode())  # camera payload: bytes of a frame's size
    rng = random.Random(7)
    try:
        w.wait(lambda: all((w.json(f"carts/c001/{b}/status") or {}).get("state") == "online"
                           for b in ("scale", "cam")), 20, "boards online")
        time.sleep(1.0)
        total, end = 0.0, time.monotonic() + seconds
        while time.monotonic() < end:
            cam.push_frame(frame)
            total = max(0.0, total + rng.choice((1, 1, -1)) * rng.uniform(50, 900))
            scale.cell.ramp_to(total, 250)
            time.sleep(2.0)
        time.sleep(6)  # one more telemetry period
        for vb, name in ((scale, "sim-scale"), (cam, "sim-cam")):
            text = vb.console_text()
            assert "MemoryError" not in text, text[-2000:]
            assert vb.restarts == 0, text[-2000:]
            teles = [json.loads(p) for t, p in w.all if t == f"carts/c001/{name[4:]}/tele"]
            assert teles, f"{name}: no telemetry"
            peak = max(t["heap_peak"] for t in teles)
            print(f"{name}: heap high-water {peak} of {vb.heap} bytes ({100 * peak / vb.heap:.0f}%), "
                  f"lowest free {min(t['heap_free'] for t in teles)}, {len(teles)} telemetry messages")
        assert w.events("weight"), "no weight events during the soak"
        assert w.events("capture"), "no capture bursts during the soak"
    finally:
        w.close()


def test_both_boards_soak_within_their_heap(mosquitto, virtual_boards):
    _soak(mosquitto, virtual_boards, 40)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_both_boards_soak_ten_minutes(mosquitto, virtual_boards):
    _soak(mosquitto, virtual_boards, 600)
