# A test board app that fails: raises from a background task after
# cfg["app"]["after_ms"] (default 300), exercising the global exception
# handler, the crash record and the boot-loop guard.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio


async def _boom(ms):
    await asyncio.sleep_ms(ms)
    raise RuntimeError("sensor driver exploded")


async def start(rt):
    a = rt.cfg.get("app") or {}
    asyncio.create_task(_boom(a.get("after_ms", 300)))
