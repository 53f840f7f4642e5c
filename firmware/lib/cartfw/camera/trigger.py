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

    def _parse(self, msg):
        if len(msg) > 1024:  # §6: events are at most 1024 bytes
            return self._bad("event of %d bytes exceeds 1024" % len(msg))
        try:
            ev = json.loads(msg)
        except ValueError:
            return self._bad("event is not JSON")
        if not isinstance(ev, dict):
            return self._bad("event is not an object")
        return ev

    def _fresh(self, ev, now_wall_ms):
        # The event's identity if it is ours, new and not stale, else None.
        typ = ev.get("type")
        cart, board, epoch, seq = ev.get("cart"), ev.get("board"), ev.get("epoch"), ev.get("seq")
        if cart != self.cart or board != "scale":
            return self._bad("%s from %r/%r, expected %r/scale" % (typ, cart, board, self.cart))
        for name, v in (("epoch", epoch), ("seq", seq)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                return self._bad("%s field %s=%r: must be an int >= 1" % (typ, name, v))
        inst = ev.get("inst")
        if inst is not None and (not isinstance(inst, str) or not 8 <= len(inst) <= 32):
            return self._bad("%s field inst=%r: must be 8 to 32 hex digits" % (typ, inst))
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
        return inst, epoch, seq

    def _ref(self, inst, epoch, seq):
        if inst:
            return "%s/scale/%s/%d/%d" % (self.cart, inst, epoch, seq)
        return "%s/scale/%d/%d" % (self.cart, epoch, seq)

    def feed(self, msg, now_wall_ms=None):
        ev = self._parse(msg)
        if ev is None or ev.get("type") != "unsettled":
            return None  # weight, error, ...: not a burst trigger
        ident = self._fresh(ev, now_wall_ms)
        if ident is None:
            return None
        return self._ref(*ident)

    def classify(self, msg, now_wall_ms=None, still_min_g=None):
        """Like feed(), and also the still trigger: -> ("unsettled", ref),
        ("settled", ref) for a fresh `weight` event (§6.1) whose delta_g is at
        least still_min_g (None: settles are not triggers), or None. A
        settle's ref names the movement's `unsettled` event (its
        window.unsettled_seq), so the gateway joins the still to the same
        movement as the burst; None when the scale gave no unsettled_seq."""
        ev = self._parse(msg)
        if ev is None:
            return None
        typ = ev.get("type")
        if typ == "unsettled":
            ident = self._fresh(ev, now_wall_ms)
            return None if ident is None else ("unsettled", self._ref(*ident))
        if typ != "weight" or still_min_g is None:
            return None
        delta, win = ev.get("delta_g"), ev.get("window")
        if not isinstance(delta, (int, float)) or isinstance(delta, bool) or delta != delta:
            return self._bad("weight field delta_g=%r: must be a number" % (delta,))
        ident = self._fresh(ev, now_wall_ms)
        if ident is None or delta < still_min_g:
            return None  # a removal or a small change: nothing new to read
        useq = win.get("unsettled_seq") if isinstance(win, dict) else None
        if isinstance(useq, int) and not isinstance(useq, bool) and useq >= 1:
            return "settled", self._ref(ident[0], ident[1], useq)
        return "settled", None
