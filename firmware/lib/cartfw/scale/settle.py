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

# push() results
NONE = const(0)
BEGIN = const(1)      # SETTLED -> UNSETTLED: the load started to change
CHANGED = const(2)    # settled at a new level (delta beyond threshold)
SAME = const(3)       # settled back at (about) the previous level
FIRST = const(4)      # first settle after start: the level is now known
TRACKED = const(5)    # settled, a quiet window passed (drift tracked)


class SettleDetector:
    def __init__(self, half, trigger, min_delta, track_step,
                 quiet_n=8, hold_n=12, trig_n=2, long_n=80):
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
        self.long_n = long_n      # quiet this long settles even if rough
        self._quiet_since = -1    # start of the current quiet stretch
        self._ring = array("i", [0] * quiet_n)
        self._ri = 0
        self._rn = 0
        self.state = START
        self._first = True    # no level known yet: the first settle is FIRST
        self.n = 0            # samples seen
        self.level = 0        # settled level, counts
        self._over = 0
        self._over_first = 0
        # Largest hold variance (counts^2) accepted as settled; 0 = any.
        # The pipeline sets it from the noise seen while truly settled, so a
        # hand's tremor does not pass for a new level.
        self.max_var = 0
        self.rough = 0       # holds rejected as too rough (telemetry)
        self.quiet_var = 0   # variance of the last quiet window (TRACKED)
        self._reset_change()

    def _reset_change(self):
        self.pre = self.level  # level before the change
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

    def restart(self):
        # After a sensor outage: keep the level, look again for quiet.
        self._rn = 0
        self._over = 0
        if self.state != START:
            self._reset_change()
            self.state = UNSETTLED

    def push(self, y):
        i = self._ri
        self._ring[i] = y
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
            if self._ri == 0 and self._ring_quiet():
                # Follow slow drift (and creep) of the settled level, at most
                # track_step per quiet window, so it never turns into a change.
                m = self._ring_mean()
                ss = 0
                for v in self._ring:
                    ss += (v - m) * (v - m)
                self.quiet_var = ss // self.quiet_n
                d = m - self.level
                if -self.half <= d <= self.half:
                    if d > self.track_step:
                        d = self.track_step
                    elif d < -self.track_step:
                        d = -self.track_step
                    self.level += d
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
            if self.hn >= self.hold_n:
                if self.max_var and not self._first and \
                        self.hss * self.hn - self.hs * self.hs > self.max_var * self.hn * self.hn \
                        and self.n - self._quiet_since < self.long_n:
                    # Quiet by range but rough against the settled noise (a
                    # hand's tremor): keep looking; the ring re-arms the hold
                    # at once. Quiet by range for long_n settles anyway, so a
                    # noisier place cannot block settling for good.
                    self.state = UNSETTLED
                    self.rough += 1
                    return NONE
                return self._settle()
            return NONE
        # START or UNSETTLED: wait for quiet_n quiet samples.
        if self._rn < self.quiet_n or not self._ring_quiet():
            self._quiet_since = -1
        else:
            self.state = SETTLING
            self.t_rest = self.n - self.quiet_n
            if self._quiet_since < 0:
                self._quiet_since = self.t_rest
            self.h0 = self._ring_mean()
            self.hn = 0
            self.hs = 0
            self.hss = 0
            for v in self._ring:
                d = v - self.h0
                self.hn += 1
                self.hs += d
                self.hss += d * d
            if self.hn >= self.hold_n:
                return self._settle()
        return NONE

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
        self.level = self.h0 + self.hs // self.hn
        if self._first:
            self._first = False
            return FIRST
        d = self.level - self.pre
        if d >= self.min_delta or d <= -self.min_delta:
            return CHANGED
        return SAME
