# End to end through a real Mosquitto: the real runtime (cartfw.app / runtime /
# mqtt) runs the camera app in the real micropython binary; frames come from a
# hardware-link stand-in that serves rendered JPEG files (take_frame()). paho
# publishes the scale's `unsettled` event and a `capture` command, receives the
# §7 chunks, and a reference decoder written from the spec reassembles them.
import binascii
import io
import json
import os
import random
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from camera_mpy import BURST_FRAMES as FRAMES, BURST_N as N, ROOT, micropython_bin, stage

paho = pytest.importorskip("paho.mqtt.client")

pytestmark = pytest.mark.micropython

HAVE_RUNTIME = ((ROOT / "firmware/lib/cartfw/runtime.py").exists()
                and (ROOT / "firmware/lib/cartfw/app.py").exists()
                and (ROOT / "firmware/hal/sim/hal.py").exists())

BOARD_MAIN = r"""
import hal

class FileLink:
    # Stands in for hwlink: serves JPEG files as camera frames, in order.
    def __init__(self, names):
        self.q = list(names)
    def take_frame(self):
        if not self.q:
            return None
        with open(self.q.pop(0), "rb") as f:
            return f.read()
    def send(self, line):
        pass

hal._link = FileLink(%r)
import cartfw.app
cartfw.app.run()
"""


def jpeg(seed):
    rnd = random.Random(seed)
    im = Image.new("RGB", (320, 240), (70, 70, 75))
    d = ImageDraw.Draw(im)
    for _ in range(60):
        x, y = rnd.randrange(320), rnd.randrange(240)
        d.rectangle([x, y, x + rnd.randrange(5, 50), y + rnd.randrange(5, 40)],
                    fill=tuple(rnd.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()


def reassemble(chunks):
    """§7 reference decoder: {(epoch, frame): bytes}; asserts every rule."""
    by = {}
    for c in chunks:
        h = struct.unpack(">2sBBIIHHII", c[:24])
        assert h[:3] == (b"CF", 1, 1)
        by.setdefault((h[3], h[4]), []).append((h, c[24:]))
    out = {}
    for key, parts in by.items():
        parts.sort(key=lambda p: p[0][5])
        count, size, crc = parts[0][0][6:]
        assert [p[0][5] for p in parts] == list(range(count)), "missing or duplicate chunks"
        assert all(p[0][6:] == (count, size, crc) for p in parts)
        assert all(len(p[1]) == 1024 for p in parts[:-1])
        assert len(parts[-1][1]) == size - 1024 * (count - 1)
        data = b"".join(p[1] for p in parts)
        assert len(data) == size and binascii.crc32(data) & 0xFFFFFFFF == crc
        out[key] = data
    return out


@pytest.mark.skipif(not HAVE_RUNTIME, reason="the firmware runtime (cartfw.runtime, cartfw.app, "
                    "hal/sim/hal.py) is not in this tree yet")
def test_unsettled_and_command_bursts_over_mosquitto(tmp_path, mosquitto):
    port = mosquitto.port
    flash = tmp_path / "flash"
    flash.mkdir()
    stage(flash)
    jpegs = [jpeg(s) for s in range(3)]
    names = []
    for i, j in enumerate(jpegs):
        (flash / ("frame%d.jpg" % i)).write_bytes(j)
        names.append("frame%d.jpg" % i)
    (flash / "main.py").write_text(BOARD_MAIN % (names,))
    (flash / "config.json").write_text(json.dumps({
        "cart": "c001", "board": "cam",
        "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 10},
        "tele_s": 1, "app": {"motion": False, "still": False}}))

    msgs = []
    lock = threading.Lock()
    got = threading.Condition(lock)

    def on_message(c, u, m):
        with got:
            msgs.append((m.topic, bytes(m.payload)))
            got.notify_all()

    def wait_for(pred, timeout):
        deadline = time.time() + timeout
        with got:
            while time.time() < deadline:
                hit = [x for x in msgs if pred(x)]
                if hit:
                    return hit[0]
                got.wait(0.1)
        raise AssertionError("timed out; messages: %r" % [(t, p[:80]) for t, p in msgs][-20:])

    cli = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-cam-e2e")
    cli.on_message = on_message
    cli.connect("127.0.0.1", port)
    cli.subscribe("carts/c001/#", qos=1)
    cli.loop_start()
    env = dict(os.environ, MICROPYPATH="lib:.frozen")
    env.pop("CART_SIM_HW", None)
    console = open(tmp_path / "console.log", "wb")
    board = subprocess.Popen([micropython_bin(), "-X", "heapsize=512k", "main.py"], cwd=flash,
                             env=env, stdout=console, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda m: m[0] == "carts/c001/cam/status" and b'"online"' in m[1], 20)
        unsettled = {"v": 1, "cart": "c001", "board": "scale", "epoch": 3, "seq": 17,
                     "mono_ms": 1000, "wall_ms": None, "synced": False, "type": "unsettled",
                     "total_g": 0.0}
        # the app subscribes after the board's birth: until it has, an event is not delivered
        # to it. Send the same event again each second until its burst shows (a replayed
        # event does not burst again: test_camera_app), however slow the machine is.
        deadline = time.time() + 20
        while True:
            cli.publish("carts/c001/scale/evt", json.dumps(unsettled), qos=1)
            try:
                t, p = wait_for(lambda m: m[0] == "carts/c001/cam/evt" and b'"capture"' in m[1], 1)
                break
            except AssertionError:
                if time.time() > deadline:
                    raise
        ev = json.loads(p)
        assert ev["trigger"] == "unsettled" and ev["ref"] == "c001/scale/3/17"
        assert ev["frames"] == FRAMES and len(ev["frame_ms"]) == N
        epoch = ev["epoch"]
        cli.publish("carts/c001/cam/cmd", json.dumps(
            {"v": 1, "id": "cap-1", "cmd": "capture", "args": {"frames": 2}}), qos=1)
        t, p = wait_for(lambda m: m[0] == "carts/c001/cam/cmd/res" and b'"cap-1"' in m[1], 20)
        res = json.loads(p)
        assert res["ok"] is True and res["result"] == {"burst": [N + 1, N + 2]}
        # §8 telemetry carries the camera counters and stays within 1024 bytes.
        t, p = wait_for(lambda m: m[0] == "carts/c001/cam/tele"
                        and b'"frames_sent":%d' % (N + 2) in m[1], 10)
        assert len(p) <= 1024
        cam = json.loads(p)["cam"]
        assert cam["bursts"] == 2 and 1 <= cam["peak_in_flight"] <= 2 and cam["frames_failed"] == 0
        with got:
            chunks = [p for t, p in msgs if t == "carts/c001/cam/frame"]
        frames = reassemble(chunks)
        assert sorted(frames) == [(epoch, n) for n in range(1, N + 3)]
        for n, j in zip(range(1, N + 3), jpegs + [jpegs[-1]] * (N + 2 - len(jpegs))):
            assert frames[(epoch, n)] == j, "frame %d differs" % n
    finally:
        board.kill()
        board.wait()
        cli.loop_stop()
        cli.disconnect()
        console.close()
        print((tmp_path / "console.log").read_text(errors="replace")[-3000:])
