# A non-blocking MQTT 3.1.1 client for uasyncio, in the spirit of
# peterhinch/mqtt_as: every socket operation has a timeout, keepalive pings at a
# quarter of the keepalive, one reconnect path with exponential backoff and
# jitter, resubscribe after every reconnect, bounded preallocated receive buffer.
#
# Surface (umqtt-like): MQTTClient(...); await c.run() keeps it connected;
# await c.publish(topic, msg, retain, qos) -> bool; c.subscribe(topic, qos);
# c.isconnected(); counters in c.stats.
import struct
import time
import random

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

try:
    from micropython import const
except ImportError:  # pragma: no cover
    const = lambda x: x  # noqa: E731

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)
SUBACK = const(0x90)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)
TOPIC_MAX = const(256)

# states, for the watchdog rule (see healthy())
DOWN = const(0)
CONNECTING = const(1)
UP = const(2)
BACKOFF = const(3)


class MQTTProtocolError(Exception):
    pass


def _ms():
    return time.ticks_ms()


def _since(t):
    return time.ticks_diff(time.ticks_ms(), t)


def _str(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">H", len(b)) + b


def _remlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _publish_packet(fixed, tb, pid, msg, n):
    # One allocation of the packet's exact size, filled in place: concatenating its parts made
    # four growing intermediates per publish, which fragment a 96 KB heap during a replay.
    rl = _remlen(n)
    buf = bytearray(1 + len(rl) + n)
    mv = memoryview(buf)
    buf[0] = fixed
    i = 1 + len(rl)
    mv[1:i] = rl
    buf[i] = len(tb) >> 8
    buf[i + 1] = len(tb) & 0xFF
    i += 2
    mv[i:i + len(tb)] = tb
    i += len(tb)
    if pid:
        buf[i] = pid >> 8
        buf[i + 1] = pid & 0xFF
        i += 2
    mv[i:] = msg
    return buf


