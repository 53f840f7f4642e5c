"""Scale pipeline benchmarks (docs/scale.md "Measured").

    PYTHONPATH=tools:firmware/lib python -m cart_sim.bench_scale [--placements N] [--hours H]

Measures, in sample time at 80 SPS over seeded streams from the load-cell
model: latency from the load coming to rest to the `weight` event (goal
<= 300 ms), detection rate and delta error for placements of 20 g..3 kg,
false item events per hour of pushing and bumping with nothing added (goal
zero), hand presses, and the pipeline's CPU cost per sample inside the real
`micropython`. Prints figures, then one JSON line. Not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from cart_sim.physics import LoadCellModel
from cartfw.scale.pipeline import ScalePipeline

ROOT = Path(__file__).resolve().parents[2]
PARAMS: dict = {}  # pipeline parameter overrides (--param)
CPG = 86.0
OFFSET = -152_000


def _pct(xs, q):
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def _run(m, p, ms, evs):
    end = m.t_ms + ms
    while m.t_ms < end:
        t = m.t_ms
        r = m.next_raw()
        if r is None:
            continue
        e = p.feed(r)
        if e is not None:
            evs.append((t, e))


def placements(n, seed):
    """Each trial: an empty, settled basket; one item of 20 g..3 kg (log-
    uniform) lowered over 100..500 ms; noise 0.5..1.5 g rms (figures.md)."""
    rng = random.Random(seed)
    lat, err, rel, missed, extra = [], [], [], 0, 0
    for k in range(n):
        w = math.exp(rng.uniform(math.log(20), math.log(3000)))
        m = LoadCellModel(seed * 100_000 + k, noise_g=rng.uniform(0.5, 1.5),
                          drift_g_per_h=30.0, counts_per_g=CPG, offset=OFFSET)
        p = ScalePipeline(CPG, OFFSET, **PARAMS)
        evs = []
        _run(m, p, 1500, evs)
        rest = m.ramp_to(w, rng.uniform(100, 500))
        _run(m, p, 3000, evs)
        ws = [(t, e[1]) for t, e in evs if e[0] == "weight"]
        if not ws:
            missed += 1
            continue
        extra += len(ws) - 1
        t, f = ws[0]
        lat.append(t - rest)
        err.append(f["delta_g"] - w)
        rel.append(abs(f["delta_g"] - w) / w)
    return {"n": n, "detected": n - missed, "detection_rate": (n - missed) / n,
            "extra_events": extra,
            "latency_ms": {"p50": _pct(lat, .5), "p95": _pct(lat, .95), "max": max(lat, default=None)},
            "abs_err_g": {"p50": _pct([abs(e) for e in err], .5), "p95": _pct([abs(e) for e in err], .95),
                          "max": max((abs(e) for e in err), default=None)},
            "rel_err_p95": _pct(rel, .95)}


def pushing(hours, seed):
    """A loaded basket pushed around for `hours`: vibration episodes (20..120
    g at 5..25 Hz, 2..20 s), knocks (+-50..500 g, 30..100 ms), pauses; no item
    changes, noise 1.5 g rms (the top of the range), drift 30 g/h."""
    rng = random.Random(seed)
    m = LoadCellModel(seed, noise_g=1.5, drift_g_per_h=30.0, counts_per_g=CPG, offset=OFFSET)
    p = ScalePipeline(CPG, OFFSET, **PARAMS)
    evs = []
    m.set_load(rng.uniform(200, 8000))
    _run(m, p, 2000, evs)
    evs.clear()
    end = m.t_ms + hours * 3.6e6
    n_vib = n_bump = 0
    while m.t_ms < end:
        r = rng.random()
        if r < 0.5:
            n_vib += 1
            m.vibration(rng.uniform(20, 120), rng.uniform(5, 25), rng.uniform(2000, 20000))
            # knocks while rolling
            for _ in range(rng.randint(0, 3)):
                _run(m, p, rng.uniform(300, 3000), evs)
                n_bump += 1
                m.bump(rng.choice((-1, 1)) * rng.uniform(50, 500), rng.uniform(30, 100))
            _run(m, p, rng.uniform(2000, 20000), evs)
        elif r < 0.8:
            n_bump += 1
            m.bump(rng.choice((-1, 1)) * rng.uniform(50, 500), rng.uniform(30, 100))
            _run(m, p, rng.uniform(500, 5000), evs)
        else:
            _run(m, p, rng.uniform(2000, 30000), evs)
    h = (m.t_ms - (end - hours * 3.6e6)) / 3.6e6
    nw = sum(1 for _, e in evs if e[0] == "weight")
    nu = sum(1 for _, e in evs if e[0] == "unsettled")
    return {"hours": round(h, 3), "vibration_episodes": n_vib, "bumps": n_bump,
            "false_weight_events": nw, "false_per_hour": nw / h, "unsettled_per_hour": nu / h}


def hands(n, seed):
    """A hand resting on a loaded basket: 100..800 g for 1..8 s, tremor and
    wander at the model's defaults; every weight event is false."""
    rng = random.Random(seed)
    false = 0
    per_press = []
    for k in range(n):
        m = LoadCellModel(seed * 7 + k, noise_g=rng.uniform(0.5, 1.5), counts_per_g=CPG, offset=OFFSET)
        p = ScalePipeline(CPG, OFFSET, **PARAMS)
        m.set_load(rng.uniform(100, 3000))
        evs = []
        _run(m, p, 1500, evs)
        evs.clear()
        press = rng.uniform(100, 800)
        m.hand(press, rng.uniform(1000, 8000))
        _run(m, p, 10_000, evs)
        nw = sum(1 for _, e in evs if e[0] == "weight")
        false += nw
        if nw:
            per_press.append(round(press))
    return {"presses": n, "false_weight_events": false, "presses_with_false_events": per_press}


