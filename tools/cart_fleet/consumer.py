"""`cart-fleet consume`: receipts, figures and health from every store into PostgreSQL.

Several consumers share the load through one MQTT v5 shared subscription
(`$share/<group>/stores/+/out/receipt`): the broker hands each message to one
member of the group. Exactly once per receipt id comes from two halves:
- nothing is acknowledged before it is committed: paho's manual acks (QoS 1),
  so a consumer killed between receive and commit leaves the message unacked
  and the broker delivers it again (to the same persistent session on
  reconnect: client id and session expiry fixed);
- a copy delivered twice is a no-op in the ledger (`ledger.INSERT_RECEIPT`).
After the commit it tells each store's gateway which receipt ids it stored
(`stores/<store>/in/ack`, bridged to `gateway/<gw>/fleet/in/ack`): the gateway
sends again what the link lost (gateway/cart_gateway/fleet.py).
While PostgreSQL is down the batch is retried and nothing is acked, so the
broker stops sending once `receive_maximum` messages are in flight: the
backlog waits on the broker, not in this process.
"""
from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cart_fleet import ledger, topics
from cart_fleet.errors import FleetError
from cart_fleet.records import Figures, RecordError, ReceiptRecord, parse_health

log = logging.getLogger("cart_fleet.consumer")
KINDS = (topics.Out.RECEIPT, topics.Out.FIGURES, topics.Out.HEALTH)


@dataclass
class ConsumerConfig:
    host: str
    port: int
    dsn: str
    client_id: str = "ledger-1"
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    group: str = "ledger"
    batch_max: int = 256
    batch_wait_s: float = 0.02
    receive_maximum: int = 1000     # messages in flight to this consumer before the broker waits
    session_expiry_s: int = 86400   # an unacked message waits this long for a killed consumer to return


@dataclass
class Stats:
    received: int = 0
    stored: int = 0        # messages committed (any kind), then acked
    receipts: int = 0
    refused: int = 0       # did not parse: acked and logged, never stored
    db_retries: int = 0
    by_store: dict = field(default_factory=dict)


@dataclass
class _Msg:
    topic: str
    payload: bytes
    mid: int
    gen: int     # connection generation: a mid means nothing after a reconnect


def subscriptions(group: str) -> list[str]:
    return [f"$share/{group}/{topics.central_out('+', k)}" for k in KINDS]


