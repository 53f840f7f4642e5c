# The runtime a board app sees (docs/architecture.md "Firmware component API"):
# identity, the journaled event outbox, non-journaled publishes, subscriptions,
# commands, clock, telemetry providers, the watchdog rule.
import gc
import time

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from cartfw import proto
from cartfw import journal as jmod
from cartfw.mqtt import MQTTClient
from cartfw import telemetry
from cartfw import safemode
from cartfw.clock import Clock

EPOCH_PATH = "state/epoch"
INST_PATH = "state/inst"
FEED_MS = 1000  # watchdog check period
TICK_MS = 200  # loop heartbeat


def log(msg):
    print(msg)


def board_instance():
    """This board's instance id: 16 hex digits from os.urandom, minted at the first boot
    of a fresh flash and kept in state/inst (protocol §5)."""
    try:
        with open(INST_PATH) as f:
            inst = f.read().strip()
        if len(inst) == 16 and not inst.strip("0123456789abcdef"):
            return inst
    except OSError:
        pass
    import os
    import binascii
    inst = binascii.hexlify(os.urandom(8)).decode()
    # A flash that refuses the write (read-only, full) keeps this id for this boot only;
    # safemode._write records the fault, which Runtime reports (issue 11 §10).
    safemode._write(INST_PATH, inst.encode())
    return inst


