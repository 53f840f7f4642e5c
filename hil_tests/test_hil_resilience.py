"""Resilience: a broker outage and a power cut while publishing lose
nothing; duplicates keep their identity."""
import random
import threading
import time

import pytest

from cartrig.checks import check_no_gaps, check_order, dedupe, readings
from cartrig.drivers.load import OperatorLoadDriver


def _weights(scale, since):
    return readings(scale.events(since))


def test_broker_outage_events_buffered_and_replayed(scale, rig, figures):
    lim = rig.spec.limits
    scale.load.set_load(0, "empty")
    time.sleep(1.5)
    since = scale.monitor.mark()
    placed = [200.0, 500.0, -200.0, 300.0]
    total = 0.0
    rig.broker_control.stop()
    t_stop = time.monotonic()
    try:
        time.sleep(2)  # the board notices (connection refused / keepalive) before the items come
        for g in placed:
            total += g
            scale.load.set_load(total, f"{total:g} g in total")
            time.sleep(2.0)
        time.sleep(max(0.0, lim.outage_s - (time.monotonic() - t_stop)))
        assert _weights(scale, since) == [], "events arrived while the broker was down?"
    finally:
        rig.broker_control.start()
    t_start = time.monotonic()
    scale.monitor.wait_for(lambda: len(_weights(scale, since)) >= len(placed), 30,
                           f"{len(placed)} weight events replayed after the outage")
    replay_s = time.monotonic() - t_start
    time.sleep(1.0)  # anything extra (a duplicate) would arrive now
    evs = scale.events(since)
    uniq, dups = dedupe(evs)
    check_order(uniq)
    check_no_gaps(uniq)
    w = readings(uniq)
    assert [round(e["delta_g"]) for e in w] == pytest.approx(placed, abs=3), w
    figures(scale, f"outage {lim.outage_s:.0f} s: events replayed", len(uniq))
    figures(scale, "outage: broker back -> all replayed (s)", round(replay_s, 2))
    figures(scale, "outage: duplicates", dups)


def test_power_cut_while_publishing(scale, rig, strategy, figures):
    if isinstance(scale.load, OperatorLoadDriver):
        pytest.skip("needs a load that changes by itself (virtual cell or a motorised rig)")
    rnd = random.Random(7)
    scale.load.set_load(0, "empty")
    time.sleep(1.5)
    since = scale.monitor.mark()
    births = scale.monitor.since(0, scale.topic + "/status")
    epoch0 = [m.json() for m in births if m.json().get("state") == "online"][-1]["epoch"]
    stop = threading.Event()

    def shake():
        total = 0.0
        while not stop.is_set():
            g = rnd.choice([150.0, 250.0, 400.0])
            total = total + g if total < 1500 else total - g
            scale.load.set_load(total)
            time.sleep(0.7)

    t = threading.Thread(target=shake, daemon=True)
    t.start()
    try:
        time.sleep(4.3)
        scale.power.off()            # power cut mid-stream
        time.sleep(0.5)
        mark_boot = scale.monitor.mark()
        scale.power.on()
        scale.wait_online(mark_boot, rig.spec.limits.online_timeout_s)
        time.sleep(4.0)
    finally:
        stop.set()
        t.join()
    time.sleep(1.5)
    # the journal drains: nothing is left unacknowledged on the board
    scale.monitor.wait_for(lambda: scale.cmd("status")["journal_depth"] == 0, 15, "journal_depth 0")
    evs = scale.events(since)
    uniq, dups = dedupe(evs)
    runs = check_no_gaps(uniq)
    epochs = sorted(runs)
    assert len(epochs) >= 2, f"expected events from before and after the cut, got epochs {runs}"
    new = epochs[-1]
    assert runs[new][0] == 1, f"the new epoch {new} starts at seq {runs[new][0]}, not 1"
    assert sum(1 for e in uniq if e["epoch"] < new) > 0
    figures(scale, "power cut: events (unique)", len(uniq))
    figures(scale, "power cut: duplicates (same identity and content)", dups)
    assert new == epoch0 + 1, (epoch0, runs)
