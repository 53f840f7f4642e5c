# NAU7802 on an ESP32 over I2C: non-blocking start-up and read, the same
# read() -> int | None as the HX711 drivers (docs/scale.md "NAU7802 variant").
#
# Register map (Nuvoton NAU7802 datasheet rev 1.7, section 11; the same bits
# in the Linux iio driver and SparkFun's library, whose begin() order this
# start-up follows: reset, PUD+PUA, PUR, CS, LDO+AVDDS, gain, rate, ADC 0x30,
# PGA_CAP_EN, LDO ramp, calibrate):
#   0x00 PU_CTRL  RR(0) reset, PUD(1) digital up, PUA(2) analog up, PUR(3)
#                 power-up ready (ro), CS(4) cycle start, CR(5) conversion
#                 ready (ro), OSCS(6), AVDDS(7) AVDD from the internal LDO
#   0x01 CTRL1    GAINS(2:0) 7 = x128, VLDO(5:3) 5 = 3.0 V, DRDY_SEL(6), CRP(7)
#   0x02 CTRL2    CALMOD(1:0) 0 = internal offset, CALS(2) start / busy,
#                 CAL_ERR(3), CRS(6:4) 3 = 80 SPS, 7 = 320 SPS, CHS(7) channel
#   0x12..0x14    ADCO_B2..B0, the conversion, MSB first, two's complement
#   0x15 ADC      REG_CHPS(5:4) = 11: clock chopper off (datasheet, 9.1)
#   0x1C PWR_CTRL PGA_CAP_EN(7): the channel-2 decoupling cap on channel 1
#   0x1F REV      revision id (low nibble 0xF)
#
# Start-up is a state machine advanced by read(): reset, power up, wait for
# PUR, configure and start conversions (CS), let the LDO and the analog
# front end settle, run the internal offset calibration. Each step is one short I2C
# transaction, none waits, so read() never blocks the asyncio loop for more
# than one transaction (~100 us at 400 kHz). An I2C error (chip missing,
# cable off) restarts the sequence after RETRY_MS and counts bus_errors;
# read() returns None meanwhile and the pipeline's timeout reports the
# outage as an `error` event. Nothing is allocated per read.
from micropython import const
import time

ADDR = const(0x2A)
PU_CTRL = const(0x00)
CTRL1 = const(0x01)
CTRL2 = const(0x02)
ADCO_B2 = const(0x12)
ADC_REG = const(0x15)
PWR_CTRL = const(0x1C)
REV_ID = const(0x1F)

RR = const(0x01)
PUD = const(0x02)
PUA = const(0x04)
PUR = const(0x08)
CS = const(0x10)
CR = const(0x20)
AVDDS = const(0x80)
CALS = const(0x04)
CAL_ERR = const(0x08)
CHPS_OFF = const(0x30)
PGA_CAP_EN = const(0x80)

GAINS = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7}
RATES = {10: 0, 20: 1, 40: 2, 80: 3, 320: 7}
LDO_MV = {4500: 0, 4200: 1, 3900: 2, 3600: 3, 3300: 4, 3000: 5, 2700: 6, 2400: 7}

PUR_TIMEOUT_MS = const(50)    # datasheet: ready about 200 us after PUD
SETTLE_MS = const(300)        # LDO ramp before calibrating: "about 200 ms" (SparkFun library)
CAL_TIMEOUT_MS = const(1000)  # calibration "approximately 344 ms; wait up to 1000 ms" (SparkFun)
RETRY_MS = const(500)         # after a bus error or a failed calibration

# start-up states
S_RESET = const(0)
S_POWER = const(1)
S_WAIT_PUR = const(2)
S_SETTLE = const(3)
S_CAL = const(4)
S_CAL_WAIT = const(5)
S_RUN = const(6)
S_BACKOFF = const(7)


def to_signed24(b2, b1, b0):
    """ADCO_B2..B0 (MSB first) as a signed 24-bit int."""
    v = (b2 << 16) | (b1 << 8) | b0
    return v - 0x1000000 if v & 0x800000 else v


def ctrl1_value(gain, ldo_mv):
    # DRDY_SEL 0: the DRDY pin shows conversion ready; CRP 0: active high.
    return (LDO_MV[ldo_mv] << 3 if ldo_mv else 0) | GAINS[gain]


def ctrl2_value(rate, calibrate=False):
    # channel 1, internal offset calibration mode
    return (RATES[rate] << 4) | (CALS if calibrate else 0)


