# Local frame-change check. Pure logic: runs identically under MicroPython and
# CPython (integer arithmetic only).
#
# A JPEG's size follows the amount of detail in the scene, so a new item in the
# basket (or a hand over it) moves the size of consecutive frames far more than
# sensor noise does. Comparing sizes costs nothing: no decode, no buffer. The
# entropy-coded bytes themselves are useless for this (any noise changes them
# all), so none are sampled. Known blind spot: a change that leaves the size
# within the threshold; the scale's `unsettled` event is the primary trigger.


class ChangeDetector:
    """check(size, now_ms) -> True when this frame differs from the baseline.

    threshold_pct: relative size change that counts as a change.
    min_bytes: absolute floor, so tiny dark frames don't trigger on noise.
    cooldown_ms: no second trigger within this time; the baseline follows the
    scene meanwhile (the burst is already capturing it).
    Slow drift (light) is absorbed: the baseline tracks unchanged frames with
    an exponential average (1/8 per frame)."""

    def __init__(self, threshold_pct=12, min_bytes=400, cooldown_ms=2000):
        if not 1 <= threshold_pct <= 100:
            raise ValueError("threshold_pct %r: must be 1..100" % (threshold_pct,))
        if min_bytes < 0 or cooldown_ms < 0:
            raise ValueError("min_bytes and cooldown_ms must be >= 0")
        self.threshold_pct = threshold_pct
        self.min_bytes = min_bytes
        self.cooldown_ms = cooldown_ms
        self.base = 0  # 0: no baseline yet
        self.last_ms = None  # time of the last trigger
        self.triggers = 0

    def hold(self, now_ms):
        # A burst just captured the scene: start the cooldown from now.
        self.last_ms = now_ms

    def reset(self):
        self.base = 0
        self.last_ms = None

    def check(self, size, now_ms):
        if size <= 0:
            return False  # no frame: nothing to compare
        base = self.base
        if base == 0:
            self.base = size
            return False
        diff = size - base if size > base else base - size
        cooling = self.last_ms is not None and now_ms - self.last_ms < self.cooldown_ms
        if cooling:
            self.base = size
            return False
        if diff >= self.min_bytes and diff * 100 > self.threshold_pct * base:
            self.base = size
            self.last_ms = now_ms
            self.triggers += 1
            return True
        self.base = (base * 7 + size) // 8
        return False
