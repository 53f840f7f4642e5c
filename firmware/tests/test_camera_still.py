# Stills (docs/camera.md "Stills", protocol §7.1) from the camera app with the
# sim camera driver, inside the real micropython binary at the camera board's
# heap budget: the settle of a placement, the motion stop and the command each
# take one still, published as §7.1 chunks that the gateway's decoder
# reassembles; bad stills are refused with errors naming the limit.
import json
import zlib

import pytest

from camera_mpy import BURST_N as N, run_mpy
from cart_gateway import protocol as P

pytestmark = pytest.mark.micropython

BUDGET = 2097152  # boards/sim-cam heap_budget (data); the unix port adds code_in_heap

SCRIPT = r"""
import asyncio, gc, json, time
import camera_drv
from cartfw.apps import camera as app_mod

class Link:
    def __init__(self):
        self.q = []
        self.stills = []
    def take_frame(self):
        return self.q.pop(0) if self.q else None
    def take_still(self):
        return self.stills.pop(0) if self.stills else None

class Hal:
    def __init__(self, link):
        self.lk = link
    def camera(self, cfg):
        return camera_drv.open(cfg, self.lk)

PEAK = [0]

class Rt:
    def __init__(self, hal, app_cfg):
        self.cfg = {"cart": "c001", "board": "cam", "app": app_cfg}
        self.cart, self.board, self.epoch = "c001", "cam", 7
        self.hal = hal
        self.events, self.subs, self.cmds, self.tele = [], {}, {}, []
        self.chunks = []
        self.open = {}
        self.peak_open = 0
        self.keep = True
        self.t0 = time.ticks_ms()
    def clock(self):
        return time.ticks_diff(time.ticks_ms(), self.t0), None, False
    def event(self, typ, fields):
        self.events.append([typ, fields])
    async def publish_frame_chunk(self, buf, timeout_ms=5000):
        f = int.from_bytes(bytes(buf[8:12]), "big")
        i, n = int.from_bytes(bytes(buf[12:14]), "big"), int.from_bytes(bytes(buf[14:16]), "big")
        self.open[f] = 1
        self.peak_open = max(self.peak_open, len(self.open))
        a = gc.mem_alloc()
        if a > PEAK[0]:
            PEAK[0] = a
        await asyncio.sleep(0.001)
        if self.keep:
            self.chunks.append(bytes(buf).hex())
        if i == n - 1:
            del self.open[f]
        return True
    def subscribe(self, topic, cb):
        self.subs[topic] = cb
    def command(self, name, handler):
        self.cmds[name] = handler
    def tele_provider(self, fn):
        self.tele.append(fn)

def ev(seq, typ, **kw):
    e = {"v": 1, "cart": "c001", "board": "scale", "epoch": 3, "seq": seq, "mono_ms": 1,
         "wall_ms": None, "synced": False, "type": typ}
    e.update(kw)
    return json.dumps(e).encode()

def weight(seq, delta, useq):
    return ev(seq, "weight", delta_g=delta, total_g=delta, noise_g=0.5, settle_ms=400,
              window={"n": 40, "pre_g": 0.0, "post_g": delta, "min_g": 0.0, "max_g": delta,
                      "std_g": 0.5, "dur_ms": 500, "unsettled_seq": useq})

STILL = open("still.jpg", "rb").read()

def captures(rt):
    return [f for t, f in rt.events if t == "capture"]

async def until(pred, ms=20000):
    # wait for what must happen (however slow a loaded machine is), not a fixed time
    t0 = time.ticks_ms()
    while not pred() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(10)

async def main():
    out = {}
    gc.collect()
    before = gc.mem_alloc()
    link = Link()
    link.q = [b"\xff\xd8" + bytes([k]) * (15000 + k) + b"\xff\xd9" for k in range(3)]
    rt = Rt(Hal(link), {"motion": False, "burst_gap_ms": 20})
    await app_mod.start(rt)
    gc.collect()
    out["heap_after_start"] = gc.mem_alloc() - before
    cb = rt.subs["carts/c001/scale/evt"]
    cb("t", ev(17, "unsettled", total_g=0.0))
    await until(lambda: captures(rt))      # the movement's burst
    link.stills.append(STILL)
    cb("t", weight(18, 350.0, 17))          # the placement settled: one still
    cb("t", weight(18, 350.0, 17))          # replayed: no second still
    await until(lambda: len(captures(rt)) >= 2)
    await asyncio.sleep(1.0)                # time for a (wrong) second still
    out["settle"] = rt.events[:]
    print(json.dumps({"settle": rt.events, "chunks": rt.chunks}))
    rt.events.clear()
    rt.chunks = []
    rt.keep = False
    gc.collect()
    PEAK[0] = 0
    link.stills.append(STILL)
    cb("t", weight(19, -350.0, None))       # a removal: nothing new to read, no still
    await asyncio.sleep(0.3)
    out["removal"] = rt.events[:]
    link.stills.clear()
    # the command
    link.stills.append(STILL)
    out["cmd"] = await rt.cmds["capture"]({"still": True})
    out["cmd_events"] = rt.events[:]
    rt.events.clear()
    for bad in ({"still": 1}, {"still": True, "frames": 2}):
        try:
            await rt.cmds["capture"](bad)
            out.setdefault("bad", []).append("accepted")
        except ValueError as e:
            out.setdefault("bad", []).append(str(e))
    # a still over app.still_max is refused, its slot stays usable
    gc.collect()
    link.stills.append(b"\xff\xd8" + b"x" * 393216)
    try:
        await rt.cmds["capture"]({"still": True})
    except RuntimeError as e:
        out["oversize"] = str(e)
    # the sensor gives no still
    try:
        await rt.cmds["capture"]({"still": True})
    except RuntimeError as e:
        out["none"] = str(e)
    out["fail_events"] = rt.events[:]
    rt.events.clear()
    link.stills.append(STILL)
    out["after"] = await rt.cmds["capture"]({"still": True})
    out["tele"] = rt.tele[0]()
    out["peak_open"] = rt.peak_open
    out["heap_peak"] = PEAK[0] - before
    # motion stop: a motion burst, then quiet frames -> one still
    link2 = Link()
    rt2 = Rt(Hal(link2), {"motion": True, "motion_ms": 50, "burst_gap_ms": 10, "burst_frames": 2,
                          "cooldown_ms": 100, "still_max": 65536, "still_chunk": 1024})
    await app_mod.start(rt2)
    for i in range(8):
        link2.q.append(b"\xff\xd8" + b"e" * (4000 + (i % 2) * 10))
        await asyncio.sleep(0.06)
    link2.stills.append(b"\xff\xd8" + b"S" * 30000 + b"\xff\xd9")
    link2.q.append(b"\xff\xd8" + b"I" * 6000)   # an item arrives
    await until(lambda: len(captures(rt2)) >= 2)
    await asyncio.sleep(0.5)                # time for a (wrong) extra capture
    out["motion_events"] = rt2.events[:]
    try:
        await app_mod.start(Rt(Hal(Link()), {"still_res": "QSXGA"}))
    except ValueError as e:
        out["bad_res"] = str(e)
    try:
        await app_mod.start(Rt(Hal(Link()), {"still_chunk": 1024, "still_max": 200000}))
    except ValueError as e:
        out["bad_chunk"] = str(e)
    print(json.dumps(out))

asyncio.run(main())
"""


