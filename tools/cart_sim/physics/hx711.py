"""A load cell behind an HX711 at 80 SPS: what the scale firmware reads.

Every default rests on docs/figures.md ("Load cells and the
HX711"); docs/scale.md lists them with their sources:

- rate 80 SPS (RATE pin high): HX711 datasheet.
- settling 50 ms at 80 SPS: modelled as the output being the mean of the
  input over the last 4 conversions (4 x 12.5 ms).
- noise 1.0 g rms: middle of the 0.5 to 1.5 g rms estimate for cart cells
  (derived there from 90 nV rms input noise at 80 SPS).
- counts_per_g 86: derived, not published: a 2 mV/V, 50 kg cell excited at
  3.3 V gives 0.132 uV/g; at gain 128 the HX711 spans +-0.5*3.3 V/128 with
  2^23 counts, 650.8 counts/uV, so 86 counts/g. 90 nV/0.132 uV/g = 0.68 g rms,
  consistent with the noise figure.
- spikes: 2^n-1 values in 1 to 5% of reads (bogde/HX711 #83, #216); default
  2%. A quarter of spikes are high-bit flips instead (other outliers a median
  filter removes).
- drift: up to 30 g on a 5 kg cell over hours (olkal/HX711_ADC #95); default
  10 g/h, a linear walk whose sign the seed picks.
- offset 0: no figure; the tare removes it, tests vary it.

Mechanics (placement, vibration, bumps, a hand) are estimates documented in
docs/scale.md, not published figures.
"""
from __future__ import annotations

import math
import random

MIN_RAW = -0x800000
MAX_RAW = 0x7FFFFF
# The 2^n-1 glitch family as signed 24-bit values (0xFFFFFF is -1).
GLITCHES = (0x7FFFFF, -1, 0x3FFFFF, 0x1FFFFF, 0x0FFFFF, 0x00FFFF)


