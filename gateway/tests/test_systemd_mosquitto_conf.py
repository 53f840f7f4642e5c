"""The Pi's Mosquitto config loads in the real broker and keeps a session's queue across a restart."""
import os
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cart_testing.broker import MOSQUITTO, free_port

CONF = Path(__file__).resolve().parents[1] / "systemd" / "mosquitto.conf"


def start(tmp: Path, port: int) -> subprocess.Popen:
    text = CONF.read_text().replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    text = text.replace("/var/lib/mosquitto/", f"{tmp}/").replace("log_dest syslog", "log_dest stderr")
    if os.geteuid() == 0:
        text += "user root\n"    # as root mosquitto would drop to a user that cannot write tmp
    conf = tmp / "pi.conf"
    conf.write_text(text)
    p = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 5
    while time.time() < deadline:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        try:
            c.connect("127.0.0.1", port)
            c.disconnect()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError(p.communicate()[0].decode())


def test_pi_config_persists_queued_messages_over_a_broker_restart(tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto not installed")
    port = free_port()
    b = start(tmp_path, port)
    got = []
    try:
        gw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gateway-test", protocol=mqtt.MQTTv5)
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        gw.connect("127.0.0.1", port, clean_start=False, properties=props)
        gw.subscribe("carts/+/scale/evt", qos=1)
        gw.loop(1)
        gw.disconnect()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish("carts/c001/scale/evt", b"queued while away", qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        b.terminate(); b.wait(10)          # persistence writes the queue on exit
        b = start(tmp_path, port)
        gw2 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gateway-test", protocol=mqtt.MQTTv5)
        gw2.on_message = lambda c, u, m: got.append(m.payload)
        gw2.connect("127.0.0.1", port, clean_start=False, properties=props)
        t0 = time.time()
        while not got and time.time() - t0 < 5:
            gw2.loop(0.2)
        gw2.disconnect()
    finally:
        b.terminate()
        out = b.communicate(timeout=10)[0].decode()
    assert got == [b"queued while away"]
    assert "Error" not in out, out
