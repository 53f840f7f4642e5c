# Burst capture and bounded frame publishing (docs/protocol.md §6.3, §7).
# Pure logic around three injected functions, so it runs under MicroPython and
# CPython alike and the tests can drive it with a publisher they control.
import asyncio

try:
    from cartfw.framing import FrameSlot, FramingError
except ImportError:  # pragma: no cover
    from framing import FrameSlot, FramingError


async def _sleep_ms(ms):
    if ms > 0:
        await asyncio.sleep(ms / 1000)


class Burster:
    """run(n) captures n frames `gap_ms` apart and publishes each as chunks.

    capture(timeout_ms) -> buffer or None: one JPEG, valid until the next call.
    publish(mv, timeout_ms) -> bool: one chunk, True after its PUBACK.
    clock() -> mono_ms.

    Memory is fixed at construction: in_flight + 1 FrameSlots (the frames
    awaiting PUBACKs plus the one being captured). At most `in_flight` frames
    are published at once (§7: at most 2); the next frame's chunks start only
    when a whole earlier frame is acknowledged. Within a frame the chunks go
    out in order, one at a time. A frame whose chunk is not acknowledged is
    abandoned (the gateway drops incomplete frames after 5 s)."""

    def __init__(self, capture, publish, clock, epoch, chunk_size=1024, frame_max=65536,
                 in_flight=2, gap_ms=100, chunk_timeout_ms=5000, capture_timeout_ms=1000):
        if not 1 <= in_flight <= 2:
            raise ValueError("in_flight %r: §7 allows 1 or 2 frames in flight" % (in_flight,))
        self.capture = capture
        self.publish = publish
        self.clock = clock
        self.epoch = epoch
        self.limit = in_flight
        self.gap_ms = gap_ms
        self.chunk_timeout_ms = chunk_timeout_ms
        self.capture_timeout_ms = capture_timeout_ms
        self.free = [FrameSlot(chunk_size, frame_max) for _ in range(in_flight + 1)]
        self.capacity = self.free[0].capacity
        self.next_frame = 1  # §7: frame numbers count from 1 within the epoch
        self.inflight = 0
        self.peak_inflight = 0
        self.lock = asyncio.Lock()  # one burst at a time
        self._changed = asyncio.Event()
        self.stats = {"bursts": 0, "frames_sent": 0, "frames_failed": 0, "chunks_sent": 0,
                      "frames_rejected": 0, "capture_fail": 0}
        self.last_error = None

    def busy(self):
        return self.lock.locked()

    async def _until(self, cond):
        while not cond():
            self._changed.clear()
            await self._changed.wait()

    async def _send(self, slot, results, k):
        ok = True
        try:
            for i in range(slot.count):
                if not await self.publish(slot.chunk(i), self.chunk_timeout_ms):
                    ok = False
                    break
                self.stats["chunks_sent"] += 1
        except Exception as e:  # a failed publish must not leak the slot
            self.last_error = "publish: %r" % (e,)
            ok = False
        finally:
            results[k] = ok
            self.stats["frames_sent" if ok else "frames_failed"] += 1
            slot.clear()
            self.free.append(slot)
            self.inflight -= 1
            self._changed.set()

    async def run(self, n):
        """Returns (frames, frame_ms, sent): the frame numbers captured, their
        mono_ms and, per frame, whether every chunk was acknowledged."""
        if not 1 <= n <= 8:
            raise ValueError("frames %r: a burst has 1..8 frames (§9)" % (n,))
        async with self.lock:
            self.stats["bursts"] += 1
            frames, frame_ms, results = [], [], []
            t0 = self.clock()
            for k in range(n):
                await _sleep_ms(t0 + k * self.gap_ms - self.clock())
                await self._until(lambda: self.free)
                slot = self.free.pop()
                try:
                    buf = await self.capture(self.capture_timeout_ms)
                    why = "camera gave no frame within %d ms" % self.capture_timeout_ms
                except Exception as e:  # a driver error must not leak the slot
                    buf, why = None, "camera: %r" % (e,)
                t = self.clock()
                if buf is None:
                    self.free.append(slot)
                    self.stats["capture_fail"] += 1
                    self.last_error = why
                    break  # a failing sensor: the rest of the burst would fail too
                try:
                    slot.load(buf, self.epoch, self.next_frame)
                except FramingError as e:
                    self.free.append(slot)
                    self.stats["frames_rejected"] += 1
                    self.last_error = str(e)
                    continue
                buf = None  # the camera may reuse its buffer now
                self.next_frame += 1
                frames.append(slot.frame)
                frame_ms.append(t)
                results.append(None)
                await self._until(lambda: self.inflight < self.limit)
                self.inflight += 1
                if self.inflight > self.peak_inflight:
                    self.peak_inflight = self.inflight
                asyncio.create_task(self._send(slot, results, len(results) - 1))
            await self._until(lambda: self.inflight == 0)
            return frames, frame_ms, results