class LoadCellModel:
    def __init__(self, seed: int, rate_hz: float = 80, noise_g: float = 1.0,
                 spike_rate: float = 0.02, drift_g_per_h: float = 10.0,
                 counts_per_g: float = 86.0, offset: int = 0,
                 settle_ms: float = 50.0):
        for name, v, ok in (("rate_hz", rate_hz, rate_hz > 0),
                            ("noise_g", noise_g, noise_g >= 0),
                            ("spike_rate", spike_rate, 0 <= spike_rate <= 1),
                            ("drift_g_per_h", drift_g_per_h, drift_g_per_h >= 0),
                            ("counts_per_g", counts_per_g, counts_per_g != 0),
                            ("settle_ms", settle_ms, settle_ms >= 0)):
            if not ok:
                raise ValueError(f"LoadCellModel {name}: bad value {v!r}")
        self.rng = random.Random(seed)
        self.rate_hz = rate_hz
        self.period_ms = 1000.0 / rate_hz
        self.noise_g = noise_g
        self.spike_rate = spike_rate
        self.counts_per_g = counts_per_g
        self.offset = int(offset)
        self.drift_g_per_ms = drift_g_per_h / 3.6e6 * self.rng.choice((-1, 1))
        self.t_ms = 0.0           # time of the next conversion
        self._ramp = (0.0, 0.0, 0.0, 0.0)  # t0, g0, t1, g1
        self._effects: list = []  # (t0, t1, fn(t) -> grams)
        self._dead = False
        n = max(1, round(settle_ms / self.period_ms))
        self._fir = [0.0] * n
        self._fi = 0
        self._primed = False

    # -- the physical load --------------------------------------------
    def _base(self, t: float) -> float:
        t0, g0, t1, g1 = self._ramp
        if t >= t1:
            return g1
        if t <= t0:
            return g0
        return g0 + (g1 - g0) * (t - t0) / (t1 - t0)

    def load_at(self, t: float) -> float:
        """Physical load (g) on the cell at time t, effects included."""
        g = self._base(t)
        for t0, t1, fn in self._effects:
            if t0 <= t < t1:
                g += fn(t - t0)
        return g

    @property
    def base_g(self) -> float:
        return self._ramp[3]

    def set_load(self, grams: float) -> None:
        """A step: the load is `grams` from now on."""
        self._ramp = (self.t_ms, grams, self.t_ms, grams)

    def ramp_to(self, grams: float, ms: float) -> float:
        """Move linearly to `grams` over `ms`; returns when it is at rest."""
        if ms <= 0:
            self.set_load(grams)
            return self.t_ms
        g0 = self._base(self.t_ms)
        self._ramp = (self.t_ms, g0, self.t_ms + ms, grams)
        return self.t_ms + ms

    def _add(self, ms: float, fn) -> float:
        self._prune()
        self._effects.append((self.t_ms, self.t_ms + ms, fn))
        return self.t_ms + ms

    def _prune(self) -> None:
        self._effects = [e for e in self._effects if e[1] > self.t_ms]

    def vibration(self, amplitude_g: float, freq_hz: float, duration_ms: float) -> float:
        """Pushing the cart: a sine whose amplitude wanders (rough floor)."""
        ph = self.rng.uniform(0, 2 * math.pi)
        w = 2 * math.pi * freq_hz / 1000.0
        wm = 2 * math.pi * self.rng.uniform(0.3, 1.5) / 1000.0

        def fn(t):
            env = 0.6 + 0.4 * math.sin(wm * t)
            return amplitude_g * env * math.sin(w * t + ph)
        return self._add(duration_ms, fn)

    def bump(self, peak_g: float, ms: float, ring_hz: float = 8.0,
             ring_tau_ms: float = 120.0) -> float:
        """A knock: a half-sine pulse of `peak_g` over `ms`, then the basket
        rings down (damped `ring_hz`, 30% of the peak) to the same load."""
        w = 2 * math.pi * ring_hz / 1000.0
        ring_ms = 5 * ring_tau_ms

        def fn(t):
            if t < ms:
                return peak_g * math.sin(math.pi * t / ms)
            u = t - ms
            return -0.3 * peak_g * math.exp(-u / ring_tau_ms) * math.sin(w * u)
        return self._add(ms + ring_ms, fn)

    def hand(self, press_g: float, ms: float, tremor_g: float | None = None,
             tremor_hz: float = 9.0, wander_g: float | None = None,
             ramp_ms: float = 150.0) -> float:
        """A hand resting on the basket: presses to `press_g` over ramp_ms,
        holds for `ms` with physiological tremor (8-12 Hz) and a slow wander,
        then lets go. Defaults: tremor 2% of the press (at least 3 g), wander
        5% (at least 5 g): estimates, see docs/scale.md."""
        tremor = max(3.0, 0.02 * abs(press_g)) if tremor_g is None else tremor_g
        wander = max(5.0, 0.05 * abs(press_g)) if wander_g is None else wander_g
        w = 2 * math.pi * tremor_hz / 1000.0
        p1 = self.rng.uniform(0, 2 * math.pi)
        p2 = self.rng.uniform(0, 2 * math.pi)
        f2 = 2 * math.pi * self.rng.uniform(0.2, 0.6) / 1000.0
        total = ramp_ms + ms + ramp_ms

        def fn(t):
            if t < ramp_ms:
                k = t / ramp_ms
            elif t < ramp_ms + ms:
                k = 1.0
            else:
                k = max(0.0, (total - t) / ramp_ms)
            return k * (press_g + tremor * math.sin(w * t + p1)
                        + wander * math.sin(f2 * t + p2))
        return self._add(total, fn)

    def dead(self, is_dead: bool = True) -> None:
        """A sensor that stops answering: next_raw() returns None."""
        self._dead = bool(is_dead)

    # -- conversions ------------------------------------------------------
    def next_raw(self) -> int | None:
        """One conversion; advances time by one period. None when dead."""
        t = self.t_ms
        self.t_ms = t + self.period_ms
        g = self.load_at(t) + self.drift_g_per_ms * t
        if not self._primed:
            self._fir = [g] * len(self._fir)
            self._primed = True
        self._fir[self._fi] = g
        self._fi = (self._fi + 1) % len(self._fir)
        if self._dead:
            return None
        rng = self.rng
        good = self._counts(sum(self._fir) / len(self._fir) + rng.gauss(0.0, self.noise_g))
        if self.spike_rate and rng.random() < self.spike_rate:
            if rng.random() < 0.75:
                return rng.choice(GLITCHES)
            return _wrap(good ^ (1 << rng.randint(16, 22)))
        return good

    def _counts(self, g: float) -> int:
        # The ADC saturates at full scale.
        v = int(round(self.offset + g * self.counts_per_g))
        return MIN_RAW if v < MIN_RAW else MAX_RAW if v > MAX_RAW else v

    def grams_of(self, raw: int) -> float:
        return (raw - self.offset) / self.counts_per_g


def _wrap(v: int) -> int:
    v &= 0xFFFFFF
    return v - 0x1000000 if v & 0x800000 else v
