# HX711 under the simulator: conversions come over the hardware link as
# `s <int>` lines at 80/s (docs/architecture.md "The hardware link").
#
# SimHX711 takes any source with take_sample() -> int | None (None: no
# conversion ready), so it is tested without a socket. open(cfg) wires it to
# the link client (hal/sim/hwlink.py, the lead's).
MIN_RAW = -0x800000
MAX_RAW = 0x7FFFFF


class SimHX711:
    def __init__(self, source):
        self._src = source

    def read(self):
        """One conversion as a signed 24-bit int, or None when none is ready.
        ValueError (naming the value) for anything a real HX711 cannot send;
        the caller counts it and goes on."""
        v = self._src.take_sample()
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError("hx711 sample is not an int: %r" % (v,))
        if v < MIN_RAW or v > MAX_RAW:
            raise ValueError("hx711 sample out of 24-bit range: %d" % v)
        return v


def open(cfg=None):
    import hwlink
    return SimHX711(hwlink.link().samples)
