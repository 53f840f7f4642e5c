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


async def start(rt):
    app = rt.cfg.get("app") or {}
    loop = build(rt.cfg, rt.hal.hx711(app.get("hx711") or {}), rt.event)
    pipe = loop.pipe
    rt.command("tare", lambda args: {"offset": pipe.tare()})
    rt.command("calibrate", lambda args: {"scale": pipe.calibrate((args or {}).get("known_g"))})
    rt.tele_provider(loop.tele)
    while True:
        loop.step(rt.clock()[0])
        await asyncio.sleep_ms(POLL_MS)
