"""The rig's view of the broker: every message under carts/#, timestamped on
arrival, and commands to boards (protocol §9).

It holds a persistent session (clean_session=False, QoS 1) on a broker with
persistence on, as the gateway does: during a broker restart the broker keeps
its subscription, so a board that replays faster than we reconnect loses
nothing on our side either."""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass
class Msg:
    t: float          # time.monotonic() on arrival
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Monitor:
    def __init__(self, host: str, port: int, user: str | None = None, password: str | None = None,
                 ca_file: str | None = None, client_id: str = "hil-rig-monitor"):
        self.msgs: list[Msg] = []
        self._cond = threading.Condition()
        self.connects = 0
        # Drop whatever session an earlier run left on a persistent broker, so
        # its queued messages are not taken for this run's.
        _wipe_session(host, port, client_id, user, password, ca_file)
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=False)
        if user:
            self.c.username_pw_set(user, password)
        if ca_file:
            self.c.tls_set(ca_certs=ca_file)
        self.c.reconnect_delay_set(0.2, 1)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()
        self.wait_for(lambda: self.connects > 0, 10, "the rig monitor's connection to the broker")

    def _on_connect(self, c, u, flags, rc, props):
        if not rc.is_failure:
            c.subscribe("carts/#", 1)
            with self._cond:
                self.connects += 1
                self._cond.notify_all()

    def _on_message(self, c, u, m):
        with self._cond:
            self.msgs.append(Msg(time.monotonic(), m.topic, bytes(m.payload), bool(m.retain)))
            self._cond.notify_all()

    def mark(self) -> int:
        """An index: later queries look only at messages after it."""
        with self._cond:
            return len(self.msgs)

    def since(self, idx: int, topic: str | None = None) -> list[Msg]:
        with self._cond:
            return [m for m in self.msgs[idx:] if topic is None or m.topic == topic]

    def wait_for(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                r = pred()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._cond.wait(min(left, 0.2))

    def wait_msg(self, idx: int, topic: str, match=lambda d: True, timeout: float = 30.0,
                 what: str = "") -> Msg:
        def pred():
            for m in self.msgs[idx:]:
                if m.topic == topic:
                    try:
                        if match(m.json()):
                            return m
                    except ValueError:
                        continue
            return None
        return self.wait_for(pred, timeout, what or f"a message on {topic}")

    def command(self, cart: str, board: str, cmd: str, args: dict | None = None,
                timeout: float = 30.0) -> dict:
        """Send a command and return its result dict; raise on ok:false."""
        cid = uuid.uuid4().hex[:16]
        idx = self.mark()
        body = {"v": 1, "id": cid, "cmd": cmd, "args": args or {}}
        self.c.publish(f"carts/{cart}/{board}/cmd", json.dumps(body), qos=1)
        m = self.wait_msg(idx, f"carts/{cart}/{board}/cmd/res", lambda d: d.get("id") == cid, timeout,
                          f"the result of {cmd} from {cart}/{board}")
        res = m.json()
        if not res.get("ok"):
            raise CommandFailed(f"{cart}/{board} {cmd}: {res.get('error')}")
        return res.get("result") or {}

    def send_command(self, cart: str, board: str, cmd: str, args: dict | None = None) -> None:
        """Fire and forget (test_hang never answers)."""
        body = {"v": 1, "id": uuid.uuid4().hex[:16], "cmd": cmd, "args": args or {}}
        self.c.publish(f"carts/{cart}/{board}/cmd", json.dumps(body), qos=1)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _wipe_session(host, port, client_id, user, password, ca_file) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if user:
        c.username_pw_set(user, password)
    if ca_file:
        c.tls_set(ca_certs=ca_file)
    c.connect(host, port, keepalive=10)
    c.loop_start()
    deadline = time.monotonic() + 5
    while not c.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    c.disconnect()
    c.loop_stop()


class CommandFailed(AssertionError):
    pass
