"""The measurements behind `cart-fleet bench` (docs/fleet.md §Figures).

1. Ledger throughput: n receipt records published on the central broker (TLS, the
   `cart-fleet central` ACL) by a separate publisher process, as fast as it can, to
   (a) a bare paho subscriber (the anchor: what the broker and this machine deliver),
   (b) one `cart-fleet consume` process, (c) two sharing one subscription.
   Rate = n / (publisher start -> last message received / stored in PostgreSQL).
2. Checkout -> ledger latency: the real gateway on a store broker bridged to the
   central broker; an exit gate checks out `latency_n` baskets at 10/s; latency =
   the ledger row's commit time (PostgreSQL clock_timestamp) - the checkout's send time.
Everything on loopback, throwaway brokers and cluster; all stopped at the end."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
port, ca, n, tag = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
users = json.loads(sys.argv[5])
sys.path[:0] = sys.argv[6].split(":")
from cart_testing.fleet import fleet_record
clients = []
for store, pw in users.items():
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"store-{store}")
    c.username_pw_set(f"store-{store}", pw)
    c.tls_set(ca_certs=ca)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    clients.append((store, c))
day = time.strftime("%Y-%m-%d", time.gmtime())
payloads = [(clients[i % len(clients)], fleet_record("gw1", "c001", f"{tag}-{i}", day, int(time.time() * 1000)))
            for i in range(n)]
print("go", flush=True)
infos = [c.publish(f"stores/{store}/out/receipt", p, qos=1) for (store, c), p in payloads]
for i in infos:
    i.wait_for_publish(60)
print("done", flush=True)
for _, c in clients:
    c.disconnect(); c.loop_stop()
"""


def _paths() -> str:
    from cart_testing.gateway import ROOT
    return f"{ROOT / 'tools'}:{ROOT / 'gateway'}"


def _publish(central, n: int, tag: str) -> float:
    """Start the publisher; returns the monotonic time it began publishing."""
    import json
    users = {s: central.users[f"store-{s}"] for s in ("s001", "s002", "s003", "s004")}
    p = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(central.port), str(central.ca), str(n), tag,
                          json.dumps(users), _paths()], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "go"
    t0 = time.monotonic()
    threading.Thread(target=p.wait, daemon=True).start()
    return t0


def _rows(dsn: str, tag: str) -> int:
    import psycopg
    with psycopg.connect(dsn) as db:
        return db.execute("SELECT count(*) FROM receipts WHERE receipt_id LIKE %s", (tag + "-%",)).fetchone()[0]


def _wait_rows(dsn: str, tag: str, n: int, timeout: float) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _rows(dsn, tag) >= n:
            return time.monotonic()
        time.sleep(0.02)
    raise RuntimeError(f"only {_rows(dsn, tag)} of {n} records stored in {timeout} s")


def _anchor(central, n: int) -> float:
    from cart_testing.peer import Peer
    got = threading.Event()
    count = [0]
    p = Peer(central.port, "ledger-2", central.users["ledger-2"], ca=str(central.ca), v5=True)

    def on_message(c, u, m):
        count[0] += 1
        if count[0] >= n:
            got.set()
    p.c.on_message = on_message
    p.connect()
    p.sub(["stores/+/out/receipt"])
    t0 = _publish(central, n, "anchor")
    if not got.wait(300):
        raise RuntimeError(f"the anchor got {count[0]} of {n}")
    t1 = time.monotonic()
    p.close()
    return n / (t1 - t0)


def throughput(n: int, tmp: Path) -> dict:
    from cart_fleet import ledger
    from cart_testing.fleet import CentralBroker, ConsumerProcess
    from cart_testing.postgres import PostgresCluster
    pg = PostgresCluster().start()
    central = CentralBroker(tmp, stores=("s001", "s002", "s003", "s004"), consumers=2).start()
    cons = [ConsumerProcess(tmp, central, pg.dsn, k) for k in (1, 2)]
    try:
        ledger.connect(pg.dsn).close()           # the schema, before any consumer
        res = {"n": n, "anchor_per_s": round(_anchor(central, n), 1)}
        for k in (1, 2):
            for c in cons[:k]:
                c.start()
            time.sleep(3)                         # connected and subscribed
            t0 = _publish(central, n, f"c{k}")
            t1 = _wait_rows(pg.dsn, f"c{k}", n, 600)
            res[f"consumers_{k}_per_s"] = round(n / (t1 - t0), 1)
            for c in cons[:k]:
                c.stop()
        for k in (1, 2):
            res[f"ratio_{k}_to_anchor"] = round(res[f"consumers_{k}_per_s"] / res["anchor_per_s"], 3)
        return res
    finally:
        for c in cons:
            c.stop()
        central.stop()
        pg.destroy()


def latency(n: int, tmp: Path) -> dict:
    import psycopg
    from cart_testing.fleet import FleetRig
    rig = FleetRig(tmp, consumers=2)
    try:
        rig.start_consumers()
        rig.start_gateway()
        sent = {}
        for i in range(n):
            req = f"lat-{i}"
            cart = rig.carts[i % len(rig.carts)]
            sent[req] = time.time()
            rig._exit_peer().pub(f"carts/{cart}/checkout", ('{"v":1,"req_id":"%s"}' % req).encode())
            time.sleep(0.1)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            with psycopg.connect(rig.pg.dsn) as db:
                rows = db.execute("SELECT record->'receipt'->>'req_id', extract(epoch from stored_at) "
                                  "FROM receipts").fetchall()
            if len(rows) >= n:
                break
            time.sleep(0.5)
        lat = sorted((float(t) - sent[q]) * 1000 for q, t in rows if q in sent)
        if len(lat) < n:
            raise RuntimeError(f"{len(lat)} of {n} checkouts reached the ledger")
        return {"latency_n": n, "checkout_to_ledger_p50_ms": round(statistics.median(lat), 1),
                "checkout_to_ledger_p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
                "checkout_to_ledger_max_ms": round(lat[-1], 1)}
    finally:
        rig.close()


def run_bench(n: int, latency_n: int = 200) -> dict:
    with tempfile.TemporaryDirectory(prefix="cart-fleet-bench-") as d:
        tmp = Path(d)
        (tmp / "t").mkdir()
        (tmp / "l").mkdir()
        res = throughput(n, tmp / "t")
        print(f"ledger: anchor (bare paho) {res['anchor_per_s']}/s, 1 consumer {res['consumers_1_per_s']}/s, "
              f"2 consumers {res['consumers_2_per_s']}/s", flush=True)
        res.update(latency(latency_n, tmp / "l"))
        print(f"checkout -> ledger: p50 {res['checkout_to_ledger_p50_ms']} ms, "
              f"p99 {res['checkout_to_ledger_p99_ms']} ms ({latency_n} checkouts)", flush=True)
        res["cpus"] = os.cpu_count()
        return res
