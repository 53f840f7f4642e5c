"""Issue 11.11, end to end on the real Mosquitto and the gateway process: one cart's QoS 0
flood does not delay another cart's basket (each cart gets its share of the core thread, the
flood's queue is bounded and its drops are counted for that cart)."""
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

from cart_bench.testkit import Board
from cart_testing.broker import free_port
from cart_testing.gateway import GatewayProcess
from cart_testing.procs import read_line
from cart_testing.watch import Watcher

FLOOD = 40_000
ROOT = Path(__file__).resolve().parents[1]
FLOODER = r"""
import sys
import paho.mqtt.client as mqtt
from cart_bench.testkit import Board
port, n = int(sys.argv[1]), int(sys.argv[2])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood-c001")
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
b = Board("c001")
payloads = [b.unsettled() for _ in range(n)]        # valid events: each would cost a write
for i, p in enumerate(payloads):
    c.publish("carts/c001/scale/evt", p, qos=0)
    if i == 2000:
        print("started", flush=True)
c.loop_stop()
c.disconnect()
"""
# In its own process, a plain subscriber to the same stream: how many of the flood's messages
# the broker sent ahead of c002's weight event (its last).
READER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood-reader")
ahead = [0]
def on_message(c, u, m):
    if m.topic == "carts/c001/scale/evt":
        ahead[0] += 1
    elif json.loads(m.payload).get("type") == "weight":
        print(ahead[0], flush=True)
c.on_message = on_message
c.on_subscribe = lambda c, u, mid, rcs, p: print("ready", flush=True)
c.on_connect = lambda c, u, f, rc, p: c.subscribe("carts/+/scale/evt", 1)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_forever()
"""


def _config(tmp_path, port, metrics_port):
    p = tmp_path / "gw.toml"
    p.write_text("\n".join([
        'gateway_id = "gw1"', f'state_dir = "{tmp_path / "gw-state"}"', "tick_ms = 100",
        f"metrics_port = {metrics_port}", "[mqtt]", 'host = "127.0.0.1"', f"port = {port}",
        "[carts]", 'known = ["c001", "c002"]', "[detector]", "enabled = false",
        "[ingest]", "qos0_per_cart = 200", ""]))
    return p


def _metric(port, name, **labels):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_one_carts_qos0_flood_does_not_delay_another_carts_basket(mosquitto, tmp_path):
    mport = free_port()
    gw = GatewayProcess(_config(tmp_path, mosquitto.port, mport), tmp_path / "gateway.log").start()
    w = Watcher(mosquitto.port, topics=("gateway/gw1/status", "carts/c002/basket"))
    shopper = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cart-c002-scale")
    flooder = reader = None
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", timeout=30,
               what="gateway online")
        shopper.connect("127.0.0.1", mosquitto.port)
        shopper.loop_start()
        reader = subprocess.Popen([sys.executable, "-c", READER, str(mosquitto.port)], stdout=subprocess.PIPE, text=True)
        assert read_line(reader.stdout, 30, "the reader").strip() == "ready"
        # the flood from its own process: this one's GIL is for the shopper and the watcher
        flooder = subprocess.Popen([sys.executable, "-c", FLOODER, str(mosquitto.port), str(FLOOD)],
                                   stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": f"{ROOT / 'gateway'}:{ROOT / 'tools'}"})
        assert read_line(flooder.stdout, 60, "the flooder").strip() == "started"     # 2,000 sent
        time.sleep(0.5)                                            # the flood is queued at the gateway now
        b = Board("c002")
        t0 = time.monotonic()
        for _, p in b.movement(350.2):
            shopper.publish("carts/c002/scale/evt", p, qos=1)
        w.wait(lambda: (w.json("carts/c002/basket") or {}).get("lines"), timeout=60, what="c002's basket")
        delay = time.monotonic() - t0
        handled = _metric(mport, "cart_gateway_events_total", type="unsettled") - 1   # c001's, c002's aside
        assert flooder.wait(120) == 0
        print(f"c002 basket {delay:.2f} s after its events, during c001's {FLOOD}-message QoS 0 flood")
        # Before the fair queue this was 13 s here (the whole flood ahead of it in one FIFO), with
        # it 4 s (14.5 s and 3.9 s in one run). On a loaded machine the time alone says nothing
        # (9.5-12.5 s at load 36 on 2 cores, the fair queue working): then count instead. Behind
        # one FIFO every flood message ahead of c002's would be handled before its basket; with
        # its share of the core thread, c002's basket comes while most of them are not.
        ahead = int(read_line(reader.stdout, 60, "the reader (c002's weight event)"))
        print(f"flood messages ahead of c002's weight event {ahead}, of them handled before its basket {handled:.0f}")
        assert delay < 8.0 or handled < ahead / 2, (delay, handled, ahead)
        w.wait(lambda: _metric(mport, "cart_gateway_ingest_dropped_total", cart="c001") > 0, timeout=30,
               what="the flood's drops counted")
        assert _metric(mport, "cart_gateway_ingest_dropped_total", cart="c002") == 0
    finally:
        for p in (flooder, reader):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shopper.loop_stop()
        shopper.disconnect()
        w.close()
        gw.stop()
