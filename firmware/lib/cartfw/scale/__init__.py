# cartfw.scale: the load-cell signal pipeline (pure logic; runs under
# MicroPython and CPython). See docs/scale.md.
#   spike.py     glitch rejection and the 5-sample median
#   settle.py    the settle state machine (integer counts, no allocation)
#   pipeline.py  counts -> grams, auto-zero, sensor timeout, event dicts
#   loop.py      the seam between a driver, the pipeline and rt.event