class Runtime:
    def __init__(self, cfg, hal, mode="normal", reason=None, raw_cfg=None, reset_cause=None):
        self.cfg = cfg
        self.raw_cfg = raw_cfg
        self.hal = hal
        self.mode = mode
        self.reason = reason
        self.cart = cfg["cart"]
        self.board = cfg["board"]
        self.log = log
        self._mono_last = time.ticks_ms()  # at boot, then at the last mono() call
        self._mono_ms = 0  # ms since boot, a Python int that never wraps
        self.wall = Clock()
        self.heap = telemetry.Heap()
        self.tele_providers = []
        self.reset_cause = reset_cause or hal.reset_cause()
        self._subs = {}  # topic -> cb
        self._wake = asyncio.Event()  # the publisher has work
        self._tick_ms = time.ticks_ms()
        self._pump_ms = time.ticks_ms()
        self._full = False  # inside a journal-full episode
        # Flash faults (read-only, full, I/O error; issue 11 §10): counted,
        # reported once per episode as an `error` event sent directly (the
        # journal is what failed) and in telemetry; never a crash.
        self.flash_errors = 0
        self.flash_fault = None
        self._fault_report = None  # the error event waiting to be sent
        self._journal_errors_seen = 0
        self.fatal = None
        self.seq = 0
        # Boot epoch: incremented and written (atomically) before anything is
        # published or journaled in this boot (protocol §3, §5).
        self.epoch = jmod.read_int(EPOCH_PATH, 0) + 1
        # Instance id (§5): a full flash or a new board starts the epoch at 1 again; the
        # random id it mints tells its events from the old board's.
        self.inst = board_instance()
        proto.INSTANCE = self.inst
        # (in place if a full flash has no room for the temp file)
        if not safemode._write(EPOCH_PATH, b"%d\n" % self.epoch) or safemode.fault is not None:
            self._flash_failed(*safemode.fault)  # epoch, instance id or boot counter not written
        j = cfg["journal"]
        self.journal = jmod.Journal("journal", j["max_bytes"], j["segment_bytes"])
        if self.journal.torn:
            log("journal: dropped a torn last record (power cut mid-write)")
        self.evt_topic = proto.topic(self.cart, self.board, "evt")
        self.mqtt = self._make_client()
        from cartfw.commands import Commands
        self.commands = Commands(self)
        self.subscribe(proto.topic(self.cart, self.board, "cmd"), self.commands.on_message)

    def _make_client(self):
        b = self.cfg["broker"]
        ctx = self.hal.ssl_context(self.cfg) if b["tls"] else None
        c = MQTTClient(proto.client_id(self.cart, self.board), b["host"], b["port"],
                       user=b["user"], password=b["password"], keepalive=b["keepalive_s"],
                       ssl=ctx, clean_session=False, ack_ms=b["ack_ms"],
                       backoff_max_ms=self.cfg["backoff_max_s"] * 1000,
                       net_up=self._net_up, log=log)
        c.set_last_will(proto.topic(self.cart, self.board, "status"),
                        proto.encode_status(self.cart, self.board, self.epoch, self.clock(),
                                            False, self.mode, self.reason), True, 1)
        c.on_message = self._on_message
        c.on_connect = self._on_connect
        return c

    async def _net_up(self):
        await self.hal.net_up(self.cfg)

    # ---- API for board apps
    def mono(self):
        # ms since boot, widening. ticks_ms wraps (at 2^30 ms on 32-bit ports,
        # where ticks_diff from boot turns negative after ~6.2 days); adding
        # up the diffs between calls never does, as long as calls come less
        # than 2^29 ms apart: the watchdog loop calls this every second.
        # Past 2^30 ms (12.4 days) the sum is a big int on those ports.
        t = time.ticks_ms()
        self._mono_ms += time.ticks_diff(t, self._mono_last)
        self._mono_last = t
        return self._mono_ms

    def clock(self):
        # (mono_ms, wall_ms or None, synced): wall time only from an NTP
        # sync (protocol §3), on every board family including sim.
        return self.wall.now(self.mono())

    def event(self, typ, fields):
        """Journal an event and queue it for QoS 1 publish. Synchronous.
        Returns its seq, or None when the journal is full (counted)."""
        seq = self.seq + 1
        payload = proto.encode_event(self.cart, self.board, self.epoch, seq, typ, fields, self.clock())
        try:
            self.journal.append(payload)
        except OSError as e:
            self._journal_errors_seen = self.journal.errors  # this one, counted here
            self._flash_failed("journal", e)
            return None
        except jmod.JournalFull:
            if not self._full:
                self._full = True
                log("journal: full, refusing new events")
                seq2 = self.seq + 1
                p = proto.encode_error(self.cart, self.board, self.epoch, seq2, "journal_full",
                                       "journal at %d bytes; new events refused" % self.journal.total,
                                       self.clock())
                try:
                    self.journal.append(p, reserve_ok=True)
                    self.seq = seq2
                except (jmod.JournalFull, OSError):
                    pass
                self._wake.set()
            return None
        self._full = False
        self.flash_fault = None  # the flash took a write again: the episode is over
        self.seq = seq
        self._wake.set()
        return seq

    def _flash_failed(self, where, exc, n=1):
        self.flash_errors += n
        try:
            from cartfw import flashfault  # loaded on the first fault only
            flashfault.report(self, where, exc)
        except MemoryError:
            self.flash_fault = where

    async def publish(self, suffix, payload, qos=0, retain=False):
        if isinstance(payload, str):
            payload = payload.encode()
        return await self.mqtt.publish(proto.topic(self.cart, self.board, suffix),
                                       payload, retain=retain, qos=qos)

    async def publish_frame_chunk(self, buf, timeout_ms=5000):
        return await self.mqtt.publish(proto.topic(self.cart, "cam", "frame"), buf,
                                       qos=1, timeout_ms=timeout_ms)

    def subscribe(self, topic, cb):
        self._subs[topic] = cb
        self.mqtt.subscribe(topic, 1)

    def command(self, name, handler):
        self.commands.register(name, handler)

    def tele_provider(self, fn):
        self.tele_providers.append(fn)

    def encode_tele(self, fields):
        return proto.encode_tele(self.cart, self.board, self.epoch, self.clock(), fields)

    # ---- MQTT plumbing
    def _on_message(self, topic, msg):
        cb = self._subs.get(topic)
        if cb is None:
            return
        cb(topic, msg)

    async def _on_connect(self):
        # Birth (retained), then let the publisher replay the journal.
        st = proto.encode_status(self.cart, self.board, self.epoch, self.clock(), True,
                                 self.mode, self.reason)
        await self.mqtt.publish(proto.topic(self.cart, self.board, "status"), st, retain=True, qos=1)
        self.journal.rewind()
        self._wake.set()

    async def _pump(self):
        # The outbox publisher: one event in flight, in journal order; the
        # cursor moves on PUBACK. After a lost connection the same record is
        # sent again (maybe with a new packet id, same identity: protocol §5).
        j = self.journal
        while True:
            self._pump_ms = time.ticks_ms()
            if not self.mqtt.isconnected():
                await asyncio.sleep_ms(100)
                continue
            if j.errors != self._journal_errors_seen:  # e.g. the cursor could not be written
                n = j.errors - self._journal_errors_seen
                self._journal_errors_seen = j.errors
                self._flash_failed("journal " + j.fault[0], j.fault[1], n)
            if self._fault_report is not None:
                if await self.mqtt.publish(self.evt_topic, self._fault_report, qos=1):
                    self._fault_report = None
                continue
            r = j.peek()
            if r is None:
                j.flush()
                self._wake.clear()
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), 1000)
                except asyncio.TimeoutError:
                    pass
                continue
            pos, payload = r
            if await self.mqtt.publish(self.evt_topic, payload, qos=1):
                j.ack(pos)
            else:
                j.rewind()
                await asyncio.sleep_ms(100)

    # ---- health and the watchdog
    def healthy(self):
        """The watchdog rule: feed only if the loop ticked recently, the
        publisher is alive, and the MQTT client is healthy (connected and
        hearing the broker, or on schedule in connect/backoff: a dead broker
        must not reboot the board)."""
        now = time.ticks_ms()
        if self.fatal is not None:
            return False
        if time.ticks_diff(now, self._tick_ms) > 5 * TICK_MS + FEED_MS:
            return False
        if self.mqtt.isconnected() and time.ticks_diff(now, self._pump_ms) > 20000:
            # connected but the publisher is stuck (each publish wait is
            # bounded by ack_ms * (max_retrans + 1) = 15 s by default)
            return False
        return self.mqtt.healthy()

    async def _ticker(self):
        while True:
            self._tick_ms = time.ticks_ms()
            await asyncio.sleep_ms(TICK_MS)

    async def _watchdog(self):
        wdt = self.hal.WDT(self.cfg["wdt_ms"])
        stable_done = False
        while True:
            self.heap.sample()
            if self.healthy():
                wdt.feed()
            else:
                log("wdt: unhealthy, not feeding")
            # self.mono() here also keeps the widening counter fed every second
            if self.mono() >= self.cfg["stable_s"] * 1000 and not stable_done:
                stable_done = True
                if self.mode == "normal":
                    safemode.stable()
            await asyncio.sleep_ms(FEED_MS)

    def reset(self, cause):
        try:
            self.journal.flush()
        except Exception:
            pass
        safemode.note_reset(cause)
        self.hal.reset(cause)

    def crash(self, exc):
        # A task died: record why, journal an error event, reset soon.
        text = "%s: %s" % (type(exc).__name__, exc)
        log("runtime: fatal: %s" % text)
        if self.fatal is not None:
            return
        self.fatal = text
        try:
            safemode.note_error(text)
            self.event("error", {"code": "crash", "detail": text[:200]})
        except Exception:
            pass
        asyncio.create_task(self._crash_reset())

    async def _crash_reset(self):
        await asyncio.sleep_ms(1000)  # a moment for the error event to leave
        self.reset("crash")

    def start(self):
        # Background tasks of the runtime itself.
        self.hal.hello(self.board, self.cart)
        for coro in self.hal.tasks():
            asyncio.create_task(coro)
        asyncio.create_task(self._ticker())
        asyncio.create_task(self._watchdog())
        asyncio.create_task(self.mqtt.run())
        asyncio.create_task(self._pump())
        asyncio.create_task(telemetry.run(self))
        n = self.cfg.get("ntp")
        if n and n["enabled"]:
            from cartfw import ntp
            asyncio.create_task(ntp.run(self.wall, n["host"] or self.cfg["broker"]["host"], n["port"],
                                        self.mono, log, n["period_s"] * 1000, n["timeout_ms"]))
        gc.collect()
