"""Issue 11.2, end to end: a virtual scale (the real firmware in micropython) is re-flashed
(empty flash, so its boot epoch starts at 1 again) and keeps publishing; the gateway process
stores every one of its events, and a replayed duplicate is still dropped."""
import shutil
import sqlite3
import time

import paho.mqtt.client as mqtt

from cart_testing.watch import Watcher


def _movements(vb, w, loads, seen):
    for g in loads:
        vb.cell.set_load(g)
        w.wait(lambda: len(w.events("weight")) > seen, timeout=20, what=f"weight event at {g} g")
        seen = len(w.events("weight"))
    return seen


def _stored(state_dir) -> set[str]:
    db = sqlite3.connect(state_dir / "gateway.sqlite3")
    try:
        return {bytes(p).decode() for (p,) in db.execute("SELECT payload FROM events")}
    finally:
        db.close()


def test_a_reflashed_board_loses_no_event_and_a_replay_is_still_dropped(mosquitto, gateway, virtual_boards, tmp_path):
    w = Watcher(mosquitto.port, topics=("carts/c001/scale/evt", "gateway/gw1/status", "carts/c001/scale/status"))
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", what="gateway online")
        vb = virtual_boards("sim-scale", "c001")
        vb.power_on()
        w.wait(lambda: (w.json("carts/c001/scale/status") or {}).get("state") == "online", what="board online")
        w.scale_settled("c001")                          # the first settled level is the baseline
        seen = _movements(vb, w, (350.0, 700.0, 1050.0), 0)
        first = w.events()
        vb.power_off()
        shutil.rmtree(vb.fs)                             # a full flash: state/epoch and the journal are gone
        vb.flash()
        vb.power_on()
        w.wait(lambda: (w.json("carts/c001/scale/status") or {}).get("state") == "online"
               and w.json("carts/c001/scale/status")["epoch"] == 1 and len(w.events()) == len(first)
               and (w.json("carts/c001/scale/status") or {}).get("mono_ms", 1e9) < 5000,
               what="the re-flashed board online again at epoch 1")
        w.scale_settled("c001")
        _movements(vb, w, (1400.0, 1750.0, 2100.0), seen)
        evs = w.events()
        second = evs[len(first):]
        time.sleep(1.0)                                  # let the gateway commit the last ones
        # a real duplicate: one of the re-flashed board's events, redelivered
        with w.lock:
            raw = [p for t, p in w.all if t == "carts/c001/scale/evt"]
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-replay")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        pub.publish("carts/c001/scale/evt", raw[-1], qos=1).wait_for_publish(5)
        pub.publish("carts/c001/scale/evt", raw[0], qos=1).wait_for_publish(5)
        time.sleep(1.0)
        pub.loop_stop()
        pub.disconnect()
    finally:
        w.close()
    gateway.stop()
    stored = _stored(tmp_path / "gw-state")
    sent = {p.decode() for p in raw}
    assert stored == sent                              # every event of both boards, each once
    assert second and {e["epoch"] for e in second} == {1} and min(e["seq"] for e in second) == 1
    assert {e["inst"] for e in first}.isdisjoint({e["inst"] for e in second})   # a new instance id
    log = (tmp_path / "gateway.log").read_text()
    assert log.count("event=duplicate") >= 2
