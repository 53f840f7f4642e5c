# Raw HX711 counts in, protocol events out (docs/protocol.md §6.1, §6.2, §6.4).
#
# ScalePipeline.feed(raw) takes one conversion and returns None or
# (type, fields) for rt.event(); poll(now_ms) reports a sensor that stopped
# answering. Thresholds are given in grams, converted to counts once.
# Defaults and their sources: docs/scale.md "Parameters".
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731
from cartfw.scale.spike import is_glitch, Median5
from cartfw.scale import settle as _s
from cartfw.scale.measure import LevelMeter

# The raw value feeds the tremor measure unless it is this far from the
# median: a flipped bit 16 or higher (2^16 counts and more); a hand's tremor
# and the cell's noise are far below it.
_SPIKE = const(1 << 15)

# calibrate's least span, counts: the HX711's input noise at 80 SPS, 90 nV
# rms, is 38-58 counts at gain 128 (AVDD 5-3.3 V, figures.md); a "reference
# weight" under 17-26 times that is no weight on the scale (calibrate run
# before it was put on).
_MIN_SPAN = const(1000)

# window.unsettled_seq of a provisional's final that adds no change of its
# own: ScaleLoop puts the provisional's unsettled_seq there.
SAME_WINDOW = "same"

# name: (default, lo, hi). Checked by ScalePipeline; errors name the key.
PARAMS = {
    "rate_hz": (80, 1, 1000),          # HX711 RATE pin high: 80 SPS
    "stable_g": (3.0, 0.1, 1000.0),    # quiet: within this of the mean
    "trigger_g": (5.0, 0.1, 5000.0),   # change starts beyond this
    "min_delta_g": (15.0, 0.1, 50000.0),  # smallest item event (items >= 20 g)
    "noise_k": (10.0, 0.0, 100.0),     # ... and at least noise_k x noise
    "quiet_ms": (100, 10, 5000),       # quiet window to start the hold
    "hold_ms": (125, 10, 10000),       # total quiet time before settled ...
    "hold_noise_g": (1.2, 0.1, 100.0),  # ... scaled by learned noise / this when above
    "hold_max_ms": (250, 10, 10000),   # ... up to this
    "suspect_hold_ms": (500, 0, 10000),  # hold after a rough one in the same change (0: off)
    "refine_ms": (2000, 0, 60000),     # after a settle, average the level this long
    "trig_ms": (25, 1, 1000),          # time beyond trigger to unsettle
    "long_hold_ms": (1000, 10, 60000),  # quiet this long settles even if rough
    "track_g_per_s": (0.2, 0.001, 100.0),  # drift followed while settled
    "zero_band_g": (5.0, 0.0, 1000.0),  # auto-zero only within this of tare
    "rough_k": (2.2, 1.0, 100.0),      # hold rms must be <= rough_k x settled rms
    "rough_floor_g": (0.4, 0.0, 100.0),  # ... or <= this, whichever is larger
    "tremor_k": (1.6, 1.0, 100.0),     # hold lag-4 rms <= tremor_k x settled one
    "tremor_floor_g": (0.5, 0.0, 100.0),  # ... or <= this, whichever is larger
    "trend_k": (3.0, 0.5, 100.0),     # hold trend <= trend_k sigma of noise
    "wander_g": (3.0, 0.0, 1000.0),    # long hold: rough hold levels spread <= this
    "motion_ms": (0, 0, 60000),        # 0: off. See docs/scale.md "unsettled"
    "prov_ms": (1000, 0, 10000),       # a removal or a rough settle is provisional this long (0: off)
    "timeout_ms": (1000, 50, 600000),  # no sample this long: hx711_timeout
    # A settle back near the level it left (under min_delta_g) after the
    # load went min_delta_g past both levels (out then in, or in then out)
    # that still moved it small_g, and small_noise_k x the hold's rms noise,
    # is sent as a `weight` event: a swap for a product of nearly the same
    # weight (0: off; docs/scale.md "Small changes").
    "small_g": (6.0, 0.0, 1000.0),
    "small_noise_k": (4.0, 0.0, 100.0),
}