def _still_jpeg() -> bytes:
    # A real JPEG of a still's size: an SXGA render is 100-200 KB at q80.
    import io
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 255, (51, 64, 3), dtype=np.uint8)).resize((1280, 1024), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    d = tmp_path_factory.mktemp("still")
    jpeg = _still_jpeg()
    assert 100_000 < len(jpeg) <= 393216
    (d / "still.jpg").write_bytes(jpeg)
    first, last = run_mpy(SCRIPT, d, heap=str(BUDGET + 98304)).strip().splitlines()[-2:]
    out = json.loads(last)
    out.update(json.loads(first))
    out["jpeg"] = jpeg
    return out


def test_settle_takes_one_still_marked_with_its_resolution(r):
    caps = [f for t, f in r["settle"] if t == "capture"]
    assert [c["trigger"] for c in caps] == ["unsettled", "settled"], r["settle"]
    st = caps[1]
    assert st["ref"] == "c001/scale/3/17"          # the movement's unsettled event, as its burst
    assert st["frames"] == [N + 1] and len(st["frame_ms"]) == 1
    assert st["still"] == {"w": 1600, "h": 1200}
    # the gateway's decoder reassembles the still from the chunks the app published
    chunks = [P.decode_frame_chunk(bytes.fromhex(h)) for h in r["chunks"]]
    still = [c for c in chunks if c.frame == N + 1]
    assert all(c.still and (c.width, c.height) == (1600, 1200) for c in still)
    assert not any(c.still for c in chunks if c.frame != N + 1)
    assert len(still) == -(-len(r["jpeg"]) // 4096)        # 4096-byte chunks
    asm = P.FrameAssembler(still[0], 0)
    out = [asm.add(c) for c in still]
    assert out[-1] == r["jpeg"] and zlib.crc32(r["jpeg"]) == still[0].crc32


def test_removal_and_replay_take_no_still(r):
    assert r["removal"] == []
    assert sum(1 for t, f in r["settle"] if t == "capture" and "still" in f) == 1


def test_still_command_and_bad_args(r):
    assert r["cmd"] == {"still": N + 2}
    assert r["cmd_events"][0][1]["trigger"] == "command" and r["cmd_events"][0][1]["still"]["w"] == 1600
    assert r["bad"] == ["args.still: must be true, without args.frames"] * 2


def test_oversized_and_missing_still_refused_and_counted(r):
    assert "still size 393218 bytes exceeds this slot's capacity of 393216 bytes" in r["oversize"]
    assert "no still within 2000 ms" in r["none"]
    assert [e[1]["code"] for e in r["fail_events"]] == ["camera_fail", "camera_fail"]
    st = r["tele"]["cam"]["stills"]
    assert st["stills_rejected"] == 1 and st["still_capture_fail"] == 1
    assert r["after"] == {"still": N + 3}                  # the slot is usable again
    assert st["stills_sent"] == 3


def test_in_flight_bound_shared_with_bursts(r):
    assert r["peak_open"] <= 2
    assert r["tele"]["cam"]["peak_in_flight"] <= 2


def test_motion_stop_takes_a_still(r):
    caps = [f for t, f in r["motion_events"] if t == "capture"]
    assert [c["trigger"] for c in caps] == ["motion", "motion_stop"], r["motion_events"]
    assert caps[1]["ref"] is None and caps[1]["still"] == {"w": 1600, "h": 1200}


def test_bad_still_settings_name_the_key(r):
    assert r["bad_res"].startswith("config app.still_res: must be one of SVGA, SXGA, UXGA, VGA, XGA")
    assert r["bad_chunk"].startswith("config app.still_max: 200000 bytes needs more than 128 chunks")


def test_heap_within_the_board_budget(r):
    # printed for docs/camera.md; run with -s
    print(f"still app: heap after start {r['heap_after_start']} B, peak while publishing "
          f"{r['heap_peak']} B of {BUDGET} B")
    assert r["heap_peak"] < BUDGET
