"""The live service: paho-mqtt (v2 API, MQTT 5) as an adapter around service.Gateway.

Threads: paho's network thread only queues what arrives; the core thread
(the caller of `run()`) owns SQLite and the reconcilers: it takes a batch of
messages, handles each, commits once (group commit), then acknowledges them
(`manual_ack`) and publishes the outputs. A message is acknowledged only
after what it changed is committed, so after a kill -9 the broker redelivers
it and the event log drops it if it was already stored. Inference runs on
the detector thread (vision.DetectorWorker).

Frame chunks are acknowledged after they are handled (assembled in memory,
complete frames written to disk and indexed in the same commit): a chunk
alone changes no durable state, and holding their PUBACKs would stall the
broker's in-flight window while a 64-chunk frame is still arriving.
"""
from __future__ import annotations

import errno
import logging
import socket
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .config import GatewayConfig
from .ingest import FairQueue, source_of
from .logs import event
from .notify import sd_notify, watchdog_interval_s
from .service import VERSION, BatchFailed, Gateway, dumps

INFO, WARN = logging.INFO, logging.WARNING


def _nodelay(client, userdata, sock) -> None:
    """No Nagle delay: a basket update is one small packet that should leave now."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass   # not a TCP socket (e.g. websockets wrapper)


def subscriptions(gw: str) -> list[str]:
    return ["carts/+/+/evt", "carts/+/cam/frame", "carts/+/+/status", "carts/+/+/tele",
            "carts/+/screen/answer", "carts/+/checkout", f"gateway/{gw}/review/verdict",
            f"gateway/{gw}/fleet/in/ack"]   # the ledger's acknowledgements (docs/fleet.md)


def describe_connect_error(e: BaseException | None) -> str:
    """Why a connect failed, in the words a store engineer searches for."""
    if isinstance(e, socket.gaierror):
        return f"DNS failure: the host name does not resolve ({e.strerror})"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS error: the broker's certificate is not trusted ({e.verify_message})"
    if isinstance(e, ssl.SSLError):
        return f"TLS error: {e.reason or e} (is this the broker's TLS port, and the store's CA?)"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (nothing listens on that port: is Mosquitto running, is the port right?)"
    if isinstance(e, TimeoutError):
        return "timed out (no answer: wrong address, or a firewall drops the packets)"
    if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to host ({e.strerror})"
    if isinstance(e, OSError):
        return e.strerror or str(e) or type(e).__name__
    return "unknown error" if e is None else f"{type(e).__name__}: {e}"


def describe_refusal(reason_code, username: str | None) -> str:
    """A CONNACK that refused us (MQTT 5 reason codes 0x86 / 0x87 are the credentials)."""
    if reason_code.value in (0x86, 0x87):   # bad user name or password / not authorized
        who = f"user {username}" if username else "no user name given"
        return f"bad credentials ({who}): broker says {reason_code}"
    return f"broker refused: {reason_code}"


class Runner:
    def __init__(self, cfg: GatewayConfig, gateway: Gateway | None = None, detector=None):
        self.cfg = cfg
        self.worker = None
        if detector is not None:
            from .vision import DetectorWorker
            self.worker = DetectorWorker(detector, cfg.detector.queue_size, self._vision_done)
        self.gw = gateway or Gateway(cfg, submit_burst=self.worker.submit if self.worker else None)
        if self.worker is not None:
            self.gw.submit_burst = self.worker.submit
            self.worker.metrics = self.gw.metrics
        self.metrics = self.gw.metrics
        # fair between carts, QoS 0 bounded per cart (issue 11.11)
        self.q = FairQueue(cfg.ingest.qos0_per_cart,
                           lambda cart: self.metrics.ingest_dropped.labels(cart).inc(), cfg.ingest.qos0_rate_per_cart)
        self.status_topic = f"gateway/{cfg.gateway_id}/status"
        self._stop = threading.Event()
        self._inflight: dict[int, int] = {}    # publish mid -> outbox id
        self._done_ids: list[int] = []
        self._ready = False
        self._first_connect = True
        self._started = False
        self.client = self._make_client()
        self.rollout = self._make_rollout() if cfg.rollout.public_keys else None

    def _make_rollout(self):
        """Model / catalogue updates (rollout.py): checked on its thread, swapped in on ours."""
        from .rollout import Rollout, SwapHooks

        def set_detector(det):
            if self.worker is not None:
                self.worker.det = det     # the detector thread takes it at its next burst

        def labels():
            d = self.worker.det.detector if self.worker is not None else None
            return d.labels[1:] if d is not None else None
        hooks = SwapHooks(set_detector, self.gw.swap_catalogue, labels, lambda: self.gw.catalogue,
                          self.gw.prepare_catalogue)
        return Rollout(self.cfg, lambda t, p: self.client.publish(t, p, qos=1, retain=True),
                       lambda result: self.q.put_internal(("rollout", result)), hooks)

    # ------------------------------------------------------------ paho side (network thread)
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        m = self.cfg.mqtt
        if m.username:
            c.username_pw_set(m.username, m.password)
        c.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        c.reconnect_delay_set(1, m.reconnect_max_s)
        c.max_queued_messages_set(0)
        c.on_socket_open = _nodelay
        c.on_connect_fail = self._on_connect_fail
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        return c

    def _status(self, state: str) -> bytes:
        return dumps({"v": 1, "gw": self.cfg.gateway_id, "state": state, "version": VERSION})

    def _connect_failed(self, reason: str) -> None:
        m = self.cfg.mqtt
        event(WARN, "mqtt_connect_failed", f"cannot connect to the MQTT broker at {m.host}:{m.port}: {reason}",
              broker=f"{m.host}:{m.port}")

    def _on_connect_fail(self, client, userdata):
        # paho calls this inside its `except OSError` around the connect: the error is current
        self._connect_failed(describe_connect_error(sys.exc_info()[1]))

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._connect_failed(describe_refusal(reason_code, self.cfg.mqtt.username))
            return
        topics = subscriptions(self.cfg.gateway_id) + (self.rollout.subscriptions() if self.rollout else [])
        client.subscribe([(t, mqtt.SubscribeOptions(qos=1)) for t in topics])
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        self.q.put_internal(("connected", flags.session_present))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.metrics.connected.set(0)
        event(WARN, "mqtt_disconnected", f"disconnected: {reason_code}")

    def _on_message(self, client, userdata, msg):
        topic = msg.topic
        self.q.put(source_of(topic, self.cfg.carts.accepts), msg.qos,
                   ("msg", msg.mid, msg.qos, topic, msg.payload, int(time.time() * 1000)))

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.q.put_internal(("puback", mid))

    def _vision_done(self, burst_id, frames, codes, seconds):
        self.metrics.inference_latency.observe(seconds)
        self.q.put_internal(("vision", burst_id, frames, codes))

    # ------------------------------------------------------------ core thread
    def start(self) -> None:
        """Connect (in the background), start the detector and /metrics; run() calls it if not yet done."""
        if self._started:
            return
        self._started = True
        self.metrics.serve(self.cfg.metrics_port, self.cfg.metrics_host)   # first: a taken port fails before connecting
        m = self.cfg.mqtt
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = m.session_expiry_s
        # a 64-chunk frame plus events must fit in flight without waiting for our acks
        props.ReceiveMaximum = 1000
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()
        if self.worker is not None:
            self.worker.start()
        if self.rollout is not None:
            self.rollout.start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """The main loop: until stop(); sends READY=1 once connected and WATCHDOG=1 at half the interval."""
        self.start()
        wd = watchdog_interval_s()
        next_wd = time.monotonic()
        tick_s = self.cfg.tick_ms / 1000.0
        next_tick = time.monotonic() + tick_s
        try:
            while not self._stop.is_set():
                timeout = max(0.0, min(next_tick, next_wd if wd else next_tick) - time.monotonic())
                batch = self._take(timeout)
                now = time.monotonic()
                tick = now >= next_tick
                # a due tick joins the batch's transaction: one commit (one fsync) per round, not two
                self._process(batch, int(time.time() * 1000) if tick else None)
                if tick:
                    if self.rollout is not None:
                        self.rollout.tick(int(time.time() * 1000))
                    next_tick = now + tick_s
                if wd and now >= next_wd:
                    sd_notify("WATCHDOG=1")
                    next_wd = now + wd
                self.metrics.ingest_queue.set(self.q.qsize())
                if self.worker is not None:
                    self.metrics.detector_queue.set(self.worker.depth())
        finally:
            self._shutdown()

    def _take(self, timeout: float) -> list:
        return self.q.take(timeout, self.cfg.batch_max)

    def _process(self, batch: list, tick_ms: int | None = None) -> None:
        if not batch and tick_ms is None:
            return
        store = self.gw.store
        acks, outs, work, rolled = [], [], [], []
        store.begin()
        for item in batch:
            kind = item[0]
            if kind == "msg":
                _, mid, qos, topic, payload, t_ms = item
                acks.append((mid, qos))
                if self.rollout is not None and topic.startswith("fleet/in/"):
                    self._rollout_msg(topic, payload, t_ms)    # no database change: not in the batch
                    continue
                work.append(("msg", topic, payload, t_ms))
            elif kind == "rollout":
                rolled.append(item[1])
            elif kind == "vision":
                _, burst_id, frames, codes = item
                work.append(("vision", burst_id, frames, codes, int(time.time() * 1000)))
            elif kind == "puback":
                oid = self._inflight.pop(item[1], None)
                if oid is not None:
                    self._done_ids.append(oid)
            elif kind == "connected":
                outs += self._connected(item[1])   # stored publishes: not part of the batch's changes
        if tick_ms is not None:
            work.append(("tick", tick_ms))      # after the messages: they may end a wait it decides
        if self._done_ids:
            store.outbox_done(self._done_ids)
        batch_outs: list = []
        try:
            batch_outs = self.gw.handle_batch(work)
            outs += batch_outs
        except BatchFailed as e:
            # one message failed beyond decoding: redo the batch one message per savepoint
            event(WARN, "batch_retry", f"batch of {len(work)} failed ({e}); handling one by one")
            store.rollback()
            self.gw.reload()
            store.begin()
            if self._done_ids:
                store.outbox_done(self._done_ids)
            outs = [p for p in outs if not any(p is q for q in batch_outs)]
            for it in work:
                if it[0] == "msg":
                    outs += self.gw.handle(it[1], it[2], it[3])
                elif it[0] == "tick":
                    outs += self.gw.tick(it[1])
                else:
                    outs += self.gw.apply_vision(it[1], it[2], it[3], it[4])
        self._done_ids = []
        self._commit_publish(acks, outs)
        for result in rolled:          # committed: the swap happens between batches
            self.rollout.apply(result)

    def _rollout_msg(self, topic: str, payload: bytes, t_ms: int) -> None:
        try:
            self.rollout.handle(topic, payload, t_ms)
        except Exception:      # a disk error must not stop the store's checkouts
            logging.getLogger("cart_gateway").exception("rollout message failed")

    def _connected(self, session_present: bool) -> list:
        self.metrics.connected.set(1)
        event(INFO, "mqtt_connected", "connected to the broker", session_present=session_present)
        outs = self.gw.republish() if self._first_connect else \
            [p for p in self.gw.republish() if p.retain]
        self._first_connect = False
        if not self._ready:
            self._ready = True
            sd_notify("READY=1\nSTATUS=connected")
        return outs

    def _commit_publish(self, acks: list, outs: list) -> None:
        store = self.gw.store
        t0 = time.perf_counter()
        store.begin()
        store.commit()
        self.metrics.commit_latency.observe(time.perf_counter() - t0)
        for mid, qos in acks:          # durable now: the broker may forget them
            if qos:
                self.client.ack(mid, qos)
        for p in outs:
            info = self.client.publish(p.topic, p.encoded(), qos=p.qos, retain=p.retain)
            if p.outbox_id is not None:
                self._inflight[info.mid] = p.outbox_id

    def _shutdown(self) -> None:
        try:
            info = self.client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
            info.wait_for_publish(2)
        except Exception:
            pass
        self.client.disconnect()
        self.client.loop_stop()
        if self.worker is not None:
            self.worker.stop()
        if self.rollout is not None:
            self.rollout.stop()
        self.gw.store.close()
