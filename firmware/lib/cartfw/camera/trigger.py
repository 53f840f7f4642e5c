# The scale board's events as camera triggers (docs/protocol.md §6.2).
# Pure logic: runs identically under MicroPython and CPython.
import json

STALE_MS = 5000  # an `unsettled` older than this (both clocks synced) is a replay


class UnsettledFilter:
    """feed(msg, now_wall_ms) -> ref string ("<cart>/scale/[<inst>/]<epoch>/<seq>") for a
    fresh `unsettled` event of our cart, else None.

    The scale journals events and replays them after a reconnect, and the
    broker queues them for us while we are offline: a replayed event is
    dropped by its identity (at most one burst per event) and, when both
    clocks are synced, by its age. Malformed messages are counted, not raised:
    a bad peer must not stop the camera."""

    def __init__(self, cart, stale_ms=STALE_MS):
        self.cart = cart
        self.stale_ms = stale_ms
        self.seen_inst = None  # the scale instance (§5): a re-flashed scale starts at epoch 1 again
        self.seen_epoch = 0
        self.seen_seq = 0
        self.bad = 0
        self.stale = 0
        self.dups = 0
        self.last_error = None

    def _bad(self, why):
        self.bad += 1
        self.last_error = why
        return None

    def feed(self, msg, now_wall_ms=None):
        if len(msg) > 1024:  # §6: events are at most 1024 bytes
            return self._bad("event of %d bytes exceeds 1024" % len(msg))
        try:
            ev = json.loads(msg)
        except ValueError:
            return self._bad("event is not JSON")
        if not isinstance(ev, dict):
            return self._bad("event is not an object")
        if ev.get("type") != "unsettled":
            return None  # weight, error, ...: not a trigger
        cart, board, epoch, seq = ev.get("cart"), ev.get("board"), ev.get("epoch"), ev.get("seq")
        if cart != self.cart or board != "scale":
            return self._bad("unsettled from %r/%r, expected %r/scale" % (cart, board, self.cart))
        for name, v in (("epoch", epoch), ("seq", seq)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                return self._bad("unsettled field %s=%r: must be an int >= 1" % (name, v))
        inst = ev.get("inst")
        if inst is not None and (not isinstance(inst, str) or not 8 <= len(inst) <= 32):
            return self._bad("unsettled field inst=%r: must be 8 to 32 hex digits" % (inst,))
        if inst != self.seen_inst:  # another scale instance: its own sequence
            self.seen_inst, self.seen_epoch, self.seen_seq = inst, 0, 0
        if (epoch, seq) <= (self.seen_epoch, self.seen_seq):
            self.dups += 1
            return None
        self.seen_epoch, self.seen_seq = epoch, seq
        wall = ev.get("wall_ms")
        if (now_wall_ms is not None and ev.get("synced") is True and isinstance(wall, int)
                and now_wall_ms - wall > self.stale_ms):
            self.stale += 1
            return None
        if inst:
            return "%s/scale/%s/%d/%d" % (cart, inst, epoch, seq)
        return "%s/scale/%d/%d" % (cart, epoch, seq)
