# The NAU7802 chip for the virtual board and the tests: an I2C target that answers the
# real driver (firmware/hal/esp32/nau7802_drv.py) register by register, with
# conversions from any source with take_sample() -> int | None (the hardware
# link's samples on a virtual board, a list in tests). docs/scale.md
# "NAU7802 variant".
#
# It models what the driver relies on: RR resets the registers; PUR reads 1
# once PUD is set; CALS stays set for `cal_reads` reads of CTRL2 then clears
# (CAL_ERR when `cal_fails`); CR is 1 when a conversion is waiting, and
# reading ADCO_B2..B0 takes it. Writes are logged as (reg, value) for the
# tests. `fail` makes every transaction raise OSError (a missing chip).
ADDR = 0x2A
MIN_RAW = -0x800000
MAX_RAW = 0x7FFFFF


class SimNAU7802Bus:
    def __init__(self, source, cal_reads=3, cal_fails=False, addr=ADDR):
        self._src = source
        self.addr = addr
        self.cal_reads = cal_reads
        self.cal_fails = cal_fails
        self.fail = False
        self.writes = []
        self.log_writes = True
        self._reset()

    def _reset(self):
        self.regs = bytearray(0x20)
        self.regs[0x1F] = 0x0F          # revision id
        self._pending = None
        self._cal_left = 0

    def _check(self, addr):
        if self.fail or addr != self.addr:
            raise OSError(19)             # ENODEV: no ACK

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        v = buf[0]
        if self.log_writes:
            self.writes.append((reg, v))
        if reg == 0x00:
            if v & 0x01:
                self._reset()
                self.regs[0] = 0x01
                return
            v = (v & ~0x28) | (0x08 if v & 0x02 else 0)   # PUR follows PUD; CR is read-only
        elif reg == 0x02:
            if v & 0x04:
                self._cal_left = self.cal_reads
            v &= ~0x08
        self.regs[reg] = v & 0xFF

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        if reg == 0x00 and self._pending is None and self.regs[0] & 0x10:
            self._take()
        if reg == 0x02 and self._cal_left:
            self._cal_left -= 1
            if not self._cal_left:
                self.regs[2] = (self.regs[2] & ~0x04) | (0x08 if self.cal_fails else 0)
        if reg == 0x12:
            if self._pending is None and self.regs[0] & 0x10:
                self._take()
            v = self._pending if self._pending is not None else 0
            self._pending = None
            self.regs[0] &= ~0x20
            v &= 0xFFFFFF
            self.regs[0x12], self.regs[0x13], self.regs[0x14] = v >> 16, (v >> 8) & 0xFF, v & 0xFF
        for i in range(len(buf)):
            buf[i] = self.regs[(reg + i) & 0x1F]

    def _take(self):
        v = self._src.take_sample()
        if v is None:
            return
        if not isinstance(v, int) or isinstance(v, bool) or v < MIN_RAW or v > MAX_RAW:
            raise ValueError("nau7802 sample out of 24-bit range: %r" % (v,))
        self._pending = v
        self.regs[0] |= 0x20


def bus(cfg=None):
    """The emulated chip on the hardware link, for a virtual NAU7802 board:
    pass it as the i2c of the real driver's NAU7802 class."""
    import hwlink
    return SimNAU7802Bus(hwlink.link().samples)


def open(cfg=None):
    """The scale app's ADC slot on a virtual NAU7802 board: the real driver
    (nau7802_drv from firmware/hal/esp32, staged next to this module) on the
    emulated chip on the hardware link. cfg: the config's app.hx711."""
    from nau7802_drv import NAU7802
    c = cfg or {}
    return NAU7802(bus(), c.get("gain", 128), c.get("rate", 80), c.get("ldo_mv", 3000))
