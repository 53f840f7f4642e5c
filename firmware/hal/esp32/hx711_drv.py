# HX711 on an ESP32: GPIO bit-bang, non-blocking read (docs/scale.md "Drivers").
#
# Datasheet timing (HX711 rev. 2.0, fig. 2 and table 3):
#   DOUT low        = a conversion is ready (the "falling edge" we poll for).
#   T1 DOUT falling -> first SCK rising  >= 0.1 us
#   T2 SCK rising   -> DOUT valid        <= 0.1 us
#   T3 SCK high     0.2 us .. 50 us  (high for > 60 us powers the chip down)
#   T4 SCK low      >= 0.2 us
#   24 pulses shift the result out MSB first (two's complement); pulses 25..27
#   pick the next conversion's input and gain: 25 = A/128, 26 = B/32, 27 = A/64.
# All pulses run with interrupts off, so no ISR or task switch can stretch
# SCK high past 60 us; the whole read takes about 25 x 2 us, well inside one
# 12.5 ms conversion at 80 SPS. Nothing is allocated while reading.
import micropython
from machine import Pin, disable_irq, enable_irq

_PULSES = {128: 1, 32: 2, 64: 3}  # extra pulses after the 24 data bits


class HX711:
    def __init__(self, sck, dout, gain=128, rate_pin=None):
        if gain not in _PULSES:
            raise ValueError("hx711 gain must be 128, 64 or 32, got %r" % (gain,))
        self._sck = Pin(sck, Pin.OUT, value=0)
        self._dout = Pin(dout, Pin.IN)
        self._extra = _PULSES[gain]
        if rate_pin is not None:
            # RATE high: 80 SPS (datasheet); many modules hard-wire it.
            self._rate = Pin(rate_pin, Pin.OUT, value=1)

    def ready(self):
        return self._dout.value() == 0

    def read(self):
        """One conversion as a signed int, or None when none is ready."""
        if self._dout.value():
            return None
        st = disable_irq()
        try:
            v = _shift(self._sck, self._dout, 24 + self._extra)
        finally:
            enable_irq(st)
        v &= 0xFFFFFF
        return v - 0x1000000 if v & 0x800000 else v

    def power_down(self):
        # SCK high for more than 60 us.
        self._sck.value(1)

    def power_up(self):
        # The first conversion after power-up needs ~500 ms to settle
        # (figures.md: SparkFun); the pipeline's settle logic absorbs it.
        self._sck.value(0)


@micropython.native
def _shift(sck, dout, pulses):
    # Read each bit while SCK is high: DOUT is valid 0.1 us after the rising
    # edge (T2) and stays until the next rising edge.
    v = 0
    for i in range(pulses):
        sck.on()
        b = dout.value()
        sck.off()
        if i < 24:
            v = (v << 1) | b
    return v


def open(cfg):
    """cfg: the board's "hx711" pins, e.g. {"sck": 4, "dout": 5}."""
    return HX711(cfg["sck"], cfg["dout"], cfg.get("gain", 128), cfg.get("rate"))
