"""The queue between paho's network thread and the core thread, fair between carts.

One FIFO per source (a cart, or `gateway` for verdicts and other non-cart topics) keeps
each cart's messages in order; the core thread takes batches round-robin over the sources,
so one cart's flood waits behind itself, not in front of another cart's basket (issue 11.11).
QoS 0 messages (at most once: never acknowledged; a board sends only telemetry so) are
bounded per source: over `qos0_per_cart` queued, or over `qos0_rate_per_cart` a second
(a token bucket holding `qos0_per_cart`), a new one is dropped and counted for its cart, so
a flood costs the core thread almost nothing and leaves the CPU to the network thread that
must read it off the socket before the other carts' messages. QoS 1 messages are
never dropped here: the broker's Receive Maximum bounds how many are in flight unacknowledged.
Internal items (publish acks, connect, vision results) go first, in their own order.
"""
from __future__ import annotations

import threading
import time
from collections import deque


class FairQueue:
    def __init__(self, qos0_per_source: int, on_drop=None, qos0_rate: float = 50.0):
        self.qos0_max = qos0_per_source
        self.qos0_rate = qos0_rate
        self._tokens: dict[str, tuple[float, float]] = {}  # source -> (tokens, at monotonic s)
        self.on_drop = on_drop or (lambda source: None)     # called on the network thread
        self._cv = threading.Condition()
        self._internal: deque = deque()
        self._sources: dict[str, deque] = {}               # insertion order = round-robin order
        self._qos0: dict[str, int] = {}
        self._n = 0

    def put_internal(self, item) -> None:
        with self._cv:
            self._internal.append(item)
            self._n += 1
            self._cv.notify()

    def put(self, source: str, qos: int, item) -> bool:
        """Queue one MQTT message; False if it was a QoS 0 message over its source's bound."""
        with self._cv:
            dropped = False
            if qos == 0:
                now = time.monotonic()
                tokens, at = self._tokens.get(source, (float(self.qos0_max), now))
                tokens = min(float(self.qos0_max), tokens + (now - at) * self.qos0_rate)
                if tokens < 1.0 or self._qos0.get(source, 0) >= self.qos0_max:
                    dropped = True
                else:
                    tokens -= 1.0
                    self._qos0[source] = self._qos0.get(source, 0) + 1
                self._tokens[source] = (tokens, now)
            if not dropped:
                self._sources.setdefault(source, deque()).append((qos, item))
                self._n += 1
                self._cv.notify()
        if dropped:
            self.on_drop(source)
        return not dropped

    def qsize(self) -> int:
        return self._n

    def take(self, timeout: float, most: int) -> list:
        """Up to `most` items: internal ones first, then one message per source in turn."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._n == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cv.wait(left)
            out = []
            while self._internal and len(out) < most:
                out.append(self._internal.popleft())
            while self._sources and len(out) < most:
                source = next(iter(self._sources))
                q = self._sources.pop(source)       # served: to the back of the round
                qos, item = q.popleft()
                if qos == 0:
                    self._qos0[source] -= 1
                out.append(item)
                if q:
                    self._sources[source] = q
                else:
                    self._qos0.pop(source, None)
            self._n -= len(out)
            return out


def source_of(topic: str, accepts) -> str:
    """The cart a topic belongs to (`carts/<cart>/...`) if `accepts(cart)`; `unknown` for
    any other cart (so made-up cart ids cannot make sources without end), else `gateway`."""
    if topic.startswith("carts/"):
        end = topic.find("/", 6)
        cart = topic[6:end] if end > 6 else ""
        return cart if cart and accepts(cart) else "unknown"
    return "gateway"
