"""Wait for a board's birth (protocol §4) on the broker.

We subscribe *before* the board is reset and accept only a status message
delivered live (retain flag clear): a retained `online` left by the previous
boot would otherwise pass for the new one."""
from __future__ import annotations

import json
import queue
import time

import paho.mqtt.client as mqtt

from cart_flash.errors import NeverOnline


class StatusWatch:
    def __init__(self, host: str, port: int, cart: str, board: str, *, user: str | None = None,
                 password: str | None = None, ca_file: str | None = None):
        self.topic = f"carts/{cart}/{board}/status"
        self.where = f"{host}:{port}"
        self.q: queue.Queue = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cart-flash-{cart}-{board}-{time.time_ns() % 10**9}")
        if user:
            self.c.username_pw_set(user, password)
        if ca_file:
            self.c.tls_set(ca_certs=ca_file)
        subscribed = queue.Queue()
        self.c.on_subscribe = lambda *a: subscribed.put(True)
        self.c.on_message = lambda c, u, m: self.q.put((m.retain, m.payload))
        try:
            self.c.connect(host, port, keepalive=30)
        except OSError as e:
            raise NeverOnline(f"cannot reach the broker at {self.where} to verify the board: {e}") from None
        self.c.subscribe(self.topic, 1)
        self.c.loop_start()
        try:
            subscribed.get(timeout=5)
        except queue.Empty:
            self.close()
            raise NeverOnline(f"broker {self.where} did not confirm the subscription to {self.topic}") from None

    def wait_online(self, fw: str, timeout: float) -> dict:
        """The first live `online` birth; raise NeverOnline naming what was seen."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                detail = "; ".join(seen[-3:]) or "no status message at all"
                raise NeverOnline(f"board never came online: no live 'online' status with fw {fw} on "
                                  f"{self.topic} at {self.where} within {timeout:.0f} s ({detail}). "
                                  f"Check the console, Wi-Fi, broker address and credentials.")
            try:
                retained, payload = self.q.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            try:
                st = json.loads(payload)
            except ValueError:
                seen.append(f"unparsable status {payload[:60]!r}")
                continue
            if retained:
                seen.append(f"retained {st.get('state')} from an earlier boot (epoch {st.get('epoch')})")
                continue
            if st.get("state") != "online":
                seen.append(f"{st.get('state')} (epoch {st.get('epoch')})")
                continue
            if st.get("fw") != fw:
                raise NeverOnline(f"board came online with firmware {st.get('fw')!r}, expected {fw!r}: "
                                  f"the copy did not take (old files on flash?)")
            return st

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()
