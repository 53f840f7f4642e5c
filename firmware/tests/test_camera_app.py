# The camera app (cartfw.apps.camera) with the sim camera driver, inside the
# real micropython binary. The runtime here is a small stand-in implementing
# the documented component API (docs/architecture.md) and recording what the
# app does; frames come from a fake hardware link (take_frame()). The real
# runtime + Mosquitto path is test_camera_mqtt.py.
import json

import pytest

from camera_mpy import BURST_FRAMES as FRAMES, BURST_N as N, run_mpy

pytestmark = pytest.mark.micropython

SCRIPT = r"""
import asyncio, json, time
import camera_drv
from cartfw.apps import camera as app_mod

class Link:
    def __init__(self):
        self.q = []
    def take_frame(self):
        return self.q.pop(0) if self.q else None

class Hal:
    def __init__(self, link):
        self.lk = link
    def camera(self, cfg):
        return camera_drv.open(cfg, self.lk)

class Rt:
    def __init__(self, hal, app_cfg, net_ok=True):
        self.cfg = {"cart": "c001", "board": "cam", "app": app_cfg}
        self.cart, self.board, self.epoch = "c001", "cam", 7
        self.hal = hal
        self.events, self.subs, self.cmds, self.tele = [], {}, {}, []
        self.chunks = []
        self.net_ok = net_ok
        self.t0 = time.ticks_ms()
    def clock(self):
        return time.ticks_diff(time.ticks_ms(), self.t0), None, False
    def event(self, typ, fields):
        self.events.append([typ, fields])
        return len(self.events)
    async def publish_frame_chunk(self, buf, timeout_ms=5000):
        await asyncio.sleep(0.001)
        if not self.net_ok:
            return False
        self.chunks.append(bytes(buf))
        return True
    def subscribe(self, topic, cb):
        self.subs[topic] = cb
    def command(self, name, handler):
        self.cmds[name] = handler
    def tele_provider(self, fn):
        self.tele.append(fn)

def unsettled(seq):
    return json.dumps({"v": 1, "cart": "c001", "board": "scale", "epoch": 3, "seq": seq,
                       "mono_ms": 1, "wall_ms": None, "synced": False, "type": "unsettled",
                       "total_g": 0.0}).encode()

def frames_of(rt):
    return sorted(set(int.from_bytes(c[8:12], "big") for c in rt.chunks))

async def until(pred, ms=20000):
    # wait for what must happen (however slow a loaded machine is), not a fixed time
    t0 = time.ticks_ms()
    while not pred() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(10)

async def main():
    out = {}
    link = Link()
    link.q = [b"\xff\xd8" + bytes([k]) * (1500 + k) + b"\xff\xd9" for k in range(3)]
    rt = Rt(Hal(link), {"motion": False, "burst_gap_ms": 20, "frame_max": 8192,
                               "still": False})
    await app_mod.start(rt)
    out["subs"] = list(rt.subs)
    out["cmds"] = list(rt.cmds)
    cb = rt.subs["carts/c001/scale/evt"]
    cb("carts/c001/scale/evt", unsettled(17))
    cb("carts/c001/scale/evt", unsettled(17))  # replay: no second burst
    await until(lambda: rt.events)
    await asyncio.sleep(0.5)                    # time for a (wrong) second burst
    out["unsettled"] = rt.events[:]
    out["unsettled_frames"] = frames_of(rt)
    # command: 2 frames; the queue is empty, so the camera repeats its last view
    rt.events.clear()
    out["cmd"] = await rt.cmds["capture"]({"frames": 2})
    out["cmd_events"] = rt.events[:]
    for bad in ({"frames": 9}, {"frames": True}, {"n": 2}):
        try:
            await rt.cmds["capture"](bad)
            out.setdefault("bad", []).append("accepted")
        except ValueError as e:
            out.setdefault("bad", []).append(str(e))
    # the gateway's retake: the capture event carries the movement's ref back
    rt.events.clear()
    out["cmd_ref"] = await rt.cmds["capture"]({"frames": 1, "ref": "c001/scale/0123456789abcdef/3/17"})
    out["cmd_ref_events"] = rt.events[:]
    rt.events.clear()
    for bad in ({"frames": 1, "ref": ""}, {"frames": 1, "ref": 17}, {"frames": 1, "ref": "r" * 97}):
        try:
            await rt.cmds["capture"](bad)
            out.setdefault("bad_ref", []).append("accepted")
        except ValueError as e:
            out.setdefault("bad_ref", []).append(str(e))
    out["bad_ref_events"] = rt.events[:]
    # offline: frames captured, none published -> an error event, command fails
    rt.events.clear()
    rt.net_ok = False
    try:
        await rt.cmds["capture"]({})
        out["offline"] = "accepted"
    except RuntimeError as e:
        out["offline"] = str(e)
    out["offline_events"] = rt.events[:]
    out["tele"] = rt.tele[0]()
    # motion: a second app on a fresh camera, frames change size after warm-up
    link2 = Link()
    rt2 = Rt(Hal(link2), {"motion": True, "motion_ms": 50, "burst_gap_ms": 10, "burst_frames": 2,
                       "frame_max": 8192, "still": False})
    await app_mod.start(rt2)
    for i in range(8):
        link2.q.append(b"\xff\xd8" + b"e" * (4000 + (i % 2) * 10))
        await asyncio.sleep(0.06)
    link2.q.append(b"\xff\xd8" + b"I" * 6000)  # an item: +2000 bytes
    await until(lambda: rt2.events)
    await asyncio.sleep(0.6)                    # time for a (wrong) second capture
    out["motion_events"] = rt2.events[:]
    # no camera frames at all: the capture times out -> camera_fail
    rt3 = Rt(Hal(Link()), {"motion": False, "capture_timeout_ms": 100, "frame_max": 8192,
                       "still": False})
    await app_mod.start(rt3)
    try:
        await rt3.cmds["capture"]({"frames": 1})
    except RuntimeError as e:
        out["dead"] = str(e)
    out["dead_events"] = rt3.events[:]
    # bad settings name the key
    try:
        await app_mod.start(Rt(Hal(Link()), {"burst_frames": 0}))
    except ValueError as e:
        out["bad_cfg"] = str(e)
    try:
        await app_mod.start(Rt(Hal(Link()), {"burst_framez": 3}))
    except ValueError as e:
        out["bad_key"] = str(e)
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    return json.loads(run_mpy(SCRIPT, tmp_path_factory.mktemp("app"), heap="512k"))


def test_registers_subscription_and_command(r):
    assert r["subs"] == ["carts/c001/scale/evt"]
    assert r["cmds"] == ["capture"]


def test_unsettled_burst_journals_capture_with_ref(r):
    assert len(r["unsettled"]) == 1  # the replayed event did not burst again
    typ, f = r["unsettled"][0]
    assert typ == "capture"
    assert f["trigger"] == "unsettled" and f["ref"] == "c001/scale/3/17"
    assert f["frames"] == FRAMES and len(f["frame_ms"]) == N
    assert f["frame_ms"] == sorted(f["frame_ms"])
    assert r["unsettled_frames"] == FRAMES


def test_capture_command(r):
    assert r["cmd"] == {"burst": [N + 1, N + 2]}
    assert r["cmd_events"][0][0] == "capture"
    assert r["cmd_events"][0][1]["trigger"] == "command" and r["cmd_events"][0][1]["ref"] is None
    assert ["1..8" in b for b in r["bad"]] == [True, True, False]
    assert r["bad"][2] == "args.n: unknown key"


def test_capture_command_with_a_ref_carries_it_back(r):
    """The gateway's retake (reconcile/retake.py) names the movement: its burst joins it."""
    assert r["cmd_ref"] == {"burst": [N + 3]}
    (typ, f), = r["cmd_ref_events"]
    assert typ == "capture" and f["trigger"] == "command" and f["ref"] == "c001/scale/0123456789abcdef/3/17"
    assert r["bad_ref"] == ["args.ref: must be a string of 1..96 characters"] * 3
    assert r["bad_ref_events"] == []      # a refused command captures nothing


def test_offline_burst_reports_error(r):
    assert r["offline"].startswith("no frame published")
    assert [e[0] for e in r["offline_events"]] == ["error"]
    assert r["offline_events"][0][1]["code"] == "frame_unsent"
    assert r["tele"]["cam"]["frames_failed"] == N


def test_motion_trigger(r):
    caps = [f for t, f in r["motion_events"] if t == "capture"]
    assert len(caps) == 1, r["motion_events"]
    assert caps[0]["trigger"] == "motion" and caps[0]["ref"] is None
    assert caps[0]["frames"] == [1, 2]


def test_dead_sensor(r):
    assert "no frame within 100 ms" in r["dead"]
    assert r["dead_events"][0][1]["code"] == "camera_fail"


def test_bad_settings_name_the_key(r):
    assert r["bad_cfg"].startswith("config app.burst_frames: must be an integer 1..8")
    assert r["bad_key"] == "config app.burst_framez: unknown key"