MPY_COST = """
import time, gc, micropython
from array import array
from cartfw.scale.pipeline import ScalePipeline
N = 4000                       # 50 s of samples; 16 kB inside the 96k heap
buf = array('i', bytes(4 * N))  # (a 16 kB bytes object is copied once, then garbage)
x = 1
load = 0
for i in range(N):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    if i % 800 == 400:
        load = 500 * 86 if load == 0 else 0
    buf[i] = 0x7FFFFF if x % 50 == 0 else -152000 + load + (x >> 8) % 171 - 85
p = ScalePipeline(86.0, -152000)
feed = p.feed
t0 = time.ticks_us()
for _ in range(4):
    i = 0
    while i < N:
        feed(buf[i])
        i += 1
us = time.ticks_diff(time.ticks_us(), t0) / (4 * N)
gc.collect()
print(us, micropython.mem_peak(), gc.mem_alloc())
"""


def mpy_cost():
    mpy = Path(sys.executable).with_name("micropython")
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware/lib"))
    runs = []
    for _ in range(3):
        out = subprocess.run([str(mpy), "-X", "heapsize=96k", "-c", MPY_COST], env=env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode:
            return {"error": (out.stdout + out.stderr)[-300:]}
        us, peak, used = out.stdout.split()
        runs.append(float(us))
    return {"us_per_sample_min": round(min(runs), 2), "runs": runs,
            "mem_peak": int(peak), "heap_used_after": int(used),
            "host": "unix port on this machine, not an ESP32"}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="cart_sim.bench_scale")
    ap.add_argument("--placements", type=int, default=300)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--hands", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a pipeline parameter (cartfw.scale.pipeline.PARAMS)")
    ap.add_argument("--skip-mpy", action="store_true", help="skip the micropython cost run")
    a = ap.parse_args(argv)
    for kv in a.param:
        k, _, v = kv.partition("=")
        PARAMS[k] = float(v)
    t0 = time.perf_counter()
    res = {"placements": placements(a.placements, a.seed)}
    pl = res["placements"]
    print(f"placements: {pl['detected']}/{pl['n']} detected ({pl['detection_rate']:.3f}), "
          f"{pl['extra_events']} extra events")
    print(f"  latency rest->event ms: p50 {pl['latency_ms']['p50']:.1f}  p95 {pl['latency_ms']['p95']:.1f}"
          f"  max {pl['latency_ms']['max']:.1f}  (goal <= 300)")
    print(f"  |delta error| g: p50 {pl['abs_err_g']['p50']:.2f}  p95 {pl['abs_err_g']['p95']:.2f}"
          f"  max {pl['abs_err_g']['max']:.2f}")
    res["pushing"] = pu = pushing(a.hours, a.seed)
    print(f"pushing/bumping {pu['hours']} h ({pu['vibration_episodes']} vibration episodes, "
          f"{pu['bumps']} bumps): {pu['false_weight_events']} false weight events "
          f"({pu['false_per_hour']:.2f}/h, goal 0); unsettled {pu['unsettled_per_hour']:.0f}/h")
    res["hands"] = hd = hands(a.hands, a.seed)
    print(f"hand presses: {hd['false_weight_events']} false weight events in {hd['presses']} presses"
          f" (press g with events: {hd['presses_with_false_events']})")
    res["params"] = PARAMS
    res["micropython_cost"] = mc = {} if a.skip_mpy else mpy_cost()
    print(f"pipeline cost under micropython: {mc.get('us_per_sample_min')} us/sample ({mc.get('host')});"
          f" mem_peak {mc.get('mem_peak')} B with a 16 kB sample array in a 96k heap")
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
