"""How fast a paho v5 subscriber alone reads a QoS 0 flood through Mosquitto (the floor under
tests/test_flood_fair_share.py): `PYTHONPATH=gateway:tools .venv/bin/python gateway/tests/bench_paho_read.py`."""
import sys, time, threading, subprocess, tempfile

from pathlib import Path
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from cart_testing.broker import Broker
from cart_bench.testkit import Board
b = Broker(Path(tempfile.mkdtemp())).start()
n = {"c": 0, "last": 0.0}
def on_msg(c, u, m):
    n["c"] += 1; n["last"] = time.monotonic()
sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="s", protocol=mqtt.MQTTv5)
sub.on_message = on_msg
sub.connect("127.0.0.1", b.port); sub.subscribe("carts/#", qos=1); sub.loop_start(); time.sleep(0.5)
pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="p"); pub.max_queued_messages_set(0)
pub.connect("127.0.0.1", b.port); pub.loop_start()
bd = Board("c001"); ps = [bd.unsettled() for _ in range(40000)]
t0 = time.monotonic()
for p in ps: pub.publish("carts/c001/scale/evt", p, qos=0)
t1 = time.monotonic()
while n["c"] < 40000 and time.monotonic() - t0 < 60: time.sleep(0.05)
print(f"published in {t1-t0:.2f} s, received {n['c']} by {n['last']-t0:.2f} s")
pub.loop_stop(); sub.loop_stop(); b.stop()
