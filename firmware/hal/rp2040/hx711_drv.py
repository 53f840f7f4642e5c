# HX711 on an RP2040: a PIO state machine clocks the bits, the CPU only reads
# the RX FIFO (non-blocking). docs/scale.md "Drivers".
#
# Datasheet timing (see esp32/hx711.py): SCK high 0.2..50 us (> 60 us powers
# down), low >= 0.2 us, data valid 0.1 us after SCK rises, 24 bits MSB first
# then 1..3 pulses choosing the next gain. At 1 MHz each PIO cycle is 1 us:
# SCK is high for 2 cycles (2 us) per bit, whatever the CPU is doing.
import rp2
from machine import Pin

_PULSES = {128: 1, 32: 2, 64: 3}
_FREQ = 1_000_000


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW, in_shiftdir=rp2.PIO.SHIFT_LEFT,
             autopush=False)
def _hx711_pio():
    pull()                  # OSR = extra gain pulses - 1, kept for good
    wrap_target()
    set(x, 23)              # 24 data bits
    wait(0, pin, 0)         # DOUT low: a conversion is ready
    label("bit")
    set(pins, 1)            # SCK rises; DOUT valid 0.1 us later
    in_(pins, 1)            # sample DOUT while SCK is high (1 us after)
    set(pins, 0)            # SCK falls after 2 us high
    jmp(x_dec, "bit")
    mov(y, osr)
    label("gain")
    set(pins, 1) [1]
    set(pins, 0)
    jmp(y_dec, "gain")
    push(noblock)           # never stall: a full FIFO drops the newest
    wrap()


class HX711:
    def __init__(self, sck, dout, gain=128, sm_id=0, rate_pin=None):
        if gain not in _PULSES:
            raise ValueError("hx711 gain must be 128, 64 or 32, got %r" % (gain,))
        self._sm = rp2.StateMachine(sm_id, _hx711_pio, freq=_FREQ,
                                    set_base=Pin(sck), in_base=Pin(dout, Pin.IN))
        self._sm.put(_PULSES[gain] - 1)
        self._sm.active(1)
        if rate_pin is not None:
            self._rate = Pin(rate_pin, Pin.OUT, value=1)  # 80 SPS

    def read(self):
        """The oldest queued conversion as a signed int, or None."""
        if self._sm.rx_fifo() == 0:
            return None
        v = self._sm.get() & 0xFFFFFF
        return v - 0x1000000 if v & 0x800000 else v

    def deinit(self):
        self._sm.active(0)


def open(cfg):
    """cfg: the board's "hx711" pins, e.g. {"sck": 14, "dout": 15}."""
    return HX711(cfg["sck"], cfg["dout"], cfg.get("gain", 128),
                 cfg.get("sm", 0), cfg.get("rate"))
