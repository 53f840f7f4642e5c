# The application skeleton (micropython-async style): load and validate the
# config, decide normal or safe mode, build the runtime, start the board app,
# run forever. A global exception handler turns a dead task into a recorded
# crash and a reset (counted by the boot-loop guard), never a silent hang.
import gc
import sys

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

import cartfw
from cartfw import safemode

_rt = None


def _handler(loop, context):
    exc = context.get("exception")
    if _rt is not None and exc is not None:
        if isinstance(exc, SystemExit):  # hal.reset() inside a task
            raise exc
        sys.print_exception(exc) if hasattr(sys, "print_exception") else print(repr(exc))
        _rt.crash(exc)
    else:
        print("asyncio: %r" % (context,))


def _load_config(hal):
    try:
        return _load_config2(hal)
    finally:
        # only needed at boot (and by the config command, which reloads it)
        cartfw.unload("config")


def _load_config2(hal):
    """(cfg, raw, error): cfg validated, or the last good config plus the error
    that sends us to safe mode, or (None, raw, error) when there is nothing to
    connect with."""
    from cartfw import config as cfgmod
    need_wifi = hal.FAMILY != "sim"
    raw = cfgmod.load_raw(cfgmod.PATH)
    try:
        cfg = cfgmod.load(cfgmod.PATH, need_wifi)
    except cfgmod.ConfigError as e:
        print("CONFIG ERROR: %s" % e)
        try:
            good = cfgmod.load(cfgmod.GOOD_PATH, need_wifi)
            print("config: using the last good config (%s) to reach the broker" % cfgmod.GOOD_PATH)
        except cfgmod.ConfigError:
            good = None
        return good, raw, str(e)
    try:
        if cfgmod.load_raw(cfgmod.GOOD_PATH) != raw:
            cfgmod.write_atomic(cfgmod.GOOD_PATH, _dumps(raw))
    except OSError as e:
        print("config: cannot save %s: %r" % (cfgmod.GOOD_PATH, e))
    return cfg, raw, None


def _dumps(d):
    import json
    return json.dumps(d)


async def _app(rt):
    role = rt.board
    names = ("scale",) if role == "scale" else ("cam", "camera")
    mod = None
    for n in names:
        full = "cartfw.apps." + n
        try:
            mod = __import__(full, None, None, ("start",))
            break
        except ImportError as e:
            if n not in str(e):  # the app exists but one of *its* imports failed
                raise
    if mod is None:
        print("app: no module cartfw.apps.%s; running runtime only" % names[0])
        return
    gc.collect()
    print("app: starting %s" % mod.__name__)
    await mod.start(rt)


async def main(hal):
    global _rt
    from cartfw.runtime import Runtime
    asyncio.get_event_loop().set_exception_handler(_handler)
    cfg, raw, err = _load_config(hal)
    if cfg is None:
        # Nothing valid to connect with: report on the console, keep the
        # watchdog fed, never crash-loop. A new config.json + reset fixes it.
        wdt = hal.WDT(8000)
        while True:
            print("SAFE MODE (offline): %s; fix config.json and reset" % err)
            for _ in range(10):
                wdt.feed()
                await asyncio.sleep_ms(1000)
    cause = safemode.take_reset_note() or hal.reset_cause()
    safe, reason = safemode.begin(cfg["crash_limit"], cause)
    if err is not None:
        safe, reason = True, err
    rt = Runtime(cfg, hal, "safe" if safe else "normal", reason, raw, cause)
    _rt = rt
    print("runtime: cart %s board %s epoch %d mode %s reset %s fw %s" % (rt.cart, rt.board, rt.epoch, rt.mode, cause, cartfw.VERSION))
    if safe:
        print("SAFE MODE: %s" % reason)
    rt.start()
    if not safe:
        await _app(rt)
    while True:
        await asyncio.sleep_ms(60000)


def run():
    import hal
    try:
        asyncio.run(main(hal))
    except KeyboardInterrupt:
        pass
    finally:
        asyncio.new_event_loop()
