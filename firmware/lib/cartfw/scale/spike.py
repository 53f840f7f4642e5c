# Spike rejection for raw HX711 conversions.
#
# Two layers (docs/scale.md "Spikes"):
# 1. is_glitch() drops the HX711's spurious 2^n-1 reads (0x7FFFFF, 0xFFFFFF,
#    ...; bogde/HX711 issues #83 and #216, cited in
#    docs/figures.md: 1 to 5% of reads) before they reach
#    any filter, plus anything outside the 24-bit range.
# 2. Median5 passes the median of the last five accepted reads, which removes
#    any other outlier of up to two consecutive samples ("spikes that a median
#    filter removes", same source) at a cost of two samples (25 ms) of delay.
#
# Hot path: small ints only, one preallocated array; no allocation per sample.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731
from array import array

MIN_RAW = const(-0x800000)
MAX_RAW = const(0x7FFFFF)
_MASK24 = const(0xFFFFFF)
# Low 16 bits all ones: the whole 2^n-1 family from 0x00FFFF up to 0xFFFFFF.
# A genuine read lands there with probability 1/65536; dropping it costs one
# sample.
_LOW16 = const(0xFFFF)
_NEG_FULL = const(0x800000)  # negative full scale: a saturated or stuck read


def is_glitch(raw):
    if raw < MIN_RAW or raw > MAX_RAW:
        return True
    u = raw & _MASK24
    return (u & _LOW16) == _LOW16 or u == _NEG_FULL


def med5(a, b, c, d, e):
    # Median of five in six comparisons. Swaps are ROT_TWO, no tuples.
    if a > b:
        a, b = b, a
    if c > d:
        c, d = d, c
    if a > c:
        a, c = c, a
        b, d = d, b
    # a is below b, c and d: rank 1 or 2, never the median. The median is
    # now the second smallest of b, c, d, e (with c < d).
    if e > b:
        e, b = b, e
    if e > c:
        e, c = c, e
        b, d = d, b
    # e is below b, c, d: drop it; the answer is the smaller of b and c.
    return b if b < c else c


class Median5:
    def __init__(self):
        self._buf = array("i", [0, 0, 0, 0, 0])
        self._i = 0
        self._primed = False

    def reset(self):
        self._primed = False

    def push(self, v):
        b = self._buf
        if not self._primed:
            # Fill with the first value so the first outputs are not zeros.
            for k in range(5):
                b[k] = v
            self._primed = True
        b[self._i] = v
        self._i = self._i + 1 if self._i < 4 else 0
        return med5(b[0], b[1], b[2], b[3], b[4])
