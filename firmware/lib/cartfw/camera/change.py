# Local frame-change check. Pure logic: runs identically under MicroPython and
# CPython (integer arithmetic only, no buffers).
#
# A JPEG's size follows the amount of detail in the scene, so an item entering
# the basket (or a hand over it) moves the size of consecutive frames further
# than sensor noise does. Comparing sizes costs nothing: no decode, no
# allocation. The entropy-coded bytes themselves are useless for this (noise
# changes all of them), so none are sampled. The threshold adapts to the
# camera's own noise: a change must exceed k times the running mean absolute
# deviation of the size (and an absolute floor). Known blind spot: a change
# that leaves the size within that band (e.g. a plain box covering as much
# detail as it brings); the scale's `unsettled` event is the primary trigger.

WARMUP = 4  # frames needed to learn the noise before the first trigger


class ChangeDetector:
    """check(size, now_ms) -> True when this frame's JPEG size departs from
    the running baseline by more than max(min_bytes, k * deviation).

    The baseline and the deviation are exponential averages (1/8 per frame),
    so slow drift (light) is absorbed. cooldown_ms: no second trigger within
    this time after a trigger or a burst (hold()); the baseline follows the
    scene meanwhile, since the burst is already capturing it."""

    def __init__(self, k=6, min_bytes=100, cooldown_ms=2000):
        if not 1 <= k <= 100:
            raise ValueError("k %r: must be 1..100" % (k,))
        if min_bytes < 1 or cooldown_ms < 0:
            raise ValueError("min_bytes must be >= 1 and cooldown_ms >= 0")
        self.k = k
        self.min_bytes = min_bytes
        self.cooldown_ms = cooldown_ms
        self.triggers = 0
        self.quiet = False   # the last check's size stayed inside the noise band (motion stopped)
        self.last_ms = None  # time of the last trigger or burst
        self.reset()

    def reset(self):
        self.n = 0
        self.base = 0
        self.dev = 0

    def hold(self, now_ms):
        # A burst just captured the scene: start the cooldown from now.
        self.last_ms = now_ms

    def check(self, size, now_ms):
        if size <= 0:
            return False  # no frame: nothing to compare
        self.n += 1
        if self.n == 1:
            self.quiet = False
            self.base = size
            return False
        diff = size - self.base
        if diff < 0:
            diff = -diff
        self.quiet = diff < self.min_bytes or diff <= self.k * self.dev
        if self.last_ms is not None and now_ms - self.last_ms < self.cooldown_ms:
            self.base = size
            return False
        if self.n > WARMUP and diff >= self.min_bytes and diff > self.k * self.dev:
            self.base = size
            self.last_ms = now_ms
            self.triggers += 1
            return True
        self.dev += (diff - self.dev) // 8
        self.base += (size - self.base) // 8
        return False
