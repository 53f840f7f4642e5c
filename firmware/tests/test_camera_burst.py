# The burst scheduler (cartfw.camera.burst) inside the real micropython binary.
# publish() here is a coroutine the test controls: it holds each chunk until the
# test's "broker" acknowledges it, so the in-flight bound is observed, not
# assumed. (The network path is covered by test_camera_mqtt.py.)
import json

import pytest

from camera_mpy import run_mpy

pytestmark = pytest.mark.micropython

SCRIPT = r"""
import asyncio, json, time
from cartfw.camera.burst import Burster

def u32(mv, o):
    return int.from_bytes(bytes(mv[o:o + 4]), "big")

def u16(mv, o):
    return int.from_bytes(bytes(mv[o:o + 2]), "big")

class Net:
    # Holds every chunk until ack_loop acknowledges it, oldest first.
    def __init__(self, fail=None):
        self.waiting = []
        self.open = {}        # frame -> chunks started, frame not yet complete
        self.done = []        # frames fully acknowledged, in order
        self.starts = []      # (frame, done_count) when a frame's first chunk went out
        self.peak = 0
        self.order_ok = True
        self.last_index = {}
        self.fail = fail      # (frame, index) to refuse
        self.data = {}

    async def publish(self, mv, timeout_ms):
        frame, index, count = u32(mv, 8), u16(mv, 12), u16(mv, 14)
        if index == 0:
            self.starts.append((frame, len(self.done)))
        if self.last_index.get(frame, -1) != index - 1:
            self.order_ok = False
        self.last_index[frame] = index
        self.open[frame] = True
        if len(self.open) > self.peak:
            self.peak = len(self.open)
        ev = asyncio.Event()
        self.waiting.append(ev)
        await ev.wait()
        if self.fail == (frame, index):
            del self.open[frame]
            return False
        self.data.setdefault(frame, []).append(bytes(mv[24:]))
        if index == count - 1:
            del self.open[frame]
            self.done.append(frame)
        return True

    async def ack_loop(self):
        while True:
            await asyncio.sleep(0.002)
            if self.waiting:
                self.waiting.pop(0).set()

class Cam:
    def __init__(self, frames):
        self.frames = list(frames)
    async def capture(self, timeout_ms):
        await asyncio.sleep(0)
        return self.frames.pop(0) if self.frames else None

def clock():
    return time.ticks_ms()

async def main():
    out = {}
    # 1. 8 frames of 3 chunks each, slow acks: the bound holds and is reached.
    frames = [bytes([k]) * (2100 + k) for k in range(1, 9)]
    net, cam = Net(), Cam(frames)
    ack = asyncio.create_task(net.ack_loop())
    b = Burster(cam.capture, net.publish, clock, 5, chunk_size=1024, frame_max=4096, gap_ms=0)
    f, ms, ok = await b.run(8)
    out["bound"] = {"frames": f, "ok": ok, "peak": net.peak, "starts": net.starts,
                    "order_ok": net.order_ok, "peak_b": b.peak_inflight, "free": len(b.free),
                    "intact": all(b"".join(net.data[k + 1]) == frames[k] for k in range(8))}
    # 2. A refused chunk abandons that frame only; slots all come back; numbering goes on.
    net2 = Net(fail=(10, 1))
    ack.cancel()
    ack = asyncio.create_task(net2.ack_loop())
    b.publish = net2.publish
    b.capture = Cam([b"a" * 3000, b"b" * 3000, b"c" * 3000]).capture
    f, ms, ok = await b.run(3)
    out["fail"] = {"frames": f, "ok": ok, "free": len(b.free), "stats": dict(b.stats)}
    # 3. Oversized frame rejected (number not consumed), then the sensor goes silent.
    b.capture = Cam([b"x" * 5000, b"y" * 100]).capture
    f, ms, ok = await b.run(4)
    out["reject"] = {"frames": f, "ok": ok, "err": b.last_error, "stats": dict(b.stats), "free": len(b.free)}
    # 3b. A driver that raises: the burst ends, the slot is not lost.
    async def broken(timeout_ms):
        raise OSError(5)
    b.capture = broken
    f, ms, ok = await b.run(2)
    out["raise"] = {"frames": f, "err": b.last_error, "free": len(b.free)}
    # 4. Spacing: 3 frames 100 ms apart with prompt acks.
    b.gap_ms = 100
    b.capture = Cam([b"p" * 500] * 3).capture
    f, ms, ok = await b.run(3)
    out["gap"] = {"frames": f, "ms": [m - ms[0] for m in ms], "ok": ok}
    # 5. Bad burst length.
    try:
        await b.run(9)
        out["bad_n"] = "accepted"
    except ValueError as e:
        out["bad_n"] = str(e)
    ack.cancel()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return json.loads(run_mpy(SCRIPT, tmp_path_factory.mktemp("burst"), heap="256k"))


def test_in_flight_bound_reached_never_exceeded(result):
    r = result["bound"]
    assert r["frames"] == list(range(1, 9))  # §7: numbering from 1 in the epoch
    assert r["ok"] == [True] * 8 and r["intact"] and r["order_ok"]
    assert r["peak"] == 2 and r["peak_b"] == 2
    # The third and later frames start only after an earlier frame is fully acked.
    for frame, done in r["starts"]:
        assert done >= frame - 2, (frame, done)
    assert r["free"] == 3  # all 3 preallocated slots returned


def test_refused_chunk_abandons_only_that_frame(result):
    r = result["fail"]
    assert r["frames"] == [9, 10, 11]
    assert r["ok"] == [True, False, True]
    assert r["free"] == 3
    assert r["stats"]["frames_failed"] == 1


def test_oversize_rejected_and_silent_sensor_ends_burst(result):
    r = result["reject"]
    assert r["frames"] == [12] and r["ok"] == [True]
    assert "exceeds this slot's capacity of 4096" not in r["err"]  # last error: the silent sensor
    assert "no frame within" in r["err"]
    assert r["stats"]["frames_rejected"] == 1 and r["stats"]["capture_fail"] == 1
    assert r["free"] == 3


def test_driver_exception_ends_burst_without_leaking_a_slot(result):
    r = result["raise"]
    assert r["frames"] == [] and r["free"] == 3
    assert r["err"].startswith("camera: OSError(5")


def test_frames_spaced_by_gap(result):
    r = result["gap"]
    assert r["frames"] == [13, 14, 15] and r["ok"] == [True] * 3
    # on the burst's schedule (t0 + k * gap), never before it; late only by how long a loaded
    # machine keeps the process from running (a generous 250 ms)
    for k, t in enumerate(r["ms"]):
        assert 100 * k - 5 <= t <= 100 * k + 250, r["ms"]


def test_burst_length_validated(result):
    assert "1..8" in result["bad_n"]


def test_burster_runs_under_cpython_too():
    # Pure logic: the same scheduler runs under CPython's asyncio (the simulator
    # may use it); frames reassemble from the published chunks.
    import asyncio
    import time

    from cartfw.camera.burst import Burster

    sent = []
    frames = [bytes([k]) * 3000 for k in range(1, 4)]

    async def capture(timeout_ms):
        return frames.pop(0) if frames else None

    async def publish(mv, timeout_ms):
        await asyncio.sleep(0.001)
        sent.append(bytes(mv))
        return True

    async def main():
        b = Burster(capture, publish, lambda: int(time.monotonic() * 1000), 2, gap_ms=0)
        return await b.run(3), b.peak_inflight

    (nums, ms, ok), peak = asyncio.run(main())
    assert nums == [1, 2, 3] and ok == [True] * 3 and peak == 2
    by = {}
    for c in sent:
        by.setdefault(int.from_bytes(c[8:12], "big"), []).append(c[24:])
    assert [b"".join(by[n]) for n in (1, 2, 3)] == [bytes([k]) * 3000 for k in (1, 2, 3)]
