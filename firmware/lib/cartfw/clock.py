# The board's clock for protocol §3: mono_ms always, wall_ms only from an NTP
# sync (cartfw/ntp.py feeds it). Pure logic: MicroPython and CPython.


class Clock:
    """(mono_ms, wall_ms or None, synced) for rt.clock(). wall_ms is mono_ms
    plus the offset of the last good sync; after max_age_ms without one the
    clock no longer counts as synced (crystal drift), so wall_ms is null
    again, as protocol §3 requires."""

    def __init__(self, max_age_ms=86400000):
        self.offset = 0
        self.synced_at = None  # mono_ms of the last good sync
        self.max_age_ms = max_age_ms
        self.syncs = 0
        self.failures = 0
        self.last_error = None

    def set(self, server_ms, t_send, t_recv):
        # Half the round trip is the usual SNTP estimate of the reply's age.
        self.offset = server_ms + (t_recv - t_send) // 2 - t_recv
        self.synced_at = t_recv
        self.syncs += 1
        self.last_error = None

    def synced(self, mono):
        # A negative age is a clock fault, not a fresh sync.
        return self.synced_at is not None and 0 <= mono - self.synced_at <= self.max_age_ms

    def now(self, mono):
        if self.synced(mono):
            return mono, mono + self.offset, True
        return mono, None, False