def check_params(p):
    """Return a full parameter dict; ValueError names a bad key or value."""
    out = {}
    for k in p:
        if k not in PARAMS:
            raise ValueError("scale param %s: unknown key" % k)
    for k in PARAMS:
        dflt, lo, hi = PARAMS[k]
        v = p.get(k, dflt)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("scale param %s: must be a number" % k)
        if not lo <= v <= hi:
            raise ValueError("scale param %s: %r not in %r..%r" % (k, v, lo, hi))
        out[k] = v
    return out


def check_known_g(known_g):
    """calibrate's reference weight: ValueError unless a number > 0."""
    if isinstance(known_g, bool) or not isinstance(known_g, (int, float)) or not known_g > 0:
        raise ValueError("calibrate: known_g must be a number > 0")


def _ms_to_n(ms, rate):
    n = (ms * rate + 999) // 1000
    return int(n) if n >= 1 else 1


class ScalePipeline:
    def __init__(self, counts_per_g, offset=0, **params):
        p = check_params(params)
        self.p = p
        self.rate = int(p["rate_hz"])
        self.offset = int(offset)    # tare, counts
        self.glitches = 0
        self.samples = 0
        self.median = Median5()
        self._last_ms = None
        self._timed_out = False
        self._same_at = -(1 << 30)  # sample index of the last SAME settle
        self.quiet_unsettled = 0    # unsettled events held back in motion
        # Provisional weight events (protocol §6.1 `prov` / `replaces`): a
        # removal (the "out" of a swap?) or a settle after rough holds (a hand
        # still on it?) is sent at once but stays open prov_ms; a change that
        # begins meanwhile is reported with it as one final event, else the
        # refined level is. Counts and sample indices only: nothing allocated
        # while it waits.
        self._prov = False          # a provisional event is open
        self._prov_pre = 0          # its level before the change, counts
        self._prov_at = 0           # sample index it was sent at
        self._prov_t0 = 0           # sample index its change began
        self._prov_up = False       # its change went up (counts)
        self._prov_f = None         # its fields, for the final's window
        self._queued = None         # an event to return at the next quiet sample
        # tare / calibrate on a load the detector has not settled (measure.py)
        self.meter = LevelMeter()
        self.set_scale(counts_per_g)

    def set_scale(self, counts_per_g):
        if isinstance(counts_per_g, bool) or not isinstance(counts_per_g, (int, float)) \
                or counts_per_g == 0:
            raise ValueError("counts_per_g: must be a non-zero number")
        self.cpg = float(counts_per_g)
        p = self.p
        c = abs(self.cpg)
        q = _ms_to_n(p["quiet_ms"], self.rate)
        old = getattr(self, "det", None)
        self.det = _s.SettleDetector(
            half=max(1, int(p["stable_g"] * c + 0.5)),
            trigger=max(1, int(p["trigger_g"] * c + 0.5)),
            min_delta=max(1, int(p["min_delta_g"] * c + 0.5)),
            track_step=max(1, int(p["track_g_per_s"] * c * q / self.rate + 0.5)),
            quiet_n=q,
            hold_n=max(q, _ms_to_n(p["hold_ms"], self.rate)),
            trig_n=_ms_to_n(p["trig_ms"], self.rate),
            long_n=_ms_to_n(p["long_hold_ms"], self.rate),
            wander=int(p["wander_g"] * c + 0.5),
            suspect_n=_ms_to_n(p["suspect_hold_ms"], self.rate) if p["suspect_hold_ms"] else 0,
            refine_n=_ms_to_n(p["refine_ms"], self.rate) if p["refine_ms"] else 0)
        self._hold_n0 = self.det.hold_n
        self._hold_nmax = max(self._hold_n0, _ms_to_n(p["hold_max_ms"], self.rate))
        # learned lag-4 energy is 2 sigma^2 for white noise: hold_n grows
        # with sigma / hold_noise_g; compare squares, integer math per window.
        self._hold_d4 = int(2 * (p["hold_noise_g"] * c) ** 2) or 1
        self._zero_band = int(p["zero_band_g"] * c + 0.5)
        self._motion_n = _ms_to_n(p["motion_ms"], self.rate) if p["motion_ms"] else -1
        self._prov_n = _ms_to_n(p["prov_ms"], self.rate) if p["prov_ms"] else 0
        self._floor_var = int((p["rough_floor_g"] * c) ** 2)
        self._k2x64 = int(p["rough_k"] * p["rough_k"] * 64 + 0.5)  # int math per window
        self._base_var = 0  # EMA of quiet-window variance while settled
        self._floor_d4 = int(2 * (p["tremor_floor_g"] * c) ** 2)
        self._tk2x64 = int(p["tremor_k"] * p["tremor_k"] * 64 + 0.5)
        # The sum of d4 over a hold is (last 4 samples) - (first 4): for
        # white noise its variance is 8 sigma^2 = 4 x the mean d4^2.
        self._trx64 = int(4 * p["trend_k"] * p["trend_k"] * 64 + 0.5)
        self._base_d4 = 0   # EMA of quiet-window lag-4 energy while settled
        self._n_learned = 0    # quiet windows learned (up to 16)
        self._pend_ok = False  # a quiet window waiting to be learned
        self._pend_var = 0
        self._pend_d4 = 0
        if old is not None and old.state == _s.SETTLED:
            # Recalibrated: keep the known level, not the thresholds.
            self.det.level = old.level
            self.det.ref = old.ref
            self.det.state = _s.SETTLED
            self.det._first = False
            self.det.n = old.n

    # -- conversions ---------------------------------------------------
    def grams(self, counts):
        return (counts - self.offset) / self.cpg

    def ms(self, n):
        return n * 1000 // self.rate

    @property
    def state(self):
        return _s.STATE_NAMES[self.det.state]

    @property
    def total_g(self):
        # Last settled total, None before the first settle.
        if self.det._first:
            return None
        return self.grams(self.det.level)

    # -- commands (protocol §9) ---------------------------------------
    @property
    def settled(self):
        return self.det.state == _s.SETTLED

    def _command_level(self, what, level):
        # The level a command works from: the one given (a LevelMeter's),
        # else the detector's, which must be settled.
        if level is not None:
            return int(level)
        if self.det.state != _s.SETTLED:
            raise ValueError("%s: load not settled (%s)" % (what, self.state))
        return self.det.level

    def tare(self, level=None):
        """Zero at the settled level (or `level`, counts); ValueError when
        not settled."""
        self.offset = self._command_level("tare", level)
        return self.offset

    def calibrate(self, known_g, level=None):
        """counts/gram from a known weight on the settled scale (or at
        `level`, counts)."""
        check_known_g(known_g)
        span = self._command_level("calibrate", level) - self.offset
        if -_MIN_SPAN < span < _MIN_SPAN:
            raise ValueError("calibrate: the load is %d counts from the tare (at least %d):"
                             " is the reference weight on the scale?" % (span, _MIN_SPAN))
        self.set_scale(span / known_g)
        return self.cpg

    # -- the hot path ----------------------------------------------------
    def feed(self, raw, now_ms=None):
        """One conversion. Returns None or (type, fields)."""
        if now_ms is not None:
            self._last_ms = now_ms
        self._timed_out = False
        self.samples += 1
        if is_glitch(raw):
            self.glitches += 1
            return None
        det = self.det
        m = self.median.push(raw)
        # The raw value for the tremor measure, unless the median calls it
        # a spike (further off than the trigger): then the median.
        d = raw - m
        x = raw if -_SPIKE <= d <= _SPIKE else m
        if self.meter.n:
            self.meter.push(x)
        r = det.push(m, x)
        if r == _s.NONE:
            q = self._queued     # an event held back one sample (see BEGIN)
            if q is not None:
                self._queued = None
            return q
        if r == _s.TRACKED:
            # A window is learned one window late, once the next one was
            # quiet too: the last window before a change can hold its first
            # sample, still inside the trigger but moving.
            if self._pend_ok:
                self._learn_noise(self._pend_var, self._pend_d4)
            self._pend_ok = -det.trigger <= det.level - det.ref <= det.trigger
            self._pend_var = det.quiet_var
            self._pend_d4 = det.quiet_d4
            # Auto-zero: follow drift only while the basket is empty and
            # settled (within zero_band of the tare), at the tracking rate.
            d = det.level - self.offset
            if d and -self._zero_band <= d <= self._zero_band:
                s = det.track_step
                self.offset += s if d > s else (-s if d < -s else d)
            if self._prov and det.n - self._prov_at >= self._prov_n:
                return ("weight", self._final_fields(det.level))
            q = self._queued
            if q is not None:
                self._queued = None
            return q
        self._pend_ok = False
        if r == _s.BEGIN:
            fin = None
            if self._prov and ((det.cs > 0) == self._prov_up or det.n - self._prov_at > self._prov_n):
                # The next change goes the same way (a second item in, or
                # out), or comes after prov_ms (a push): not one action with
                # the provisional, which is final now at its refined level,
                # sent right after the `unsettled` (so a gateway holding the
                # provisional's movement sees the new window open first).
                fin = ("weight", self._final_fields(det.level))
            if det.n - self._same_at <= self._motion_n:
                # The last change came back to the same level moments ago:
                # the cart is moving. No camera burst per wobble; a real
                # change still gives its `weight` (unsettled_seq null).
                self.quiet_unsettled += 1
                return fin
            self._queued = fin
            return ("unsettled", {"total_g": round(self.grams(det.pre), 1)})
        if r == _s.SAME:
            self._same_at = det.n
            if self._prov and det.n - self._prov_at >= self._prov_n:
                # a wobble that came back (a push) after prov_ms: final now
                return ("weight", self._final_fields(det.level))
            if not self._prov:
                f = self._small_fields()
                if f is not None:
                    det.ref = det.level
                    return ("weight", f)
        if r == _s.CHANGED:
            f = self._weight_fields()
            if f is None:
                return None
            if self._prov and det.n - self._prov_at > 4 * self._prov_n:
                # Began in time but settled long after (pushed meanwhile):
                # too late to be the same action; the provisional is final,
                # this change an event of its own, sent next.
                fin = self._final_fields(det.pre)
                det.ref = det.level
                self._queued = ("weight", f)
                return ("weight", fin)
            if self._prov:
                # A change the other way began while the provisional was
                # open: one action (out then in, a hand pressing and
                # lifting): one final event from the level before the
                # provisional, replacing it.
                self._prov = False
                self._prov_f = None
                delta = (det.level - self._prov_pre) / self.cpg
                f["delta_g"] = round(delta, 1)
                f["settle_ms"] = self.ms(det.n - 1 - self._prov_t0)
                f["window"]["pre_g"] = round(self.grams(self._prov_pre), 1)
                f["replaces"] = True   # ScaleLoop puts the provisional's seq here
            elif self._prov_n and (f["delta_g"] < 0 or det.suspect):
                self._prov = True
                self._prov_pre = det.pre
                self._prov_at = det.n
                self._prov_t0 = det.t_start
                self._prov_up = det.level > det.pre
                self._prov_f = f
                f["prov"] = True
            det.ref = det.level
            return ("weight", f)
        return None  # FIRST, SAME

    def _learn_noise(self, qv, qd):
        # Noise while settled at the reported level: the mean of the first 16
        # quiet windows, then an EMA (1/16 per window). A window more than
        # twice the estimate counts as twice it, so a hand that stays on the
        # basket after all cannot teach its tremor as the cell's noise fast.
        det = self.det
        n = self._n_learned
        if n < 16:
            n += 1
            self._n_learned = n
        bv = self._base_var
        if bv and qv > 2 * bv:
            qv = 2 * bv
        bv = bv + (qv - bv) // n
        self._base_var = bv
        lim = (bv * self._k2x64) >> 6
        det.max_var = lim if lim > self._floor_var else self._floor_var
        bd = self._base_d4
        if bd and qd > 2 * bd:
            qd = 2 * bd
        bd = bd + (qd - bd) // n
        self._base_d4 = bd
        lim = (bd * self._tk2x64) >> 6
        det.max_d4 = lim if lim > self._floor_d4 else self._floor_d4
        lim = (bd * self._trx64) >> 6
        f4 = 4 * self._floor_d4
        det.max_trend = lim if lim > f4 else f4
        # A noisier cell holds longer: n0 x sigma / hold_noise_g (sigma^2 =
        # bd / 2), so the level's error and the tremor test keep their power.
        n = self._hold_n0
        if bd > self._hold_d4:
            k = n * n * bd // self._hold_d4   # (n x sigma/ref)^2
            while n < self._hold_nmax and n * n < k:
                n += 1
        det.hold_n = n

    def _weight_fields(self, noise_k=None):
        det = self.det
        c = abs(self.cpg)
        hn = det.hn
        hm = det.hs / hn
        noise = (max(0.0, det.hss / hn - hm * hm)) ** 0.5 / c
        delta = (det.level - det.pre) / self.cpg
        # Relative to noise too: a wide wobble needs a wider step.
        if abs(delta) < (self.p["noise_k"] if noise_k is None else noise_k) * noise:
            return None
        n = det.cn
        cm = det.cs / n
        std = (max(0.0, det.css / n - cm * cm)) ** 0.5 / c
        lo = self.grams(det.cmin)
        hi = self.grams(det.cmax)
        if lo > hi:  # negative counts_per_g (a cell mounted the other way)
            lo, hi = hi, lo
        t_end = det.n - 1
        return {
            "delta_g": round(delta, 1),
            "total_g": round(self.grams(det.level), 1),
            "noise_g": round(noise, 2),
            "settle_ms": self.ms(t_end - det.t_start),
            "hold": "suspect" if det.suspect else "steady",
            "window": {
                "n": n,
                "pre_g": round(self.grams(det.pre), 1),
                "post_g": round(self.grams(det.level), 1),
                "min_g": round(lo, 1),
                "max_g": round(hi, 1),
                "std_g": round(std, 2),
                "dur_ms": self.ms(det.t_rest - det.t_start),
                "unsettled_seq": None,
            },
        }

    def _small_fields(self):
        # A SAME settle that moved the level by small_g or more (and clear
        # of the hold's noise): its fields, else None. Below min_delta_g
        # nothing this light is an item by itself; out and in of two
        # products of nearly one weight nets to this, and only this says
        # the window ended with a change.
        sg = self.p["small_g"]
        if not sg:
            return None
        det = self.det
        delta = (det.level - det.pre) / self.cpg
        if -sg < delta < sg or det.cn == 0:
            return None
        # Past both levels by min_delta: a slow placement that pauses part-way
        # never is (one item, sent whole when it settles again).
        lo = det.level if det.level < det.pre else det.pre
        hi = det.pre if det.level < det.pre else det.level
        if det.cmin > lo - det.min_delta and det.cmax < hi + det.min_delta:
            return None
        return self._weight_fields(self.p["small_noise_k"])

    def _final_fields(self, level):
        # The open provisional's final event at `level` (counts): no change
        # the other way began in prov_ms; the level has been refined since
        # (refine_ms), so is the delta. Its change and window are the
        # provisional's (ScaleLoop gives it the same unsettled_seq).
        self._prov = False
        pf = self._prov_f
        self._prov_f = None
        post = round(self.grams(level), 1)
        win = dict(pf["window"])
        win["post_g"] = post
        win["unsettled_seq"] = SAME_WINDOW
        return {
            "delta_g": round((level - self._prov_pre) / self.cpg, 1),
            "total_g": post,
            "noise_g": pf["noise_g"],
            "settle_ms": pf["settle_ms"],
            "hold": pf["hold"],
            "replaces": True,   # ScaleLoop puts the provisional's seq here
            "window": win,
        }

    def poll(self, now_ms):
        """Call when the driver had no sample. Returns an error event once
        per outage (protocol §6.4), then None until samples return."""
        if self._last_ms is None:
            self._last_ms = now_ms
            return None
        gap = now_ms - self._last_ms
        if gap > self.p["timeout_ms"] and not self._timed_out:
            self._timed_out = True
            self.median.reset()
            self.det.restart()
            return ("error", {"code": "hx711_timeout",
                              "detail": "no HX711 sample for %d ms" % gap})
        return None

    def tele(self):
        t = self.total_g
        return {"scale_state": self.state,
                "scale_total_g": None if t is None else round(t, 1),
                "scale_samples": self.samples,
                "scale_glitches": self.glitches,
                "hx711_ok": not self._timed_out}
