# The scale board app: HX711 -> pipeline -> rt.event (docs/scale.md).
#
# Thin on purpose: the logic is in cartfw.scale (pipeline, loop), tested under
# MicroPython and CPython. Config: rt.cfg["calibration"] {"offset", "scale"}
# and optional rt.cfg["app"]["scale"] {pipeline params, see PARAMS} plus
# rt.cfg["app"]["hx711"] (driver pins, passed to rt.hal.hx711).
import asyncio
import time
from cartfw.scale.pipeline import ScalePipeline, check_known_g
from cartfw.scale.loop import ScaleLoop

# Poll a little faster than the 12.5 ms conversion period, so a conversion
# waits at most ~5 ms and the FIFO (RP2040) or link never backs up.
POLL_MS = 5
# tare / calibrate on a load the detector has not settled: average this
# many conversions (1 s at 80 SPS), waiting at most MEASURE_WAIT_MS for them.
MEASURE_N = 80
MEASURE_WAIT_MS = 5000


def build(cfg, driver, emit):
    """The app's wiring without the runtime: a ScaleLoop."""
    cal = cfg.get("calibration") or {}
    app = cfg.get("app") or {}
    pipe = ScalePipeline(cal.get("scale", 1.0), cal.get("offset", 0),
                         **(app.get("scale") or {}))
    return ScaleLoop(driver, pipe, emit)


async def measured_level(pipe, n=MEASURE_N, wait_ms=MEASURE_WAIT_MS):
    """None when the detector is settled (the command uses its level), else
    the mean of n conversions of a steady load (scale/measure.py): the
    detector's thresholds are grams through a calibration that may be the
    template's, far from the cell's, and then it may not settle for long.
    ValueError when the load moves, no conversions come, or another
    command is measuring."""
    if pipe.settled:
        return None
    m = pipe.meter
    if m.active:
        raise ValueError("busy: another tare or calibrate is measuring")
    m.start(n)
    t0 = time.ticks_ms()
    try:
        while not m.ready:
            if pipe.settled:
                return None
            if time.ticks_diff(time.ticks_ms(), t0) > wait_ms:
                raise ValueError("load not settled (%d of %d conversions in %d ms)"
                                 % (m.k, n, wait_ms))
            await asyncio.sleep_ms(20)
        return m.level()
    finally:
        m.stop()


async def tare(pipe, save):
    """Tare the running pipeline and persist it (config calibration.offset,
    through the validated atomic write). If the write fails the pipeline
    keeps its old tare and the command reports the error."""
    level = await measured_level(pipe)
    old = pipe.offset
    off = pipe.tare(level)
    try:
        save({"calibration.offset": off})
    except Exception:
        pipe.offset = old
        raise
    return {"offset": off}


async def calibrate(pipe, save, known_g):
    """As tare, for counts per gram (calibration.scale)."""
    check_known_g(known_g)     # before a second's wait
    level = await measured_level(pipe)
    old = pipe.cpg
    cpg = pipe.calibrate(known_g, level)
    try:
        save({"calibration.scale": cpg})
    except Exception:
        pipe.set_scale(old)
        raise
    return {"scale": cpg}


async def start(rt):
    app = rt.cfg.get("app") or {}
    loop = build(rt.cfg, rt.hal.hx711(app.get("hx711") or {}), rt.event)
    pipe = loop.pipe
    save = rt.commands.save_config
    rt.command("tare", lambda args: tare(pipe, save))
    rt.command("calibrate", lambda args: calibrate(pipe, save, (args or {}).get("known_g")))
    rt.tele_provider(loop.tele)
    while True:
        loop.step(rt.clock()[0])
        await asyncio.sleep_ms(POLL_MS)
