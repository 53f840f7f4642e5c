# Simulated camera (module camera_drv of the sim HAL; hal.camera(cfg) opens it): JPEG frames arrive over the hardware link (`f <n>` lines,
# docs/architecture.md), pushed by the supervisor, which renders them.
#
# `link` is any object with take_frame() -> bytes or None (hal/sim/hwlink.py):
# the next queued frame, or None when none is queued; it must not block.
# Each capture takes one queued frame, in order, so a test or the simulator
# controls exactly what the next frames show. With the queue empty the camera
# still sees the scene it saw last: capture repeats the latest frame, as a real
# sensor keeps delivering the same view. Before any frame has arrived capture
# waits, polling, up to its timeout and then returns None (a dead sensor).
import asyncio

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

POLL_MS = 10


class SimCamera:
    def __init__(self, link, poll_ms=POLL_MS):
        self.link = link
        self.poll_ms = poll_ms
        self.last = None
        self.frames_in = 0
        self.stills_in = 0
        self.fails = 0

    def _take(self):
        f = self.link.take_frame()
        if f is not None:
            self.last = f
            self.frames_in += 1
            return True
        return False

    async def capture(self, timeout_ms=1000):
        if self._take() or self.last is not None:
            return self.last
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < timeout_ms:
            await asyncio.sleep(self.poll_ms / 1000)
            if self._take():
                return self.last
        self.fails += 1
        return None

    async def capture_still(self, res, timeout_ms=2000):
        """One still (§7.1) at resolution code `res`: the supervisor renders the
        scene at that resolution and sends it as an `S <n>` line. Waits, polling,
        up to timeout_ms (a real sensor's resolution switch takes a few frames);
        None when none came. `take_still` is optional: a link without it has no
        still."""
        take = getattr(self.link, "take_still", None)
        if take is None:
            return None
        t0 = ticks_ms()
        while True:
            st = take()
            if st is not None:
                self.stills_in += 1
                return st
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                self.fails += 1
                return None
            await asyncio.sleep(self.poll_ms / 1000)

    def end_still(self):
        pass   # the sim sensor has no resolution to switch back

    def release(self):
        pass

    def close(self):
        self.last = None


def open(cfg=None, link=None):
    # hal.camera(cfg) calls this. The link is the HAL's hardware-link client.
    if link is None:
        import hal
        link = hal.link()
    if link is None:
        raise OSError("camera: no hardware link (CART_SIM_HW is not set)")
    return SimCamera(link)
