"""The virtual camera board (boards/sim-cam, the real runtime and camera app
under `micropython -X heapsize=<heap_budget + code_in_heap>`) takes a UXGA
still from the renderer after the scale board reports a placement settled,
publishes it as §7.1 chunks over Mosquitto, and stays within its heap budget.
The heap high-water mark from telemetry is printed (run with -s); docs/camera.md
"Memory" quotes it."""
import json
import time

from cart_gateway import protocol as P
from cart_testing.watch import Watcher


def _jpegs():
    from cart_gateway.catalogue import Catalogue
    from cart_model.render import encode_jpeg, render_scene, render_still
    cat = Catalogue.load()
    sku = [s.sku for s in cat if s.shape == "box"][3]
    frame = encode_jpeg(render_scene(cat, sku, 11)[0])
    still = encode_jpeg(render_still(cat, sku, 11, "UXGA", basket_skus=[sku])[0])
    return frame, still


def test_settle_takes_a_uxga_still_within_the_heap_budget(mosquitto, virtual_boards):
    frame, still = _jpegs()
    assert 100_000 < len(still) <= 393216
    w = Watcher(mosquitto.port)
    scale = virtual_boards("sim-scale", "c001")
    cam = virtual_boards("sim-cam", "c001")
    for vb in (scale, cam):
        cfg = vb.default_config()
        cfg["tele_s"] = 5
        if vb is cam:
            cfg["app"] = {"motion": False}
        vb.flash(cfg)
        vb.power_on()
    try:
        w.wait(lambda: all((w.json(f"carts/c001/{b}/status") or {}).get("state") == "online"
                           for b in ("scale", "cam")), 20, "boards online")
        w.scale_settled("c001")   # the first settled level is the baseline
        for placed in range(2):                  # two placements
            for _ in range(3):
                cam.push_frame(frame)
            cam.push_still(still)
            scale.cell.ramp_to(scale.cell.base_g + 450.0, 300)
            try:
                w.wait(lambda: len([e for e in w.events("capture") if e.get("still")]) >= 1 + placed, 30, "a still")
            except AssertionError:
                raise AssertionError(str(w.events()) + cam.console_text()[-3000:])
        time.sleep(6)                            # one more telemetry period
        stills = [e for e in w.events("capture") if e.get("still")]
        weights = w.events("weight")
        assert [e["trigger"] for e in stills] == ["settled", "settled"]
        assert stills[0]["still"] == {"w": 1600, "h": 1200}
        assert stills[0]["ref"] == f"c001/scale/{weights[0]['inst']}/{weights[0]['epoch']}/{weights[0]['window']['unsettled_seq']}"
        chunks = [P.decode_frame_chunk(p) for t, p in w.all if t == "carts/c001/cam/frame"]
        mine = [c for c in chunks if c.frame == stills[0]["frames"][0]]
        assert mine and all(c.still and c.width == 1600 for c in mine)
        asm = P.FrameAssembler(mine[0], 0)
        got = None
        for c in {c.index: c for c in mine}.values():
            got = asm.add(c) or got
        assert got == still
        text = cam.console_text()
        assert "MemoryError" not in text and cam.restarts == 0, text[-2000:]
        teles = [json.loads(p) for t, p in w.all if t == "carts/c001/cam/tele"]
        peak = max(t["heap_peak"] for t in teles)
        print(f"sim-cam with UXGA stills of {len(still)} B: heap high-water {peak} of {cam.heap} bytes "
              f"({100 * peak / cam.heap:.0f}%), lowest free {min(t['heap_free'] for t in teles)}")
        assert peak <= cam.heap
    finally:
        w.close()