class NAU7802:
    def __init__(self, i2c, gain=128, rate=80, ldo_mv=3000, drdy=None, addr=ADDR, clock=None):
        """i2c: a machine.I2C / SoftI2C (readfrom_mem_into, writeto_mem).
        ldo_mv: the internal LDO's AVDD (and bridge excitation) in mV, or 0
        for AVDD from an external supply. drdy: an input Pin on the DRDY
        line, or None to poll PU_CTRL.CR over the bus."""
        if gain not in GAINS:
            raise ValueError("nau7802 gain must be one of %s, got %r" % (sorted(GAINS), gain))
        if rate not in RATES:
            raise ValueError("nau7802 rate must be one of %s SPS, got %r" % (sorted(RATES), rate))
        if ldo_mv and ldo_mv not in LDO_MV:
            raise ValueError("nau7802 ldo_mv must be 0 (external AVDD) or one of %s, got %r"
                             % (sorted(LDO_MV), ldo_mv))
        self._i2c = i2c
        self._addr = addr
        self._gain = gain
        self._rate = rate
        self._ldo = ldo_mv
        self._drdy = drdy
        self._ms = clock or time.ticks_ms
        self._b1 = bytearray(1)
        self._b3 = bytearray(3)
        self.state = S_RESET
        self._t = self._ms()
        self.bus_errors = 0
        self.cal_errors = 0
        self.starts = 0        # completed start-ups (1 on a healthy board)
        self.last_error = None

    # -- bus helpers (no allocation) --
    def _wr(self, reg, val):
        self._b1[0] = val
        self._i2c.writeto_mem(self._addr, reg, self._b1)

    def _rd(self, reg):
        self._i2c.readfrom_mem_into(self._addr, reg, self._b1)
        return self._b1[0]

    def _pu_run(self):
        return PUD | PUA | (AVDDS if self._ldo else 0)

    def _restart(self, why, now):
        self.last_error = why
        self.state = S_BACKOFF
        self._t = now

    def ready(self):
        return self.state == S_RUN

    def read(self):
        """One conversion as a signed 24-bit int, or None when none is ready
        (or the chip is still starting, or the bus failed)."""
        try:
            if self.state == S_RUN:
                if self._drdy is not None:
                    if not self._drdy.value():
                        return None
                elif not self._rd(PU_CTRL) & CR:
                    return None
                b = self._b3
                self._i2c.readfrom_mem_into(self._addr, ADCO_B2, b)
                return to_signed24(b[0], b[1], b[2])
            self._start_step()
        except OSError as e:
            self.bus_errors += 1
            self._restart("i2c: %r" % (e,), self._ms())
        return None

    def _start_step(self):
        now = self._ms()
        st = self.state
        dt = time.ticks_diff(now, self._t)
        if st == S_BACKOFF:
            if dt >= RETRY_MS:
                self.state = S_RESET
        elif st == S_RESET:
            self._wr(PU_CTRL, RR)                 # all registers to defaults
            self.state = S_POWER
        elif st == S_POWER:
            self._wr(PU_CTRL, PUD)                # RR off, digital up
            self.state = S_WAIT_PUR
            self._t = now
        elif st == S_WAIT_PUR:
            if self._rd(PU_CTRL) & PUR:
                self._configure()
                self.state = S_SETTLE
                self._t = now
            elif dt > PUR_TIMEOUT_MS:
                self._restart("nau7802: no power-up ready (PUR) after %d ms" % dt, now)
        elif st == S_SETTLE:
            if dt >= SETTLE_MS:
                self.state = S_CAL
        elif st == S_CAL:
            self._wr(CTRL2, ctrl2_value(self._rate, True))
            self.state = S_CAL_WAIT
            self._t = now
        elif st == S_CAL_WAIT:
            c2 = self._rd(CTRL2)
            if not c2 & CALS:
                if c2 & CAL_ERR:
                    self.cal_errors += 1
                    self._restart("nau7802: offset calibration failed (CAL_ERR)", now)
                else:
                    self.state = S_RUN
                    self.starts += 1
            elif dt > CAL_TIMEOUT_MS:
                self.cal_errors += 1
                self._restart("nau7802: calibration still busy after %d ms" % dt, now)

    def _configure(self):
        self._wr(CTRL1, ctrl1_value(self._gain, self._ldo))
        # analog up, AVDD source, conversions cycling (CS before the
        # calibration, as SparkFun's power-up does)
        self._wr(PU_CTRL, self._pu_run() | CS)
        self._wr(CTRL2, ctrl2_value(self._rate))
        self._wr(ADC_REG, self._rd(ADC_REG) | CHPS_OFF)
        self._wr(PWR_CTRL, self._rd(PWR_CTRL) | PGA_CAP_EN)

    def power_down(self):
        self._wr(PU_CTRL, 0)
        self.state = S_BACKOFF
        self._t = self._ms()


def open(cfg):
    """cfg: the board config's app.hx711 (the scale app's ADC slot), e.g.
    {"sda": 21, "scl": 22, "freq": 400000, "drdy": 27, "gain": 128,
    "rate": 80, "ldo_mv": 3000, "i2c": 0}; "i2c": -1 for SoftI2C."""
    from machine import I2C, Pin, SoftI2C
    bus = cfg.get("i2c", 0)
    freq = cfg.get("freq", 400000)
    if bus == -1:
        i2c = SoftI2C(scl=Pin(cfg["scl"]), sda=Pin(cfg["sda"]), freq=freq, timeout=2000)
    else:
        i2c = I2C(bus, scl=Pin(cfg["scl"]), sda=Pin(cfg["sda"]), freq=freq, timeout=2000)
    drdy = cfg.get("drdy")
    return NAU7802(i2c, cfg.get("gain", 128), cfg.get("rate", 80), cfg.get("ldo_mv", 3000),
                   None if drdy is None else Pin(drdy, Pin.IN))
