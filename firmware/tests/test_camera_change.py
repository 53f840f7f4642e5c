# The frame-change check (cartfw.camera.change) and the `unsettled` trigger
# filter (cartfw.camera.trigger), on rendered QVGA JPEGs, run identically in the
# real micropython binary and under CPython.
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from camera_mpy import run_mpy
from cartfw.camera.change import ChangeDetector
from cartfw.camera.trigger import UnsettledFilter

pytestmark = pytest.mark.micropython


def basket(noise_seed, item=False, light=0):
    """A QVGA view into a wire basket, with sensor noise; optionally a printed
    cereal box in it. JPEG quality 80, as the ESP32 driver is set up."""
    im = Image.new("RGB", (320, 240), (70, 70, 75))
    d = ImageDraw.Draw(im)
    for x in range(0, 320, 16):
        d.line([x, 0, x, 240], fill=(150, 150, 155), width=2)
    for y in range(0, 240, 16):
        d.line([0, y, 320, y], fill=(150, 150, 155), width=2)
    if item:
        d.rectangle([100, 60, 230, 190], fill=(200, 40, 30))
        for i in range(8):  # printed packaging: text and graphics
            d.text((108, 66 + 14 * i), "CORN FLAKES 500g %d" % i, fill=(255, 255, 255))
        d.ellipse([150, 120, 220, 185], fill=(240, 200, 40), outline=(20, 20, 20), width=3)
    a = np.asarray(im).astype(np.int16) + light
    a += np.random.default_rng(noise_seed).normal(0, 2.0, a.shape).round().astype(np.int16)
    out = io.BytesIO()
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=80)
    return out.getvalue()


def sequence():
    """(label, jpeg, t_ms) every 500 ms: noisy empty basket, a frozen frame, a
    light change, the item arriving, the item staying."""
    frames = [("empty", basket(s)) for s in range(8)]
    frozen = basket(100)
    frames += [("same", frozen)] * 4
    frames += [("light", basket(200 + s, light=8)) for s in range(3)]
    frames += [("item", basket(300, item=True))]
    frames += [("item_after", basket(400 + s, item=True)) for s in range(6)]
    return [(lab, jpg, 500 * i) for i, (lab, jpg) in enumerate(frames)]


def run_cpython(seq):
    det = ChangeDetector(k=6, min_bytes=100, cooldown_ms=2000)
    return [det.check(len(jpg), t) for _, jpg, t in seq]


MPY_CHANGE = r"""
import json
from cartfw.camera.change import ChangeDetector
seq = json.load(open("seq.json"))
det = ChangeDetector(k=6, min_bytes=100, cooldown_ms=2000)
out = []
for name, t in seq:
    with open(name, "rb") as f:
        out.append(det.check(len(f.read()), t))
print(json.dumps(out))
"""


def test_change_check_same_frame_no_trigger_item_triggers(tmp_path):
    seq = sequence()
    names = []
    for i, (lab, jpg, t) in enumerate(seq):
        (tmp_path / ("f%02d.jpg" % i)).write_bytes(jpg)
        names.append(["f%02d.jpg" % i, t])
    (tmp_path / "seq.json").write_text(json.dumps(names))
    mpy = json.loads(run_mpy(MPY_CHANGE, tmp_path, heap="256k"))
    cpy = run_cpython(seq)
    assert mpy == cpy
    fired = [lab for (lab, _, _), hit in zip(seq, cpy) if hit]
    assert fired == ["item"], [(lab, len(j), hit) for (lab, j, _), hit in zip(seq, cpy)]


def test_identical_frames_never_trigger():
    det = ChangeDetector()
    assert not any(det.check(15000, 500 * i) for i in range(50))
    assert det.check(0, 99999) is False  # no frame


def test_cooldown_after_burst_then_new_change():
    det = ChangeDetector(k=6, min_bytes=100, cooldown_ms=2000)
    for i in range(6):
        det.check(15000 + (i % 2) * 20, 100 * i)
    det.hold(1000)  # an unsettled burst just ran
    assert det.check(18000, 1500) is False  # cooling down: baseline follows
    assert det.check(18000, 3500) is False  # same scene after the cooldown
    assert det.check(12000, 4000) is True


def test_change_detector_rejects_bad_settings():
    with pytest.raises(ValueError, match="k 0"):
        ChangeDetector(k=0)
    with pytest.raises(ValueError, match="min_bytes"):
        ChangeDetector(min_bytes=0)


def ev(**kw):
    e = {"v": 1, "cart": "c001", "board": "scale", "epoch": 3, "seq": 17, "mono_ms": 5000,
         "wall_ms": None, "synced": False, "type": "unsettled", "total_g": 412.5}
    e.update(kw)
    return json.dumps(e).encode()


FILTER_CASES = [
    (ev(), None, "c001/scale/3/17"),
    (ev(), None, None),  # same identity again (replay): dropped
    (ev(seq=18, type="weight"), None, None),  # not a trigger
    (ev(seq=19), None, "c001/scale/3/19"),
    (ev(epoch=2, seq=50), None, None),  # older epoch's replay
    (ev(epoch=4, seq=1, synced=True, wall_ms=1_000_000), 1_009_000, None),  # 9 s old: stale
    (ev(epoch=4, seq=2, synced=True, wall_ms=1_000_000), 1_001_000, "c001/scale/4/2"),
    (b"{not json", None, None),
    (ev(epoch=4, seq=3, cart="c002"), None, None),
    (ev(epoch=4, seq="x"), None, None),
    (b"[1,2]", None, None),
    (b"x" * 1025, None, None),
    (ev(epoch=4, seq=4), None, "c001/scale/4/4"),  # bad input above lost nothing
]

MPY_FILTER = r"""
import json
from cartfw.camera.trigger import UnsettledFilter
f = UnsettledFilter("c001", 5000)
out = []
for msg, now in json.load(open("cases.json")):
    out.append(f.feed(msg.encode(), now))
print(json.dumps({"refs": out, "bad": f.bad, "stale": f.stale, "dups": f.dups}))
"""


def test_unsettled_filter_cpython_and_micropython(tmp_path):
    f = UnsettledFilter("c001", 5000)
    refs = [f.feed(m, now) for m, now, _ in FILTER_CASES]
    assert refs == [want for _, _, want in FILTER_CASES]
    assert (f.bad, f.stale, f.dups) == (5, 1, 2)
    assert f.last_error == "event of 1025 bytes exceeds 1024"
    (tmp_path / "cases.json").write_text(json.dumps([[m.decode(), now] for m, now, _ in FILTER_CASES]))
    got = json.loads(run_mpy(MPY_FILTER, tmp_path, heap="128k"))
    assert got == {"refs": refs, "bad": 5, "stale": 1, "dups": 2}


def test_unsettled_filter_takes_a_reflashed_scale_as_a_new_sequence():
    # issue 11.2: a re-flashed scale starts again at epoch 1, seq 1 with a new instance id;
    # its triggers are not dropped as replays of the old scale's, and the ref names the instance
    f = UnsettledFilter("c001", 5000)
    old, new = "0123456789abcdef", "fedcba9876543210"
    assert f.feed(ev(epoch=7, seq=40, inst=old)) == f"c001/scale/{old}/7/40"
    assert f.feed(ev(epoch=1, seq=1, inst=new)) == f"c001/scale/{new}/1/1"
    assert f.feed(ev(epoch=1, seq=1, inst=new)) is None          # a real replay is still dropped
    assert f.feed(ev(epoch=1, seq=2, inst=new)) == f"c001/scale/{new}/1/2"
    assert f.dups == 1
