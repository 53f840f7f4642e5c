# The settle state machine, in integer HX711 counts (docs/scale.md "Settle").
#
#   START ──quiet──▶ SETTLED ──|y-level| > trigger for trig_n──▶ UNSETTLED
#   UNSETTLED ──last quiet_n within band──▶ SETTLING
#   SETTLING ──a sample off the running mean by > half──▶ UNSETTLED
#   SETTLING ──hold_n quiet samples──▶ SETTLED (CHANGED if |delta| is large
#                                       enough, else SAME: a return to the
#                                       previous level is not an event)
#
# Time is counted in samples (the HX711's conversion clock); the pipeline
# turns sample counts into ms. Every per-sample operation works on small ints
# and one preallocated array, so SETTLED, the state the scale spends almost
# all its time in, allocates nothing. The change-window sums (UNSETTLED and
# SETTLING only) can outgrow a 32-bit port's small ints on large loads and
# then become big ints; that happens only while the load moves.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731
from array import array

START = const(0)
SETTLED = const(1)
UNSETTLED = const(2)
SETTLING = const(3)
STATE_NAMES = ("start", "settled", "unsettled", "settling")

# Holds of one change rejected for tremor or trend before the long (suspect)
# hold is required: a placement's tail may fail one, a hand's tremor fails
# them for seconds and would pass a short one by chance sooner or later.
SUSPECT_AFTER = const(2)

# Why a hold is rough (_rough_why)
ROUGH_VAR = const(1)
ROUGH_TREND = const(2)
ROUGH_TREMOR = const(3)

# push() results
NONE = const(0)
BEGIN = const(1)      # SETTLED -> UNSETTLED: the load started to change
CHANGED = const(2)    # settled at a new level (delta beyond threshold)
SAME = const(3)       # settled back at (about) the previous level
FIRST = const(4)      # first settle after start: the level is now known
TRACKED = const(5)    # settled, a quiet window passed (drift tracked)


