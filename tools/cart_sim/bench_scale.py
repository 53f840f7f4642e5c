"""Scale pipeline benchmarks (docs/scale.md "Measured").

    PYTHONPATH=tools:firmware/lib python -m cart_sim.bench_scale [--noise-g G] [--json]

Measures, in sample time at 80 SPS over seeded streams from the load-cell
model:

- actions (issue 14): placements, slow placements that pause part-way,
  removals, swaps, placements pushed or knocked while settling, a hand
  resting 1-8 s on the item just placed, two items in quick succession, a
  removal while a hand rests on another item. Per action: exactly one
  `weight` event? its delta within max(3 g, 1 %) of the truth? latency from
  the load at rest to the event;
- placements of 20 g..3 kg: detection, delta error, latency;
- false item events per hour of pushing and bumping with nothing added;
- false item events per 100 hand presses (a hand resting 1-8 s, lifted);
- the pipeline's CPU cost per sample inside the real `micropython`.

With --noise-g every part runs at that cell noise (g rms); without it the
placements and hands draw 0.5..1.5 g rms per trial and pushing runs at 1.5.
--rate-hz 10 models the HX711's 10 SPS mode (400 ms settling, input noise
50 instead of 90 nV rms: noise x 0.56, figures.md); --cells 4 averages four
cells each behind its own ADC (noise / 2). --adc nau7802 --adc-noise-nv N
swaps the ADC: the HX711's own 90 nV rms at 80 SPS (0.68 g on this cell) is
taken out of the cell noise in quadrature and N nV rms put back (docs/scale.md
"A quieter ADC"). Prints figures, then one JSON line (with --json only the
JSON line). Not pass/fail.
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

from cart_gateway.reconcile.config import ReconcileConfig
from cart_gateway.reconcile.provisional import hand_group
from cart_sim.physics import LoadCellModel
from cartfw.scale.pipeline import ScalePipeline

ROOT = Path(__file__).resolve().parents[2]
PARAMS: dict = {}  # pipeline parameter overrides (--param)
CPG = 86.0
OFFSET = -152_000
# Settled time before an action or a hand: the basket has stood still a while
# (fastsim gives the pipeline 4.5 s after every action), so the noise learned
# is the cell's. Before issue 14 the hands part used 1.5 s.
SETTLED_MS = 5000
# The cell (docs/scale.md, load-cell model): 2 mV/V over 50 kg = 0.04 uV per
# gram per volt of excitation; the HX711 board excites it at 3.3 V (0.132
# uV/g) and adds 90 nV rms at 80 SPS (figures.md). The NAU7802 variant
# excites it from its LDO at 3.0 V (0.120 uV/g; the LDO must sit below the
# 3.3 V DVDD). Both are ratiometric, so counts per gram are the same (~86).
UV_PER_G_PER_V = 0.04
HX711_EXC_V, HX711_NV_80SPS = 3.3, 90.0
NAU7802_EXC_V = 3.0


def adc_swap_noise_g(total_g: float, adc_nv: float, exc_v: float = NAU7802_EXC_V) -> float:
    """Cell noise (g rms) measured behind an HX711 at 80 SPS, with that ADC's
    own input noise (0.68 g) taken out in quadrature and `adc_nv` nV rms at
    `exc_v` volts of excitation put back. The rest (cell, mounting, supply,
    vibration) is what is left of total_g."""
    hx_g = HX711_NV_80SPS / 1000.0 / (UV_PER_G_PER_V * HX711_EXC_V)
    rest2 = max(0.0, total_g * total_g - hx_g * hx_g)
    adc_g = adc_nv / 1000.0 / (UV_PER_G_PER_V * exc_v)
    return math.sqrt(rest2 + adc_g * adc_g)


class Cell:
    """The sensor variant under test: noise, rate, spikes (set by main())."""
    noise_g: float | None = None   # None: per-part defaults (see module doc)
    rate_hz = 80
    settle_ms = 50.0
    noise_factor = 1.0             # 10 SPS mode, averaged cells
    spike_rate = 0.02
    adc_nv: float | None = None    # --adc nau7802: its input noise, nV rms


def _model(seed, noise_g, **kw):
    g = noise_g if Cell.noise_g is None else Cell.noise_g
    if Cell.adc_nv is not None:
        g = adc_swap_noise_g(g, Cell.adc_nv)
    g *= Cell.noise_factor
    kw.setdefault("spike_rate", Cell.spike_rate)
    return LoadCellModel(seed, rate_hz=Cell.rate_hz, settle_ms=Cell.settle_ms, noise_g=g,
                         counts_per_g=CPG, offset=OFFSET, **kw)


def _pipe():
    kw = dict(PARAMS)
    kw.setdefault("rate_hz", Cell.rate_hz)
    return ScalePipeline(CPG, OFFSET, **kw)


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


def effective(evs):
    """The weight readings a gateway counts (protocol §6.1): a final event replaces the open
    provisional before it. Returns [(t_first_ms, t_final_ms, fields)]: t_first is when the first
    reading of it came (the provisional's time, if any), fields are the final event's. The bench
    feeds the pipeline without ScaleLoop, so `replaces` is True, not a seq: it names the open one.
    A final that comes back to the level before its provisional (a hand lifted) is no reading."""
    out, open_i = [], None
    for t, (typ, f) in evs:
        if typ != "weight":
            continue
        if f.get("replaces") and open_i is not None:
            if abs(f["delta_g"]) < MIN_DELTA_G:   # back where it was before the provisional: nothing
                out.pop(open_i)
            else:
                out[open_i] = (out[open_i][0], t, f)
        else:
            out.append((t, t, f))
        open_i = len(out) - 1 if f.get("prov") else None
    return out


GW = ReconcileConfig()
MIN_DELTA_G = min(GW.min_delta_g, ScalePipeline(CPG).p["min_delta_g"])


def gateway_cancelled(ws):
    """Indices of readings (from effective()) the gateway's hand-pair rule (reconcile/provisional.py
    hand_group) cancels: each removal with the earlier uncancelled additions it takes back (nothing
    seen: the bench has no camera)."""
    gone = set()
    for j, (_, tj, fj) in enumerate(ws):
        if fj["delta_g"] >= 0:
            continue
        idx = [i for i in range(j) if i not in gone and ws[i][2]["delta_g"] > 0]
        pick = hand_group([(ws[i][1], ws[i][2]["delta_g"], ws[i][2]["noise_g"]) for i in idx],
                          (tj, fj["delta_g"], fj["noise_g"]), GW)
        if pick:
            gone.update([idx[k] for k in pick] + [j])
    return gone


def placements(n, seed):
    """Each trial: an empty, settled basket; one item of 20 g..3 kg (log-
    uniform) lowered over 100..500 ms; noise 0.5..1.5 g rms (figures.md)."""
    rng = random.Random(seed)
    lat, err, rel, missed, extra = [], [], [], 0, 0
    for k in range(n):
        w = math.exp(rng.uniform(math.log(20), math.log(3000)))
        m = _model(seed * 100_000 + k, rng.uniform(0.5, 1.5), drift_g_per_h=30.0)
        p = _pipe()
        evs = []
        _run(m, p, 1500, evs)
        rest = m.ramp_to(w, rng.uniform(100, 500))
        _run(m, p, 3000, evs)
        ws = [(t, f) for t, _, f in effective(evs)]
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
    m = _model(seed, 1.5, drift_g_per_h=30.0)
    p = _pipe()
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
    """A hand resting on a loaded basket, settled SETTLED_MS: 100..800 g for
    1..8 s, tremor and wander at the model's defaults, then lifted; every
    weight event is false."""
    rng = random.Random(seed)
    false = suspect = uncancelled = sent = 0
    per_press = []
    for k in range(n):
        m = _model(seed * 7 + k, rng.uniform(0.5, 1.5))
        p = _pipe()
        m.set_load(rng.uniform(100, 3000))
        evs = []
        _run(m, p, SETTLED_MS, evs)
        evs.clear()
        press = rng.uniform(100, 800)
        m.hand(press, rng.uniform(1000, 8000))
        _run(m, p, 10_000, evs)
        ws = effective(evs)
        nw = len(ws)
        sent += sum(1 for _, e in evs if e[0] == "weight")
        suspect += sum(1 for _, _, f in ws if f.get("hold") == "suspect")
        false += nw
        if nw:
            per_press.append(round(press))
            uncancelled += nw - len(gateway_cancelled(ws))
    # false: readings after provisionals are replaced; sent: every weight event; uncancelled: those
    # the gateway's hand-pair rule (reconcile/provisional.py) does not cancel
    return {"presses": n, "false_weight_events": false, "sent_weight_events": sent, "suspect": suspect,
            "uncancelled": uncancelled,
            "presses_with_false_events": per_press}


# -- actions (issue 14) -------------------------------------------------------
# Each trial: a fresh cell, a basket settled at 0..5 kg, then one action (two
# for "two_quick"). Weights log-uniform 20 g..3 kg. `rest` is when the load is
# physically at rest with the item in place: the end of the ramp, or the end of
# a disturbance that began before it (a push or knock while settling, the hand
# on another item during a removal). A hand that arrives after the item came to
# rest (300-700 ms, as in fastsim) does not move `rest`.
KINDS = (("place", 3), ("slow", 2), ("remove", 2), ("swap", 1), ("push_settling", 2),
         ("bump_settling", 1), ("hand_after", 2), ("two_quick", 2), ("remove_hand", 1))


def _w(rng, lo=20.0, hi=3000.0):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _one_trial(kind, rng, m, p):
    """Run one action on a settled cell; returns [(start_ms, rest_ms, truth_g)]
    and the events [(t_ms, ev)] seen after the first action began."""
    base = m.base_g
    evs = []
    t0 = m.t_ms
    acts = []
    if kind in ("place", "push_settling", "bump_settling", "hand_after"):
        w = _w(rng)
        rest = m.ramp_to(base + w, rng.uniform(100, 500))
        acts.append([t0, rest, w])
        if kind == "push_settling":     # the cart is pushed as the item lands
            _run(m, p, rest - m.t_ms - rng.uniform(0, 200), evs)
            end = m.vibration(rng.uniform(10, 40), rng.uniform(2, 25), rng.uniform(500, 3000))
            acts[0][1] = max(rest, end)
        elif kind == "bump_settling":   # knocked just as it lands
            _run(m, p, rest - m.t_ms - rng.uniform(0, 150), evs)
            end = m.bump(rng.choice((-1, 1)) * rng.uniform(200, 1500), rng.uniform(40, 120))
            acts[0][1] = max(rest, end)
        elif kind == "hand_after":      # a hand rests on it 1-8 s, then lifts
            _run(m, p, rest - m.t_ms + rng.uniform(300, 700), evs)
            m.hand(rng.uniform(100, 1500), rng.uniform(1000, 8000))
    elif kind == "slow":
        w = _w(rng)
        if rng.random() < 0.5:          # lowered slowly
            rest = m.ramp_to(base + w, rng.uniform(500, 1500))
        else:                           # set down part-way, still held a moment, let go:
            # the hand carries (1 - f) of it, with its tremor, then releases
            ramp = rng.uniform(150, 400)
            m.ramp_to(base + w, ramp)
            rest = m.hand(-(1.0 - rng.uniform(0.2, 0.8)) * w, rng.uniform(100, 400), ramp_ms=ramp)
        acts.append([t0, rest, w])
    elif kind == "remove":
        w = min(_w(rng), base)
        acts.append([t0, m.ramp_to(base - w, rng.uniform(200, 500)), -w])
    elif kind == "swap":                # one out, another in, no settle between
        out = min(_w(rng), base)
        inn = _w(rng)
        while abs(inn - out) < 20:
            inn = _w(rng)
        _run(m, p, m.ramp_to(base - out, rng.uniform(200, 400)) - m.t_ms + rng.uniform(150, 250), evs)
        acts.append([t0, m.ramp_to(base - out + inn, rng.uniform(250, 700)), inn - out])
    elif kind == "two_quick":
        w1, w2 = _w(rng), _w(rng)
        rest = m.ramp_to(base + w1, rng.uniform(100, 400))
        acts.append([t0, rest, w1])
        _run(m, p, rest - m.t_ms + rng.uniform(300, 800), evs)
        acts.append([m.t_ms, m.ramp_to(base + w1 + w2, rng.uniform(100, 400)), w2])
    elif kind == "remove_hand":         # a hand rests on another item meanwhile
        w = min(_w(rng), base)
        hold = rng.uniform(2000, 6000)
        hand_end = m.hand(rng.uniform(100, 800), hold)
        _run(m, p, rng.uniform(500, 1500), evs)
        acts.append([t0, max(hand_end, m.ramp_to(base - w, rng.uniform(200, 500))), -w])
    _run(m, p, max(a[1] for a in acts) - m.t_ms + 4000, evs)
    return acts, evs


def actions(n, seed):
    rng = random.Random(seed * 31 + 5)
    names = [k for k, _ in KINDS]
    wts = [c for _, c in KINDS]
    per = {k: {"actions": 0, "one_event": 0, "delta_ok": 0} for k in names}
    lat_kind = {k: [] for k in names}
    lat, n_act, n_one, n_ok = [], 0, 0, 0
    n_sum_ok = 0  # the action's events summed within tolerance (see "merged_ok_share")
    n_sent_one = n_gw_ok = 0   # one weight event sent at all; one left and right after the gateway's pair cancel
    lat_final = []             # load at rest -> the final reading (a provisional's replacement)
    worst = []
    flags = {"steady": 0, "suspect": 0, None: 0}
    for k in range(n):
        kind = rng.choices(names, wts)[0]
        m = _model(seed * 1_000_003 + k, rng.uniform(0.5, 1.5), drift_g_per_h=30.0)
        p = _pipe()
        base = rng.choice((0.0, rng.uniform(200, 5000)))
        if kind in ("remove", "swap", "remove_hand"):
            base = rng.uniform(300, 5000)
        m.set_load(base)
        _run(m, p, SETTLED_MS, [])
        acts, evs = _one_trial(kind, rng, m, p)
        ws = effective(evs)
        gone = gateway_cancelled(ws)
        sent = [t for t, e in evs if e[0] == "weight"]
        for i, (start, rest, truth) in enumerate(acts):
            end = acts[i + 1][0] if i + 1 < len(acts) else float("inf")
            mine = [(t, tf, f) for t, tf, f in ws if start <= t < end]
            tol = max(3.0, 0.01 * abs(truth))
            per[kind]["actions"] += 1
            n_act += 1
            n_sent_one += sum(1 for t in sent if start <= t < end) == 1
            gw = [f for j, (t, _, f) in enumerate(ws) if start <= t < end and j not in gone]
            n_gw_ok += len(gw) == 1 and abs(gw[0]["delta_g"] - truth) <= tol
            if mine and abs(sum(f["delta_g"] for _, _, f in mine) - truth) <= tol:
                n_sum_ok += 1
            if len(mine) != 1:
                worst.append((kind, round(truth, 1), [round(f["delta_g"], 1) for _, _, f in mine]))
                continue
            t, tf, f = mine[0]
            flags[f.get("hold")] += 1
            n_one += 1
            per[kind]["one_event"] += 1
            lat.append(t - rest)
            lat_final.append(tf - rest)
            lat_kind[kind].append(t - rest)
            if abs(f["delta_g"] - truth) <= tol:
                n_ok += 1
                per[kind]["delta_ok"] += 1
            else:
                worst.append((kind, round(truth, 1), [round(f["delta_g"], 1)]))
    for k in names:
        per[k]["latency_p95_ms"] = _pct(lat_kind[k], .95)
    # Shares are of the readings a gateway counts (provisionals replaced by their finals, §6.1);
    # sent_one_event_share counts every weight event sent; gateway_ok_share also applies the
    # gateway's hand-pair cancel; merged_ok_share: an action's readings summed (an upper bound).
    # Latency: load at rest -> the first reading (provisional or final); latency_final_ms: -> final.
    return {"actions": n_act, "one_event_share": n_one / n_act, "delta_ok_share": n_ok / n_act,
            "merged_ok_share": n_sum_ok / n_act, "sent_one_event_share": n_sent_one / n_act,
            "gateway_ok_share": n_gw_ok / n_act,
            "latency_ms": {"p50": _pct(lat, .5), "p95": _pct(lat, .95), "max": max(lat, default=None)},
            "latency_final_ms": {"p50": _pct(lat_final, .5), "p95": _pct(lat_final, .95)},
            "by_kind": per, "hold_flags": {str(k): v for k, v in flags.items()},
            "failures": worst[:40]}


MPY_COST = """
import time, gc, micropython
from array import array
from cartfw.scale.pipeline import ScalePipeline
N = 4000                       # 50 s of samples; 16 kB inside the 96k heap
gc.collect()                   # the compiler's garbage first: 2 x 16 kB must fit whole
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
    ap.add_argument("--noise-g", type=float, default=None,
                    help="cell noise, g rms, for every part (default: 0.5..1.5 per trial, pushing 1.5)")
    ap.add_argument("--actions", type=int, default=400)
    ap.add_argument("--placements", type=int, default=300)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--hands", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--spike-rate", type=float, default=0.02)
    ap.add_argument("--rate-hz", type=int, choices=(10, 80), default=80,
                    help="HX711 RATE: 80 SPS, or 10 SPS (400 ms settling, 50 nV instead of 90 nV rms)")
    ap.add_argument("--cells", type=int, choices=(1, 4), default=1,
                    help="4: four cells each behind its own ADC, averaged (noise / 2)")
    ap.add_argument("--noise-factor", type=float, default=1.0,
                    help="scale the cell noise further (a quieter ADC: its noise over the HX711's)")
    ap.add_argument("--adc", choices=("hx711", "nau7802"), default="hx711",
                    help="nau7802: the board variant boards/cart-scale-esp32-nau7802 (80 SPS, I2C)")
    ap.add_argument("--adc-noise-nv", type=float, default=None,
                    help="with --adc nau7802: its input-referred noise at 80 SPS, gain 128, nV rms "
                         "(required: no published figure is in docs/scale.md's sources)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a pipeline parameter (cartfw.scale.pipeline.PARAMS)")
    ap.add_argument("--skip-mpy", action="store_true", help="skip the micropython cost run")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    a = ap.parse_args(argv)
    if a.adc == "nau7802":
        if a.adc_noise_nv is None or not (0 <= a.adc_noise_nv < 10_000):
            ap.error("--adc nau7802 needs --adc-noise-nv N (0 <= N < 10000 nV rms)")
        if a.rate_hz != 80 or a.cells != 1:
            ap.error("--adc nau7802 is benched at 80 SPS on one cell (docs/scale.md)")
    elif a.adc_noise_nv is not None:
        ap.error("--adc-noise-nv is for --adc nau7802")
    Cell.adc_nv = a.adc_noise_nv
    for kv in a.param:
        k, _, v = kv.partition("=")
        PARAMS[k] = float(v)
    Cell.noise_g = a.noise_g
    Cell.spike_rate = a.spike_rate
    Cell.rate_hz = a.rate_hz
    Cell.settle_ms = 400.0 if a.rate_hz == 10 else 50.0
    Cell.noise_factor = a.noise_factor * (50 / 90 if a.rate_hz == 10 else 1.0) / (2.0 if a.cells == 4 else 1.0)
    say = (lambda *x: None) if a.json else print
    t0 = time.perf_counter()
    res = {"noise_g": a.noise_g, "seed": a.seed, "rate_hz": a.rate_hz, "cells": a.cells,
           "adc": a.adc, "adc_noise_nv": a.adc_noise_nv,
           "cell_noise_g": (None if a.noise_g is None else
                            round(_model(0, a.noise_g).noise_g, 3)),
           "effective_noise_factor": round(Cell.noise_factor, 3)}
    res["actions"] = ac = actions(a.actions, a.seed)
    say(f"actions: {ac['actions']}: one event {ac['one_event_share']:.4f} (goal >= 0.995), "
        f"delta within max(3 g, 1 %) {ac['delta_ok_share']:.4f} (goal >= 0.99)")
    say(f"  latency rest->event ms: p50 {ac['latency_ms']['p50']}  p95 {ac['latency_ms']['p95']}"
        f"  max {ac['latency_ms']['max']}")
    for k, v in ac["by_kind"].items():
        say(f"  {k:14s} {v['actions']:4d} actions, one event {v['one_event']:4d}, delta ok {v['delta_ok']:4d},"
            f" latency p95 {v['latency_p95_ms']} ms")
    say(f"  hold flags on single events: {ac['hold_flags']}")
    for f in ac["failures"][:12]:
        say(f"  failed: {f[0]} truth {f[1]} g, events {f[2]}")
    res["placements"] = pl = placements(a.placements, a.seed)
    say(f"placements: {pl['detected']}/{pl['n']} detected ({pl['detection_rate']:.3f}), "
        f"{pl['extra_events']} extra events")
    say(f"  latency rest->event ms: p50 {pl['latency_ms']['p50']}  p95 {pl['latency_ms']['p95']}"
        f"  max {pl['latency_ms']['max']}")
    say(f"  |delta error| g: p50 {pl['abs_err_g']['p50']}  p95 {pl['abs_err_g']['p95']}"
        f"  max {pl['abs_err_g']['max']}")
    res["pushing"] = pu = pushing(a.hours, a.seed)
    say(f"pushing/bumping {pu['hours']} h ({pu['vibration_episodes']} vibration episodes, "
        f"{pu['bumps']} bumps): {pu['false_weight_events']} false weight events "
        f"({pu['false_per_hour']:.2f}/h, goal 0); unsettled {pu['unsettled_per_hour']:.0f}/h")
    res["hands"] = hd = hands(a.hands, a.seed)
    say(f"hand presses: {hd['false_weight_events']} false weight events in {hd['presses']} presses"
        f" (press g with events: {hd['presses_with_false_events']}); flagged suspect {hd['suspect']}")
    res["params"] = PARAMS
    res["micropython_cost"] = mc = {} if a.skip_mpy else mpy_cost()
    say(f"pipeline cost under micropython: {mc.get('us_per_sample_min')} us/sample ({mc.get('host')});"
        f" mem_peak {mc.get('mem_peak')} B with a 16 kB sample array in a 96k heap")
    res.update({
        "one_event_share": round(ac["one_event_share"], 4),
        "delta_ok_share": round(ac["delta_ok_share"], 4),
        "push_false_per_hour": round(pu["false_per_hour"], 2),
        "hand_false_per_100": round(100.0 * hd["false_weight_events"] / max(1, hd["presses"]), 1),
        "merged_ok_share": round(ac["merged_ok_share"], 4),
        "hand_uncancelled_per_100": round(100.0 * hd["uncancelled"] / max(1, hd["presses"]), 1),
        "latency_p50_ms": ac["latency_ms"]["p50"],
        "latency_p95_ms": ac["latency_ms"]["p95"],
        "latency_final_p50_ms": ac["latency_final_ms"]["p50"],
        "latency_final_p95_ms": ac["latency_final_ms"]["p95"],
        "sent_one_event_share": round(ac["sent_one_event_share"], 4),
        "gateway_ok_share": round(ac["gateway_ok_share"], 4),
        "hand_sent_per_100": round(100.0 * hd["sent_weight_events"] / max(1, hd["presses"]), 1),
    })
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