class Consumer:
    def __init__(self, cfg: ConsumerConfig):
        self.cfg = cfg
        self.stats = Stats()
        self._q: queue.Queue[_Msg] = queue.Queue()
        self._gen = 0
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.db = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password)
        if cfg.ca:
            c.tls_set(ca_certs=cfg.ca)
        c.reconnect_delay_set(0.2, 5)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.mqtt = c

    # -------------------------------------------------------------- MQTT side
    def _on_connect(self, c, _u, _f, rc, _p):
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        c.subscribe([(t, 1) for t in subscriptions(self.cfg.group)])
        self.connected.set()

    def _on_disconnect(self, c, _u, _f, rc, _p):
        self._gen += 1      # what is queued from the old connection will be redelivered
        self.connected.clear()

    def _on_message(self, c, _u, m):
        self.stats.received += 1
        self._q.put(_Msg(m.topic, bytes(m.payload), m.mid, self._gen))

    def start(self) -> "Consumer":
        self.db = self._db()
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = self.cfg.session_expiry_s
        p.ReceiveMaximum = self.cfg.receive_maximum
        try:
            self.mqtt.connect(self.cfg.host, self.cfg.port, keepalive=15, clean_start=False, properties=p)
        except OSError as e:
            raise FleetError(f"cannot reach the central broker {self.cfg.host}:{self.cfg.port}: {e}") from None
        self.mqtt.loop_start()
        self._worker = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(10)
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        if self.db is not None:
            self.db.close()

    # -------------------------------------------------------------- database side
    def _db(self):
        return ledger.connect(self.cfg.dsn)

    def _take(self) -> list[_Msg]:
        try:
            batch = [self._q.get(timeout=0.2)]
        except queue.Empty:
            return []
        end = time.monotonic() + self.cfg.batch_wait_s
        while len(batch) < self.cfg.batch_max:
            left = end - time.monotonic()
            try:
                batch.append(self._q.get(timeout=max(0.0, left)) if left > 0 else self._q.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if batch:
                self._store(batch)

    def _store(self, batch: list[_Msg]) -> None:
        receipts, figures, health = [], [], []
        good: list[_Msg] = []
        for m in batch:
            try:
                store = topics.store_of(m.topic)
                kind = m.topic.rsplit("/", 1)[1]
                if kind == topics.Out.RECEIPT.value:
                    receipts.append((store, ReceiptRecord.parse(m.payload)))
                elif kind == topics.Out.FIGURES.value:
                    figures.append((store, Figures.parse(m.payload)))
                elif kind == topics.Out.HEALTH.value:
                    health.append((store, *parse_health(m.payload)))
                else:
                    raise RecordError(f"topic {m.topic!r} is not one this consumer stores")
                good.append(m)
            except (RecordError, ValueError) as e:
                self.stats.refused += 1
                log.warning("refused %s: %s", m.topic, e)
        while not self._stop.is_set():
            try:
                if self.db is None or self.db.closed:
                    self.db = self._db()
                ledger.store_batch(self.db, receipts, figures, health)
                break
            except Exception as e:  # PostgreSQL down or restarted: keep the batch, ack nothing, retry
                self.stats.db_retries += 1
                log.warning("ledger write failed (%s); retrying", str(e).strip()[:200])
                try:
                    if self.db is not None:
                        self.db.close()
                except Exception:
                    pass
                self.db = None
                time.sleep(0.5)
        else:
            return   # stopping: unacked, the broker redelivers
        self.stats.stored += len(good)
        self.stats.receipts += len(receipts)
        committed: dict[str, list[str]] = {s: [] for s, _ in figures}   # a figures batch: an empty ack, a heartbeat
        for store, r in receipts:
            self.stats.by_store[store] = self.stats.by_store.get(store, 0) + 1
            committed.setdefault(store, []).append(r.receipt_id)
        for store, ids in committed.items():    # end to end: the gateway forgets what is acked here
            self.mqtt.publish(topics.central_in(store, topics.In.ACK),
                              json.dumps({"v": 1, "receipts": ids}, separators=(",", ":")), qos=1)
        for m in batch:           # refused ones too: they would only come back
            if m.gen == self._gen:
                self.mqtt.ack(m.mid, 1)


# ------------------------------------------------------------------ CLI
def _hostport(v: str) -> tuple[str, int]:
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{v!r}: expected HOST:PORT")
    return host, int(port)


def cmd_consume(a: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    password = open(a.password_file).read().strip() if a.password_file else None
    cfg = ConsumerConfig(a.broker[0], a.broker[1], a.db, client_id=a.client_id, username=a.user,
                         password=password, ca=a.ca, group=a.group)
    c = Consumer(cfg).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    c.stop()
    log.info("stopped: %s", c.stats)
    return 0


def register(sub) -> None:
    p = sub.add_parser("consume", help="store every store's receipts, figures and health in PostgreSQL")
    p.add_argument("--broker", type=_hostport, required=True, help="central broker HOST:PORT")
    p.add_argument("--db", required=True, help="PostgreSQL conninfo, e.g. 'host=db dbname=ledger user=ledger'")
    p.add_argument("--client-id", default="ledger-1",
                   help="fixed per consumer process: its session (unacked messages) survives a restart")
    p.add_argument("--group", default="ledger", help="shared-subscription group: consumers in it split the load")
    p.add_argument("--user", help="MQTT user (default: none)")
    p.add_argument("--password-file", help="file holding the MQTT password")
    p.add_argument("--ca", help="CA file of the central broker's TLS certificate")
    p.set_defaults(fn=cmd_consume)
