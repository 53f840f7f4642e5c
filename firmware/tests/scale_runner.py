# Runs one HX711 stream through SimHX711 -> ScaleLoop -> ScalePipeline and
# prints every event as a JSON line. The same file runs under `micropython`
# (MICROPYPATH=firmware/lib:firmware/hal/sim) and CPython, so the tests can
# compare the two. argv: stream file, counts_per_g, offset.
# Stream lines: an int (one conversion), "-" (no conversion this period),
# "x" (a malformed value from the link).
import sys
import json
from hx711_drv import SimHX711
from cartfw.scale.pipeline import ScalePipeline
from cartfw.scale.loop import ScaleLoop


class Source:
    def __init__(self):
        self.v = None

    def take_sample(self):
        v = self.v
        self.v = None
        return v


seq = [0]
idx = [0]


def emit(typ, fields):
    seq[0] += 1
    print(json.dumps({"i": idx[0], "seq": seq[0], "type": typ, "fields": fields}))
    return seq[0]


src = Source()
loop = ScaleLoop(SimHX711(src), ScalePipeline(float(sys.argv[2]), int(sys.argv[3])), emit)
with open(sys.argv[1]) as f:
    i = 0
    for line in f:
        s = line.strip()
        src.v = None if s == "-" else (1 << 30 if s == "x" else int(s))
        idx[0] = i
        loop.step(i * 25 // 2)
        i += 1
print(json.dumps({"end": loop.tele()}))
