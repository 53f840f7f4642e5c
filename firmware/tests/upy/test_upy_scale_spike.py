# Runs inside micropython (collected by cart_testing.upy_runner).
# heapsize: 64k
# The HX711 glitch filter on the device's interpreter (figures.md: values of
# 2^n-1 in 1-5% of reads; spikes that a median filter removes).
import gc
from cartfw.scale import spike


def test_2n_minus_1_reads_are_glitches():
    for n in range(16, 24):
        assert spike.is_glitch((1 << n) - 1), n
    assert spike.is_glitch(-0x800000)


def test_ordinary_reads_are_not_glitches():
    for v in (0, 1, 12345, -12345, 86 * 412, 0x7FFFFE, -0x7FFFFF):
        assert not spike.is_glitch(v), v


def test_median5_is_the_median_of_every_permutation():
    vals = [5, 1, 4, 2, 3]
    # all 120 orders of five distinct values
    def perms(xs):
        if len(xs) <= 1:
            yield xs
            return
        for i in range(len(xs)):
            for p in perms(xs[:i] + xs[i + 1:]):
                yield [xs[i]] + p
    for p in perms(vals):
        assert spike.med5(*p) == 3, p


def test_median_filter_removes_a_lone_spike_without_allocating():
    m = spike.Median5()
    for _ in range(5):
        m.push(1000)
    gc.collect()
    before = gc.mem_free()
    a = m.push(1000)
    b = m.push(900000)
    c = m.push(1000)
    d = m.push(1000)
    after = gc.mem_free()
    assert after == before, "the filter allocated %d bytes in the hot path" % (before - after)
    assert (a, b, c, d) == (1000, 1000, 1000, 1000), (a, b, c, d)
