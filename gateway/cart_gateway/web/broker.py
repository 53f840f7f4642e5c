"""The web service's MQTT client: publishes verdicts and screen answers, follows availability.

Its own account and client id (role `web`). Every outgoing payload is checked
with the gateway's own decoder before it is sent, so the page cannot publish
something the gateway would reject. Publishes are QoS 1 and wait for the
broker's PUBACK: a page says "sent" only when the broker has the message.
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger("cart_gateway.web")


class NotSent(RuntimeError):
    """The broker is not connected or did not acknowledge in time."""


class Broker:
    def __init__(self, host: str, port: int, gateway_id: str, client_id: str, username: str | None = None,
                 password: str | None = None, cafile: str | None = None, ack_timeout_s: float = 3.0):
        self.gw = gateway_id
        self.ack_timeout_s = ack_timeout_s
        self.status: dict[str, dict] = {}     # "carts/<c>/<board>/status" | "gateway/<gw>/status" -> payload
        self._lock = threading.Lock()
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username:
            c.username_pw_set(username, password)
        if cafile:
            c.tls_set(ca_certs=str(cafile), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a, **k: self.connected.clear()
        c.on_message = self._on_message
        c.reconnect_delay_set(1, 10)
        self.client = c
        self.host, self.port = host, port

    def start(self) -> "Broker":
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, props=None):
        if reason.is_failure:
            log.warning("web: broker refused the connection: %s", reason)
            return
        client.subscribe([("carts/+/+/status", 1), (f"gateway/{self.gw}/status", 1)])
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        try:
            d = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(d, dict):
            with self._lock:
                self.status[msg.topic] = d

    # ------------------------------------------------------------ availability
    def board_state(self, cart: str, board: str) -> str:
        """online | offline | unknown (no status seen, or we are not connected)."""
        if not self.connected.is_set():
            return "unknown"
        with self._lock:
            d = self.status.get(f"carts/{cart}/{board}/status")
        return d.get("state", "unknown") if d else "unknown"

    def known_carts(self) -> set[str]:
        with self._lock:
            return {t.split("/")[1] for t in self.status if t.startswith("carts/")}

    def gateway_state(self) -> str:
        if not self.connected.is_set():
            return "unknown"
        with self._lock:
            d = self.status.get(f"gateway/{self.gw}/status")
        return d.get("state", "unknown") if d else "unknown"

    # ------------------------------------------------------------ publishing
    def publish(self, topic: str, payload: dict) -> float:
        """Publish at QoS 1 and wait for the PUBACK; returns when it came (time.monotonic())."""
        if not self.connected.wait(self.ack_timeout_s):
            raise NotSent("not connected to the broker")
        info = self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1)
        deadline = time.monotonic() + self.ack_timeout_s
        while not info.is_published():
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):   # NO_CONN: queued, sent on reconnect
                raise NotSent(f"publish failed: {mqtt.error_string(info.rc)}")
            if time.monotonic() > deadline:
                raise NotSent("the broker did not acknowledge the message in time")
            time.sleep(0.005)
        return time.monotonic()

    def verdict_topic(self) -> str:
        return f"gateway/{self.gw}/review/verdict"
