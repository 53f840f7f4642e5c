"""Heap over a long soak (marked slow: `pytest hil_tests -m slow`)."""
import re
import time

import pytest


@pytest.mark.slow
@pytest.mark.timeout(0)      # as long as the rig spec's soak_s (hours on a real bench)
def test_heap_within_budget_over_soak(scale, rig, figures):
    lim = rig.spec.limits
    # A device keeps its code frozen in flash; the unix port loads it into the
    # heap, so a virtual board's budget is heap_budget + code_in_heap (board.json).
    budget = scale.vb.heap if scale.vb is not None else scale.definition["heap_budget"]
    restarts0 = scale.vb.restarts if scale.vb is not None else None
    since = scale.monitor.mark()
    scale.console.clear()
    t_end = time.monotonic() + lim.soak_s
    total, placed, n = 0.0, 0, 0
    while time.monotonic() < t_end:
        g = (150.0, 320.0, 75.0, 500.0)[n % 4]
        n += 1
        total = total + g if total < 2000 else 0.0
        scale.load.set_load(total)
        placed += 1
        if n % 10 == 0:
            scale.cmd("status")   # commands allocate too
        time.sleep(3.0)
    time.sleep(2.0)
    tele = [m.json() for m in scale.monitor.since(since, scale.topic + "/tele")]
    assert tele, "no telemetry during the soak"
    peak = max(t["heap_peak"] for t in tele)
    low_free = min(t["heap_free"] for t in tele)
    figures(scale, f"soak {lim.soak_s:.0f} s: heap_peak max (B)", peak)
    figures(scale, "soak: heap_free min (B)", low_free)
    figures(scale, "soak: load changes", placed)
    assert peak <= budget, f"heap_peak {peak} over the {budget} B budget"
    assert "MemoryError" not in scale.console.text()
    if restarts0 is not None:
        assert scale.vb.restarts == restarts0, "the board restarted during the soak"
    # heap does not creep: the last third's peak is not above the first third's by more than 5 %
    k = max(1, len(tele) // 3)
    first, last = max(t["heap_peak"] for t in tele[:k]), max(t["heap_peak"] for t in tele[-k:])
    assert last <= first * 1.05 + 1024, f"heap_peak crept from {first} to {last}"
    weights = [e for e in scale.events(since) if e["type"] == "weight"]
    assert len(weights) >= placed * 0.9, f"{len(weights)} weight events for {placed} load changes"