class SettleDetector:
    def __init__(self, half, trigger, min_delta, track_step,
                 quiet_n=8, hold_n=12, trig_n=2, long_n=80, wander=0,
                 suspect_n=0, refine_n=0):
        if half < 1 or trigger < 1 or min_delta < 1 or track_step < 1:
            raise ValueError("settle thresholds must be >= 1 count")
        if not 2 <= quiet_n <= hold_n:
            raise ValueError("need 2 <= quiet_n <= hold_n")
        if trig_n < 1:
            raise ValueError("trig_n must be >= 1")
        self.half = half            # max deviation from the mean while quiet
        self.trigger = trigger      # deviation from level that starts a change
        self.min_delta = min_delta  # smallest level change that is an event
        self.track_step = track_step  # max level drift followed per quiet window
        self.quiet_n = quiet_n
        self.hold_n = hold_n
        self.trig_n = trig_n
        self.long_n = long_n      # quiet this long settles even if rough ...
        self.wander = wander      # ... if its hold levels spread at most this
        # Once SUSPECT_AFTER holds of this change were rejected as rough, the
        # next ones must last suspect_n samples: a hand gets one short look, not one every
        # 50 ms for seconds (0: off). hold_n itself is set by the pipeline
        # from the learned noise (a longer hold on a noisier cell).
        self.hold_min = hold_n
        self.suspect_n = suspect_n
        self._rr = 0              # holds of this change rejected as rough
        # The last settle passed only by the long-quiet rule, or after holds
        # of its change were rejected for tremor or trend.
        self.suspect = False
        # After a settle the level is refined by averaging the quiet windows
        # that follow, up to refine_n samples in all, then only drift-tracked.
        self.refine_n = refine_n
        self._rfn = 0
        self._quiet_since = -1    # start of the current quiet stretch
        self._ring = array("i", [0] * quiet_n)
        self._xring = array("i", [0] * quiet_n)  # the same samples before the median
        self._ri = 0
        self._rn = 0
        self.state = START
        self._first = True    # no level known yet: the first settle is FIRST
        self.n = 0            # samples seen
        self.level = 0        # settled level, counts
        # Level of the last reported settle (the pipeline sets it when it
        # emits); follows drift like `level`. Changes are measured from it, so
        # a slow placement that settles part-way (below min_delta) and then
        # again is still one item, and a hand lifted off is no change.
        self.ref = 0
        self._over = 0
        self._over_first = 0
        # Largest hold variance (counts^2) accepted as settled; 0 = any.
        # The pipeline sets it from the noise seen while truly settled, so a
        # hand's tremor does not pass for a new level.
        self.max_var = 0
        self.rough = 0       # holds rejected as too rough (telemetry)
        self.quiet_var = 0   # variance of the last quiet window (TRACKED)
        # Tremor: energy of the lag-4 difference y[n] - y[n-4]. Four samples
        # are half a period at 10 Hz, so it doubles a 8-12 Hz tremor (a hand)
        # while white noise only gains sqrt(2), and slow wander cancels.
        self._lag = array("i", [0] * 4)
        self._li = 0
        self._qd4 = 0        # sum of d4^2 over the current settled window
        self._qdn = 0
        self.quiet_d4 = 0    # mean d4^2 of the last quiet window (TRACKED)
        self.max_d4 = 0      # largest mean d4^2 accepted in a hold; 0 = any
        self.max_trend = 0   # largest (sum of d4)^2 accepted in a hold; 0 = any
        self._sn = 0         # rough holds in the current quiet stretch
        self._smin = 0       # ... and the spread of their levels
        self._smax = 0
        self._reset_change()

    def _reset_change(self):
        self.pre = self.ref    # reported level before the change
        self._rr = 0
        self.t_start = self.n  # sample index where the change began
        self.t_rest = self.n   # sample index where the quiet hold began
        self.cn = 0            # samples in the change window
        self.cmin = 0
        self.cmax = 0
        self.cs = 0            # sum of (y - pre)
        self.css = 0           # sum of (y - pre)^2
        self.hn = 0            # samples in the hold
        self.h0 = 0            # hold reference (first quiet mean)
        self.hs = 0            # sum of (y - h0) over the hold
        self.hss = 0           # sum of (y - h0)^2 over the hold
        self.hxs = 0           # sum of (x - h0) over the hold: the level
        self.hd4 = 0           # sum of d4^2 over pairs inside the hold
        self.hm4 = 0           # sum of d4: a trend (telescopes: last 4 - first 4)
        self.hdn = 0

    def _ring_quiet(self):
        # True when the last quiet_n samples span at most 2*half.
        r = self._ring
        lo = hi = r[0]
        for k in range(1, self.quiet_n):
            v = r[k]
            if v < lo:
                lo = v
            elif v > hi:
                hi = v
        return hi - lo <= 2 * self.half

    def _ring_mean(self):
        s = 0
        for v in self._ring:
            s += v - self.level
        return self.level + s // self.quiet_n

    def _xring_mean(self):
        s = 0
        for v in self._xring:
            s += v - self.level
        return self.level + s // self.quiet_n

    def restart(self):
        # After a sensor outage: keep the level, look again for quiet.
        self._rn = 0
        self._over = 0
        if self.state != START:
            self._reset_change()
            self.state = UNSETTLED

    def push(self, y, x=None):
        # y: the filtered sample (median); x: the same conversion before the
        # median (spikes replaced), where a tremor still shows: a median of
        # five flattens a 9 Hz wave sampled at 80 SPS. Tremor is measured on x.
        if x is None:
            x = y
        li = self._li
        d4 = x - self._lag[li]
        self._lag[li] = x
        self._li = (li + 1) & 3
        i = self._ri
        self._ring[i] = y
        self._xring[i] = x
        self._ri = i + 1 if i + 1 < self.quiet_n else 0
        if self._rn < self.quiet_n:
            self._rn += 1
        self.n += 1
        st = self.state
        if st == SETTLED:
            d = y - self.level
            if d > self.trigger or d < -self.trigger:
                self._over += 1
                if self._over == 1:
                    self._over_first = self.n - 1
                if self._over >= self.trig_n:
                    self._over = 0
                    self._reset_change()
                    self.t_start = self._over_first
                    self.state = UNSETTLED
                    self._account(y)
                    return BEGIN
                return NONE
            self._over = 0
            self._qd4 += d4 * d4
            self._qdn += 1
            if self._ri != 0:
                return NONE
            qd = self._qd4 // self._qdn
            self._qd4 = 0
            self._qdn = 0
            if self._ring_quiet():
                self.quiet_d4 = qd
                m = self._ring_mean()
                ss = 0
                for v in self._ring:
                    ss += (v - m) * (v - m)
                self.quiet_var = ss // self.quiet_n
                d = self._xring_mean() - self.level
                if -self.half <= d <= self.half:
                    if self._rfn < self.refine_n:
                        # Just settled: the level is the mean of every quiet
                        # sample since (a short hold's mean is noisy, and the
                        # next change is measured from here).
                        self._rfn += self.quiet_n
                        d = d * self.quiet_n // self._rfn
                    # Then follow slow drift (and creep), at most track_step
                    # per quiet window, so it never turns into a change.
                    elif d > self.track_step:
                        d = self.track_step
                    elif d < -self.track_step:
                        d = -self.track_step
                    self.level += d
                    self.ref += d
                return TRACKED
            return NONE
        if st != START:
            self._account(y)
        if st == SETTLING:
            # Quiet means: within half of the running hold mean.
            dev = (y - self.h0) * self.hn - self.hs
            lim = self.half * self.hn
            if dev > lim or dev < -lim:
                self.state = UNSETTLED
                self._quiet_since = -1
                return NONE
            d = y - self.h0
            self.hn += 1
            self.hs += d
            self.hss += d * d
            self.hxs += x - self.h0
            self.hd4 += d4 * d4
            self.hm4 += d4
            self.hdn += 1
            if self.hn >= self._hold_need():
                return self._end_hold()
            return NONE
        # START or UNSETTLED: wait for quiet_n quiet samples.
        if self._rn < self.quiet_n or not self._ring_quiet():
            self._quiet_since = -1
        else:
            fresh = self._quiet_since < 0
            self.state = SETTLING
            # The ring can reach back before the change began (a step just
            # over the trigger from the top of the noise band): rest never
            # starts before the change did.
            t = self.n - self.quiet_n
            self.t_rest = t if t > self.t_start else self.t_start
            if fresh:
                self._quiet_since = self.t_rest
                self._sn = 0
            self.h0 = self._ring_mean()
            self.hn = 0
            self.hs = 0
            self.hss = 0
            self.hxs = 0
            for v in self._ring:
                d = v - self.h0
                self.hn += 1
                self.hs += d
                self.hss += d * d
            for v in self._xring:
                self.hxs += v - self.h0
            # Lag-4 pairs inside the ring (oldest first from _ri), so the
            # motion before the hold does not count as tremor.
            r = self._xring
            q = self.quiet_n
            b = self._ri
            self.hd4 = 0
            self.hm4 = 0
            self.hdn = 0
            for k in range(4, q):
                d = r[(b + k) % q] - r[(b + k - 4) % q]
                self.hd4 += d * d
                self.hm4 += d
                self.hdn += 1
            if self.hn >= self._hold_need():
                return self._end_hold()
        return NONE

    def _hold_need(self):
        if self._rr >= SUSPECT_AFTER and self.suspect_n > self.hold_n:
            return self.suspect_n
        return self.hold_n

    def _end_hold(self):
        why = 0 if self._first else self._rough_why()
        self.suspect = self._rr > 0
        if why:
            if not self._long_quiet():
                # Quiet by range but rough against the settled noise (a hand's
                # tremor): keep looking; the ring re-arms the hold at once.
                self.state = UNSETTLED
                self.rough += 1
                if why == ROUGH_TREMOR:
                    # A hand (the tail of a placement, or a slow one, fails
                    # on variance or trend, and may do so for a while).
                    self._rr += 1
                return NONE
            self.suspect = True
        return self._settle()

    def _rough_why(self):
        # The hold against the noise learned while settled: its variance
        # (max_var), its trend (max_trend) and its tremor energy (max_d4);
        # 0 disables either. Returns 0 (steady) or the first rule it broke.
        hn = self.hn
        if self.max_var and self.hss * hn - self.hs * self.hs > self.max_var * hn * hn:
            return ROUGH_VAR
        if not self.max_d4:
            return 0
        if self.max_trend and self.hm4 * self.hm4 > self.max_trend:
            return ROUGH_TREND   # still moving: a slow placement, a hand's wander
        if self.hdn and self.hd4 > self.max_d4 * self.hdn:
            return ROUGH_TREMOR
        return 0

    def _long_quiet(self):
        # A rough hold still settles when the signal has been quiet by range
        # for long_n and the levels of its rough holds stayed within `wander`
        # of each other: steady vibration from the surroundings. A hand
        # resting on an item wanders (slowly, by several grams), so it does
        # not pass, and when it lifts the load returns to the old level.
        lvl = self.h0 + self.hs // self.hn
        if self._sn == 0:
            self._smin = self._smax = lvl
        elif lvl < self._smin:
            self._smin = lvl
        elif lvl > self._smax:
            self._smax = lvl
        self._sn += 1
        if self.n - self._quiet_since < self.long_n:
            return False
        return not self.wander or self._smax - self._smin <= self.wander

    def _account(self, y):
        d = y - self.pre
        if self.cn == 0:
            self.cmin = self.cmax = y
        elif y < self.cmin:
            self.cmin = y
        elif y > self.cmax:
            self.cmax = y
        self.cn += 1
        self.cs += d
        self.css += d * d

    def _settle(self):
        # The new level is the hold's mean (integer counts).
        self.state = SETTLED
        self._over = 0
        self._quiet_since = -1  # the next change starts its own quiet stretch
        self._rr = 0
        # The settled window's lag-4 sums restart here: left over from before
        # the change they hold the first samples of its motion (a baseline
        # learned from them read a placement as 50x the cell's noise).
        self._qd4 = 0
        self._qdn = 0
        # The level is the hold's mean before the median: every sample counts
        # once (the median's outputs overlap), so it is the better estimate.
        self.level = self.h0 + self.hxs // self.hn
        self._rfn = self.hn
        if self._first:
            self._first = False
            self.ref = self.level
            return FIRST
        d = self.level - self.pre
        if d >= self.min_delta or d <= -self.min_delta:
            return CHANGED
        if -self.trigger <= d <= self.trigger:
            # The same load (drift, creep, a wobble's residue): follow it.
            # A larger difference is a change still under way: keep the ref.
            self.ref = self.level
        return SAME
