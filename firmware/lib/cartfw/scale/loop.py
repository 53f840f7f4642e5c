# The seam between a driver, the pipeline and the runtime (apps/scale.py).
#
# ScaleLoop.step(now_ms) drains the driver's ready conversions into the
# pipeline and hands events to emit(type, fields) -> seq (rt.event). It
# fills window.unsettled_seq from the seq emit returned for the matching
# `unsettled`, and `replaces` from the seq of the provisional weight event a
# final one replaces (protocol §6.1). Tested with the real SimHX711 and a plain list as emit.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

from cartfw.scale.pipeline import SAME_WINDOW

MAX_PER_STEP = const(16)  # bound the work per call; 16 samples = 200 ms


class ScaleLoop:
    def __init__(self, driver, pipeline, emit):
        self.driver = driver
        self.pipe = pipeline
        self.emit = emit
        self.bad_samples = 0
        self._unsettled_seq = None
        self._prov_seq = None    # seq of the open provisional weight event
        self._prov_useq = None   # ... and its unsettled_seq

    def step(self, now_ms):
        """Returns the number of conversions taken."""
        n = 0
        while n < MAX_PER_STEP:
            try:
                raw = self.driver.read()
            except ValueError:
                # A malformed conversion from the link: count it, keep going.
                self.bad_samples += 1
                n += 1
                continue
            if raw is None:
                break
            n += 1
            ev = self.pipe.feed(raw, now_ms)
            if ev is not None:
                self._send(ev)
        if n == 0:
            ev = self.pipe.poll(now_ms)
            if ev is not None:
                self._send(ev)
        return n

    def _send(self, ev):
        typ, fields = ev
        if typ == "weight":
            win = fields["window"]
            if win["unsettled_seq"] == SAME_WINDOW:
                win["unsettled_seq"] = self._prov_useq   # the provisional's own change
            else:
                win["unsettled_seq"] = self._unsettled_seq
                self._unsettled_seq = None
            if fields.get("replaces"):
                # The final of a provisional (§6.1): name it; without a seq
                # (the emit failed) it is an ordinary event.
                if self._prov_seq is None:
                    del fields["replaces"]
                else:
                    fields["replaces"] = self._prov_seq
                self._prov_seq = None
        seq = self.emit(typ, fields)
        if typ == "unsettled":
            self._unsettled_seq = seq
        elif typ == "weight" and fields.get("prov"):
            self._prov_seq = seq
            self._prov_useq = fields["window"]["unsettled_seq"]

    def tele(self):
        t = self.pipe.tele()
        t["scale_bad_samples"] = self.bad_samples
        return t
