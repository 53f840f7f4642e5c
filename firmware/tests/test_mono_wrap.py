"""mono_ms over weeks of uptime, inside the real micropython.

On 32-bit ports ticks_ms wraps at 2^30 ms and ticks_diff answers in
[-2^29, 2^29): a diff taken from boot turns negative after ~6.2 days (the
gateway then rejects every event, protocol §3 `mono_ms >= 0`) and the wall
clock's sync age with it. The unix port here is 64-bit (its ticks period is
2^62), so the test gives the runtime a 32-bit port's ticks: a counter masked
to 30 bits and MicroPython's own ticks_diff formula for that period.
"""
import pytest

from fwtest import FW
from mp import run_mp

pytestmark = pytest.mark.micropython

SCRIPT = """
import sys
sys.path.append(HAL_DIR)
import hal
from cartfw import config, runtime, telemetry

PERIOD = 1 << 30          # a 32-bit port's ticks period (MICROPY_PY_TIME_TICKS_PERIOD)
HALF = PERIOD >> 1
DAY = 86400000

class Ticks32:
    now = PERIOD - 5000   # boot 5 s before ticks_ms wraps

    @staticmethod
    def ticks_ms():
        return Ticks32.now & (PERIOD - 1)

    @staticmethod
    def ticks_diff(a, b):  # extmod/modtime.c: wraps into [-PERIOD/2, PERIOD/2)
        return ((a - b + HALF) & (PERIOD - 1)) - HALF

runtime.time = Ticks32
cfg = config.validate({"cart": "c001", "board": "scale", "broker": {"host": "127.0.0.1"},
                       "ntp": {"enabled": False}})
rt = runtime.Runtime(cfg, hal)
boot = Ticks32.now
bad = []
STEP = 61000              # a call a minute (the watchdog loop calls mono() every second)
SYNC_AT = 6 * DAY         # a sync shortly before 2^29 ms (6.2 days)
synced_rows = []
while Ticks32.now - boot < 20 * DAY:
    Ticks32.now += STEP
    want = Ticks32.now - boot
    m = rt.mono()
    if m != want and len(bad) < 3:
        bad.append((want, m))
    if want >= SYNC_AT and rt.wall.syncs == 0:
        # server time 1.7e12 ms, 40 ms round trip ending now
        rt.wall.set(1700000000000, m - 40, m)
        t_sync = m
    for d in (DAY // 10, DAY // 5, DAY - STEP, DAY + STEP):
        if rt.wall.syncs and 0 <= m - t_sync - d < STEP:
            mono, wall, synced = rt.clock()
            synced_rows.append((d, synced, wall is not None and wall - 1700000000020 == mono - t_sync))
print("BAD", bad)
print("END", rt.mono(), Ticks32.now - boot)
print("SYNCED", synced_rows)
print("UPTIME", telemetry.fields(rt)["uptime_s"], (Ticks32.now - boot) // 1000)
"""


def test_mono_ms_and_the_wall_clock_survive_the_32_bit_ticks_wrap(tmp_path):
    script = SCRIPT.replace("HAL_DIR", repr(str(FW / "hal" / "sim")))
    out = run_mp(script, tmp_path, timeout=300)
    rows = dict(line.split(" ", 1) for line in out.splitlines() if line[:3] in ("BAD", "END", "SYN", "UPT"))
    # exact ms since boot at every minute for 20 days: past 2^29 ms (6.2 days,
    # where ticks_diff from boot turns negative) and 2^30 ms (12.4 days)
    assert rows["BAD"] == "[]", out
    end, want = map(int, rows["END"].split())
    assert end == want > 20 * 86400000
    # synced at 6 days: still synced with the right wall time across the wrap,
    # unsynced once the 24 h max age is over (not stuck synced on a negative age)
    assert rows["SYNCED"] == ("[(8640000, True, True), (17280000, True, True), "
                              "(86339000, True, True), (86461000, False, False)]"), out
    # telemetry's uptime_s counts the same way
    up, want_s = map(int, rows["UPTIME"].split())
    assert up == want_s, out
