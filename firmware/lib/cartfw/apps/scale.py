# The scale board app: HX711 -> pipeline -> rt.event (docs/scale.md).
#
# Thin on purpose: the logic is in cartfw.scale (pipeline, loop), tested under
# MicroPython and CPython. Config: rt.cfg["calibration"] {"offset", "scale"}
# and optional rt.cfg["app"]["scale"] {pipeline params, see PARAMS} plus
# rt.cfg["app"]["hx711"] (driver pins, passed to rt.hal.hx711).
import asyncio
from cartfw.scale.pipeline import ScalePipeline
from cartfw.scale.loop import ScaleLoop

# Poll a little faster than the 12.5 ms conversion period, so a conversion
# waits at most ~5 ms and the FIFO (RP2040) or link never backs up.
POLL_MS = 5


def build(cfg, driver, emit):
    """The app's wiring without the runtime: a ScaleLoop."""
    cal = cfg.get("calibration") or {}
    app = cfg.get("app") or {}
    pipe = ScalePipeline(cal.get("scale", 1.0), cal.get("offset", 0),
                         **(app.get("scale") or {}))
    return ScaleLoop(driver, pipe, emit)


def tare(pipe, save):
    """Tare the running pipeline and persist it (config calibration.offset,
    through the validated atomic write). If the write fails the pipeline
    keeps its old tare and the command reports the error."""
    old = pipe.offset
    off = pipe.tare()
    try:
        save({"calibration.offset": off})
    except Exception:
        pipe.offset = old
        raise
    return {"offset": off}


def calibrate(pipe, save, known_g):
    """As tare, for counts per gram (calibration.scale)."""
    old = pipe.cpg
    cpg = pipe.calibrate(known_g)
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
