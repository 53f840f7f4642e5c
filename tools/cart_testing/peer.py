"""An authenticated MQTT client for broker security tests: connects as one
provisioned user (its client id is its user name unless told otherwise),
publishes QoS 1 and waits for the PUBACK, and collects what it receives.
Its waits for what must happen (CONNACK, SUBACK, PUBACK, a sentinel) are generous (30 s):
a loaded CI machine can hold a broker or this process for seconds."""
from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt


class Peer:
    def __init__(self, port: int, user: str | None, password: str | None, client_id: str | None = None,
                 clean: bool = True, v5: bool = False, ca: str | None = None, host: str = "127.0.0.1"):
        self.msgs: queue.Queue = queue.Queue()
        self.connects: queue.Queue = queue.Queue()
        self.disconnects = 0
        self._subacks: queue.Queue = queue.Queue()
        cid = user if client_id is None else client_id
        if v5:
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
        if user is not None:
            self.c.username_pw_set(user, password)
        if ca:
            self.c.tls_set(ca_certs=ca)
        self.c.on_connect = lambda c, u, f, rc, p: self.connects.put(rc)
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, bytes(m.payload), bool(m.retain)))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self._subacks.put(rcs)
        self._lock = threading.Lock()
        self.host, self.port = host, port

    def _on_disconnect(self, c, u, f, rc, p):
        with self._lock:
            self.disconnects += 1

    def connect(self, timeout: float = 30, **kw) -> mqtt.ReasonCode:
        self.c.connect(self.host, self.port, keepalive=10, **kw)
        self.c.loop_start()
        self.rc = self.connects.get(timeout=timeout)
        return self.rc

    def sub(self, topics: list[str], timeout: float = 30) -> list:
        self.c.subscribe([(t, 1) for t in topics])
        return self._subacks.get(timeout=timeout)

    def pub(self, topic: str, payload: bytes, retain: bool = False, timeout: float = 30) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout)

    def take_until(self, sentinel_topic: str, timeout: float = 30) -> list[tuple[str, bytes, bool]]:
        """Everything received before the first message on sentinel_topic."""
        out = []
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message on {sentinel_topic} within {timeout} s; got {out[:5]}")
            try:
                m = self.msgs.get(timeout=left)
            except queue.Empty:
                continue
            if m[0] == sentinel_topic:
                return out
            out.append(m)

    def got(self, timeout: float) -> list[tuple[str, bytes, bool]]:
        out = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                out.append(self.msgs.get(timeout=0.05))
            except queue.Empty:
                pass
        return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
