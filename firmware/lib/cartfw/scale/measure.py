# A level measured by averaging, for tare and calibrate (docs/scale.md
# "Commands").
#
# The settle detector's thresholds are grams through the current
# calibration. On a fresh board that calibration is the template's, which
# can be several times off the cell's: 22.5 counts/g against a cell's 86
# makes the cell's 1 g rms noise wider than the settle band, and the
# detector can then stay "settling" for a minute. The commands that fix
# the calibration must not depend on it, so they can fall back to this:
# the mean of n conversions, accepted when its two halves agree within
# the noise the same conversions show (a steady load, whatever the
# calibration). Sums in counts from the first sample, so a steady load's
# sums stay small ints; nothing is allocated per sample.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

# Halves may differ by this many standard errors of their difference:
# a steady load fails it about once in 16,000 tries.
_K = const(4)


class LevelMeter:
    def __init__(self):
        self.n = 0          # conversions wanted; 0: idle
        self.k = 0          # taken
        self._base = 0
        self._s1 = 0        # sum of (x - base), first half
        self._s2 = 0        # ... second half
        self._ss = 0        # sum of (x - base)^2

    @property
    def active(self):
        return self.n > 0

    @property
    def ready(self):
        return self.n > 0 and self.k >= self.n

    def start(self, n):
        if n < 8:
            raise ValueError("level meter: need at least 8 conversions")
        self.n = n
        self.k = 0
        self._s1 = self._s2 = self._ss = 0

    def stop(self):
        self.n = 0

    def push(self, x):
        k = self.k
        if k >= self.n:
            return
        if k == 0:
            self._base = x
        d = x - self._base
        if k < self.n // 2:
            self._s1 += d
        else:
            self._s2 += d
        self._ss += d * d
        self.k = k + 1

    def level(self):
        """The mean (counts); ValueError when the load moved meanwhile."""
        if not self.ready:
            raise ValueError("load not settled (measuring)")
        n = self.k
        h1 = n // 2
        h2 = n - h1
        s = self._s1 + self._s2
        var = (self._ss - s * s / n) / (n - 1)
        if var < 0:
            var = 0
        diff = self._s2 / h2 - self._s1 / h1
        # standard error of the difference of two means of white noise
        se = (var / h1 + var / h2) ** 0.5
        self.n = 0
        if diff * diff > (_K * se + 1) ** 2:
            raise ValueError("load not settled (moving: the halves of %d conversions differ by %d counts, "
                             "noise %d counts rms)" % (n, int(diff), int(var ** 0.5)))
        return self._base + int(round(s / n))
