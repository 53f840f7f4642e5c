# One high-resolution still after a placement (docs/camera.md "Stills",
# protocol §7.1). Pure logic around the camera and the burst scheduler, so it
# runs under MicroPython and CPython and the tests drive it with a publisher
# they control.
try:
    from cartfw.framing import FrameSlot, FramingError
except ImportError:  # pragma: no cover
    from framing import FrameSlot, FramingError


class Stiller:
    """run() switches the sensor to the still resolution, takes one JPEG,
    switches back, and publishes it as §7.1 chunks.

    The still shares the Burster's camera lock (a still never interleaves
    with a burst frame) and its in-flight count (§7: at most 2 frames, bursts
    and stills together, await PUBACKs). Memory is one FrameSlot of
    `still_max` bytes, allocated here once; the still gets the next frame
    number of the epoch, from the Burster's counter."""

    def __init__(self, cam, burster, res, chunk_size=4096, still_max=393216,
                 capture_timeout_ms=2000):
        self.cam = cam
        self.b = burster
        self.res = res
        self.capture_timeout_ms = capture_timeout_ms
        self.slot = FrameSlot(chunk_size, still_max, res)
        self.stats = {"stills": 0, "stills_sent": 0, "stills_failed": 0, "stills_rejected": 0,
                      "still_capture_fail": 0}
        self.last_error = None

    async def _capture(self):
        # Under the camera lock: resolution switch, one frame, switch back.
        b = self.b
        async with b.lock:
            try:
                buf = await self.cam.capture_still(self.res, self.capture_timeout_ms)
            except Exception as e:
                buf = None
                self.last_error = "camera: %r" % (e,)
            else:
                if buf is None:
                    self.last_error = "camera gave no still within %d ms" % self.capture_timeout_ms
            t = b.clock()
            try:
                if buf is None:
                    self.stats["still_capture_fail"] += 1
                    return None, t
                try:
                    self.slot.load(buf, b.epoch, b.next_frame)
                except FramingError as e:
                    self.stats["stills_rejected"] += 1
                    self.last_error = str(e)
                    return None, t
                b.next_frame += 1
                return self.slot.frame, t
            finally:
                buf = None
                self.cam.end_still()   # back to the burst resolution, even after a failure

    async def run(self):
        """Returns (frame number, mono_ms, sent) or (None, mono_ms, False)."""
        if self.slot.count:
            self.last_error = "a still is still being published"
            return None, self.b.clock(), False
        self.stats["stills"] += 1
        frame, t = await self._capture()
        if frame is None:
            return None, t, False
        b = self.b
        await b._until(lambda: b.inflight < b.limit)   # shared §7 bound with the bursts
        b.inflight += 1
        if b.inflight > b.peak_inflight:
            b.peak_inflight = b.inflight
        ok = True
        try:
            for i in range(self.slot.count):
                if not await b.publish(self.slot.chunk(i), b.chunk_timeout_ms):
                    ok = False
                    self.last_error = "chunk %d of %d not acknowledged" % (i, self.slot.count)
                    break
        except Exception as e:
            self.last_error = "publish: %r" % (e,)
            ok = False
        finally:
            self.slot.clear()
            b.inflight -= 1
            b._changed.set()
        self.stats["stills_sent" if ok else "stills_failed"] += 1
        return frame, t, ok
