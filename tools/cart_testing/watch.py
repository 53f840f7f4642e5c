"""An MQTT watcher for tests and tools: subscribes, keeps every message and
the last payload per topic, and waits for conditions with a timeout."""
from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt


class Watcher:
    def __init__(self, port: int, topics=("#",), host: str = "127.0.0.1", user: str | None = None,
                 password: str | None = None, client_id: str | None = None, clean: bool = True):
        self.topics = tuple(topics)
        self.last: dict[str, bytes] = {}
        self.all: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        # on a provisioned broker the client id is the user name anyway
        # clean=False with a fixed client_id: the broker queues for us while we reconnect
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user or "",
                             clean_session=clean)
        self.c.reconnect_delay_set(0.1, 1)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_message = self._msg
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in self.topics]
        # a test acts right after this returns (starts a board, publishes): its messages must
        # not go out before the broker has our subscriptions, however slow the machine is
        self._subacks = threading.Semaphore(0)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self._subacks.release()
        self.c.connect(host, port)
        self.c.loop_start()
        deadline = time.monotonic() + 30
        for _ in topics:
            self._subacks.acquire(timeout=max(0.0, deadline - time.monotonic()))

    def _msg(self, c, u, m):
        with self.lock:
            self.last[m.topic] = m.payload
            self.all.append((m.topic, m.payload))

    def json(self, topic: str):
        with self.lock:
            p = self.last.get(topic)
        return json.loads(p) if p else None

    def events(self, typ: str | None = None) -> list[dict]:
        with self.lock:
            evts = [json.loads(p) for t, p in self.all if t.endswith("/evt")]
        return [e for e in evts if typ is None or e.get("type") == typ]

    def wait(self, pred, timeout: float = 60.0, what: str = "condition"):
        # generous by default: a gateway process took 9-14 s to come back at load 25 on 2 cores
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = pred()
            if r:
                return r
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; topics seen: {sorted(self.last)}")

    def scale_settled(self, cart: str, board: str = "scale", timeout: float = 30.0) -> dict:
        """Until the board's scale reports a settled level (its `status` command): its first
        settled level is the baseline, so a load placed before it gives no weight event."""
        res = f"carts/{cart}/{board}/cmd/res"
        if not any(mqtt.topic_matches_sub(t, res) for t in self.topics):
            self.topics = (*self.topics, res)
            self.c.subscribe(res, qos=1)
        return scale_settled(self.c, lambda: self.all, self.lock, cart, board, timeout)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def scale_settled(client, messages, lock, cart: str, board: str = "scale", timeout: float = 30.0) -> dict:
    """Ask `status` until scale_state is "settled" (the status result), over a connected paho
    client whose received (topic, payload) list `messages()` (guarded by `lock`) holds the
    board's cmd/res. A wait for what must happen, however slow a loaded machine is."""
    res_topic = f"carts/{cart}/{board}/cmd/res"
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        cid = f"settled-{id(client):x}-{n}"
        client.publish(f"carts/{cart}/{board}/cmd", json.dumps({"v": 1, "id": cid, "cmd": "status"}), qos=1)
        ask_end = min(deadline, time.monotonic() + 3)
        while time.monotonic() < ask_end:
            with lock:
                got = [json.loads(p) for t, p in messages() if t == res_topic and cid.encode() in p]
            if got:
                result = got[0].get("result") or {}
                if result.get("scale_state") == "settled":
                    return result
                break
            time.sleep(0.05)
        time.sleep(0.2)
    raise AssertionError(f"{cart}/{board}: scale not settled within {timeout} s")