class MQTTClient:
    def __init__(self, client_id, server, port=1883, user=None, password=None,
                 keepalive=30, ssl=None, server_hostname=None, clean_session=False,
                 rx_max=4096, response_ms=10000, ack_ms=5000, max_retrans=2,
                 backoff_min_ms=1000, backoff_max_ms=60000, net_up=None, log=print):
        self.client_id = client_id
        self.server = server
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl  # an ssl.SSLContext, or None for plain TCP
        self.server_hostname = server_hostname
        self.clean_session = clean_session
        self.response_ms = response_ms
        self.ack_ms = ack_ms
        self.max_retrans = max_retrans
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.net_up = net_up  # async callable: bring the network up (Wi-Fi)
        self.log = log
        self.will = None
        self.on_message = None  # cb(topic: str, msg: bytes)
        self.on_connect = None  # async cb(): birth, replay
        self.subs = []  # [(topic, qos)], resubscribed on every connect
        self.rx_max = rx_max
        self._buf = bytearray(rx_max)  # preallocated: incoming payloads land here
        self._mv = memoryview(self._buf)
        self._tbuf = bytearray(TOPIC_MAX)
        self._hdr = bytearray(4)
        self._r = None
        self._w = None
        self._wlock = asyncio.Lock()
        self._pid = 0
        self._acks = {}  # pid -> asyncio.Event for in-flight QoS 1 publishes
        self._gen = 0  # connection generation: bumps on every (dis)connect
        self.state = DOWN
        self.state_ms = _ms()
        self.last_rx_ms = _ms()
        self.backoff_until_ms = _ms()
        self.stats = {"reconnects": 0, "connects": 0, "rx_oversize": 0,
                      "protocol_errors": 0, "retransmits": 0, "ack_timeouts": 0,
                      "keepalive_timeouts": 0, "rx_msgs": 0, "tx_msgs": 0}

    # ---- configuration
    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain, qos)

    def subscribe(self, topic, qos=1):
        # Remembered and (re)sent after every CONNACK.
        for t, _ in self.subs:
            if t == topic:
                return
        self.subs.append((topic, qos))
        if self.state == UP:
            asyncio.create_task(self._send_subscribe(self._gen, topic, qos))

    def isconnected(self):
        return self.state == UP

    def healthy(self, grace_ms=5000):
        """True while the client is doing its job: connected and hearing from
        the broker, or working through connect / backoff on schedule. A dead
        broker is healthy (we are backing off); a wedged client is not."""
        now = _ms()
        if self.state == UP:
            return time.ticks_diff(now, self.last_rx_ms) < self.keepalive * 1000 + grace_ms
        if self.state == BACKOFF:
            return time.ticks_diff(now, self.backoff_until_ms) < grace_ms
        # CONNECTING (and DOWN between steps): bounded by the connect timeouts
        return time.ticks_diff(now, self.state_ms) < 3 * self.response_ms + grace_ms

    def _set_state(self, s):
        self.state = s
        self.state_ms = _ms()

    # ---- the keep-connected loop (the only place that connects)
    async def run(self):
        delay = self.backoff_min_ms
        while True:
            self._set_state(CONNECTING)
            try:
                if self.net_up is not None:
                    await self.net_up()
                await self._connect()
            except Exception as e:  # any failure: one path, back off and retry
                self.log("mqtt: connect failed to %s:%d: %r" % (self.server, self.port, e))
                self._close()
                d = delay // 2 + random.getrandbits(16) % (delay // 2 + 1)  # jitter
                self._set_state(BACKOFF)
                self.backoff_until_ms = time.ticks_add(_ms(), d)
                await asyncio.sleep_ms(d)
                delay = min(delay * 2, self.backoff_max_ms)
                continue
            delay = self.backoff_min_ms
            gen = self._gen
            try:
                await self._serve(gen)  # returns on a dead connection
            except Exception as e:
                self.log("mqtt: connection lost: %r" % (e,))
            self._close()
            self.stats["reconnects"] += 1
            # A short jittered pause, so 50 carts do not reconnect in lockstep.
            d = self.backoff_min_ms // 2 + random.getrandbits(16) % (self.backoff_min_ms // 2 + 1)
            self._set_state(BACKOFF)
            self.backoff_until_ms = time.ticks_add(_ms(), d)
            await asyncio.sleep_ms(d)

    def _close(self):
        w = self._w
        self._r = self._w = None
        if w is not None:
            try:
                w.close()
            except Exception:
                pass
        self._gen += 1
        self.state = DOWN if self.state == UP else self.state
        for ev in self._acks.values():  # wake waiters: their connection is gone
            ev.set()
        self._acks = {}

    async def _connect(self):
        r, w = await asyncio.wait_for_ms(
            asyncio.open_connection(self.server, self.port), self.response_ms)
        if self.ssl is not None:
            # Wrap the connected socket; the handshake runs non-blocking as
            # the stream is first read and written.
            sock = self.ssl.wrap_socket(w.s, server_hostname=self.server_hostname or self.server,
                                        do_handshake_on_connect=False)
            sock.setblocking(False)
            r = w = asyncio.StreamReader(sock)
        self._r, self._w = r, w
        self._gen += 1
        # CONNECT
        flags = 0x00 if not self.clean_session else 0x02
        body = _str(b"MQTT") + b"\x04"
        pl = _str(self.client_id)
        if self.will:
            t, m, retain, qos = self.will
            flags |= 0x04 | (qos & 1) << 3 | (0x20 if retain else 0)
            pl += _str(t) + _str(m)
        if self.user is not None:
            flags |= 0x80
            pl += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                pl += _str(self.password)
        body += bytes((flags,)) + struct.pack(">H", self.keepalive) + pl
        await self._write(bytes((CONNECT,)) + _remlen(len(body)) + body)
        # CONNACK, within response_ms
        typ, n = await self._read_header(self.response_ms)
        if typ != CONNACK or n != 2:
            raise MQTTProtocolError("expected CONNACK, got 0x%02x len %d" % (typ, n))
        await self._readexact(self._mv[:2], self.response_ms)
        if self._buf[1] != 0:
            raise MQTTProtocolError("CONNACK refused, code %d" % self._buf[1])
        self.last_rx_ms = _ms()
        self._set_state(UP)
        self.stats["connects"] += 1
        self.log("mqtt: connected to %s:%d (session present %d)" % (self.server, self.port, self._buf[0] & 1))
        gen = self._gen
        for t, q in self.subs:
            await self._send_subscribe(gen, t, q)
        if self.on_connect is not None:
            asyncio.create_task(self._guard(self.on_connect(), gen))

    async def _guard(self, coro, gen):
        try:
            await coro
        except Exception as e:
            self.log("mqtt: on_connect failed: %r" % (e,))
            if gen == self._gen:
                self._close()

    # ---- low-level I/O, every operation under a timeout
    async def _write(self, data, gen=None):
        # One whole packet per call, under the lock: never interleaved.
        if gen is not None and gen != self._gen:
            raise OSError(-1)  # stale connection
        w = self._w
        if w is None:
            raise OSError(-1)
        async with self._wlock:
            w.write(data)
            await asyncio.wait_for_ms(w.drain(), self.response_ms)

    async def _readexact(self, mv, timeout_ms):
        r = self._r
        if r is None:
            raise OSError(-1)  # closed under us (a publisher declared it dead)
        got = 0
        n = len(mv)
        while got < n:
            k = await asyncio.wait_for_ms(r.readinto(mv[got:]), timeout_ms)
            if k is None:
                continue  # spurious readiness (EAGAIN): wait again
            if k == 0:
                raise OSError(-2)  # EOF: the broker closed the connection
            got += k

    async def _read_header(self, timeout_ms):
        # Fixed header: type byte + remaining length (1..4 bytes)
        h = memoryview(self._hdr)
        await self._readexact(h[:1], timeout_ms)
        typ = self._hdr[0]
        n = 0
        mul = 1
        for _ in range(4):
            await self._readexact(h[1:2], self.response_ms)
            b = self._hdr[1]
            n += (b & 0x7F) * mul
            if not b & 0x80:
                return typ, n
            mul <<= 7
        self.stats["protocol_errors"] += 1
        raise MQTTProtocolError("remaining length longer than 4 bytes")

    # ---- the connected phase
    async def _serve(self, gen):
        ka_ms = self.keepalive * 1000
        ping_ms = ka_ms // 4
        last_ping = _ms()
        while gen == self._gen:
            try:
                typ, n = await self._read_header(ping_ms)
            except asyncio.TimeoutError:
                # Quiet line: ping at a quarter of the keepalive; after two
                # missed answers (half the keepalive) the broker is dead.
                if _since(self.last_rx_ms) > ka_ms // 2:
                    self.stats["keepalive_timeouts"] += 1
                    raise OSError("keepalive: broker silent for %d ms" % _since(self.last_rx_ms))
                if _since(last_ping) >= ping_ms - 50:
                    await self._write(b"\xc0\x00", gen)
                    last_ping = _ms()
                continue
            self.last_rx_ms = _ms()
            await self._dispatch(typ, n, gen)
            if _since(last_ping) >= ping_ms:
                if _since(self.last_rx_ms) > ka_ms // 2:
                    raise OSError("keepalive")
                await self._write(b"\xc0\x00", gen)
                last_ping = _ms()

    async def _dispatch(self, typ, n, gen):
        t = typ & 0xF0
        if t == PUBLISH:
            await self._rx_publish(typ, n, gen)
        elif typ == PUBACK and n == 2:
            await self._readexact(self._mv[:2], self.response_ms)
            pid = self._buf[0] << 8 | self._buf[1]
            ev = self._acks.pop(pid, None)
            if ev is not None:
                ev.set()
        elif typ == SUBACK and 3 <= n <= 8:
            await self._readexact(self._mv[:n], self.response_ms)
            if self._buf[2] == 0x80:
                self.log("mqtt: subscription refused by the broker")
        elif typ == PINGRESP and n == 0:
            pass
        else:
            self.stats["protocol_errors"] += 1
            raise MQTTProtocolError("unexpected packet 0x%02x len %d" % (typ, n))

    async def _rx_publish(self, typ, n, gen):
        qos = (typ >> 1) & 3
        if qos > 1 or n < 2:  # we subscribe at QoS <= 1; QoS 2 here is garbage
            self.stats["protocol_errors"] += 1
            raise MQTTProtocolError("bad PUBLISH flags 0x%02x" % typ)
        await self._readexact(self._mv[:2], self.response_ms)
        tl = self._buf[0] << 8 | self._buf[1]
        need = 2 + tl + (2 if qos else 0)
        if tl == 0 or tl > TOPIC_MAX or need > n:
            self.stats["protocol_errors"] += 1
            raise MQTTProtocolError("bad PUBLISH topic length %d" % tl)
        tmv = memoryview(self._tbuf)[:tl]
        await self._readexact(tmv, self.response_ms)
        pid = 0
        if qos:
            await self._readexact(self._mv[:2], self.response_ms)
            pid = self._buf[0] << 8 | self._buf[1]
        plen = n - need
        if plen > self.rx_max:
            # Too big: read it through the fixed buffer and throw it away;
            # never allocate (mqtt_as issues #151, #83).
            left = plen
            while left:
                k = min(left, self.rx_max)
                await self._readexact(self._mv[:k], self.response_ms)
                left -= k
            self.stats["rx_oversize"] += 1
            self.log("mqtt: dropped an oversized message (%d bytes)" % plen)
        else:
            await self._readexact(self._mv[:plen], self.response_ms)
            self.stats["rx_msgs"] += 1
            cb = self.on_message
            if cb is not None:
                try:
                    topic = bytes(tmv).decode()
                    cb(topic, bytes(self._mv[:plen]))
                except Exception as e:  # a handler bug must not kill the client
                    self.log("mqtt: message handler failed: %r" % (e,))
        if qos:
            await self._write(b"\x40\x02" + struct.pack(">H", pid), gen)

    async def _send_subscribe(self, gen, topic, qos):
        pid = self._next_pid()
        body = struct.pack(">H", pid) + _str(topic) + bytes((qos,))
        try:
            await self._write(bytes((SUBSCRIBE,)) + _remlen(len(body)) + body, gen)
        except OSError:
            pass  # reconnect resubscribes

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._acks:
                return self._pid

    # ---- publishing
    async def publish(self, topic, msg, retain=False, qos=0, timeout_ms=None):
        """QoS 0: True once written. QoS 1: True after PUBACK, retransmitting
        with DUP every ack_ms; after max_retrans unanswered retransmissions the
        connection is declared dead (reconnect). False when offline, on a lost
        connection or after timeout_ms; the caller decides whether to retry."""
        if self.state != UP:
            return False
        gen = self._gen
        tb = topic.encode() if isinstance(topic, str) else topic
        fixed = PUBLISH | (qos << 1) | (1 if retain else 0)
        n = 2 + len(tb) + len(msg) + (2 if qos else 0)
        if not qos:
            try:
                await self._write(_publish_packet(fixed, tb, 0, msg, n), gen)
                self.stats["tx_msgs"] += 1
                return True
            except Exception:
                self._drop(gen)
                return False
        pid = self._next_pid()
        ev = asyncio.Event()
        self._acks[pid] = ev
        # One buffer per packet: two small writes would meet Nagle + delayed ACK.
        head = _publish_packet(fixed, tb, pid, msg, n)
        start = _ms()
        tries = 0
        try:
            while True:
                try:
                    await self._write(head, gen)
                except Exception:
                    self._drop(gen)
                    return False
                try:
                    await asyncio.wait_for_ms(ev.wait(), self.ack_ms)
                except asyncio.TimeoutError:
                    pass
                if ev.is_set():
                    if gen != self._gen or pid in self._acks:
                        return False  # woken by a disconnect, not a PUBACK
                    self.stats["tx_msgs"] += 1
                    return True
                self.stats["ack_timeouts"] += 1
                if gen != self._gen:
                    return False
                if tries >= self.max_retrans:
                    self.log("mqtt: no PUBACK after %d retransmissions" % tries)
                    self._drop(gen)
                    return False
                if timeout_ms is not None and _since(start) >= timeout_ms:
                    return False
                tries += 1
                head[0] |= 0x08  # DUP: same packet id, same connection
                self.stats["retransmits"] += 1
        finally:
            if self._acks.get(pid) is ev:
                del self._acks[pid]

    def _drop(self, gen):
        # Declare this connection dead; the run() loop reconnects.
        if gen == self._gen and self._w is not None:
            self._close()

    async def disconnect(self):
        try:
            await self._write(b"\xe0\x00")
        except Exception:
            pass
        self._close()
