"""kill -9 the gateway under load and restart it: seconds until ingest resumes, events lost
and counted twice."""
from __future__ import annotations

import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from cart_gateway.store import Store

from .env import Env, client
from .testkit import Board


def stream_and_kill(env: Env, movements: int, rate: float, kills: int, kill_every_s: float) -> dict:
    """Publish `movements` per cart at `rate` events/s while killing the gateway (kill -9) `kills` times.

    Returns what was published, the recovery times and the counts found in the database.
    """
    boards = [Board("c001"), Board("c002")]
    msgs, deltas = [], {b.cart: 0.0 for b in boards}
    for i in range(movements):
        for b in boards:
            delta = round(60.0 + (i * 7.3) % 900, 1)
            deltas[b.cart] = round(deltas[b.cart] + delta, 1)
            msgs += b.movement(delta)
    pub = client(env.port, "cart-bench-pub")
    stop = threading.Event()
    # kill k falls at the k-th of kills+1 equal parts of the stream: the publisher waits there
    # until that kill is done (then streams on while the gateway restarts), so every kill lands
    # mid-stream however long a restart takes on a loaded machine
    marks = {len(msgs) * (k + 1) // (kills + 1): k for k in range(kills)}
    reached = [threading.Event() for _ in range(kills)]
    killed = [threading.Event() for _ in range(kills)]

    def publish():
        gap = 1.0 / rate
        nxt = time.perf_counter()
        for i, (t, p) in enumerate(msgs):
            if i in marks:
                reached[marks[i]].set()
                killed[marks[i]].wait(120)
                nxt = time.perf_counter()
            pub.publish(t, p, qos=1)
            nxt += gap
            d = nxt - time.perf_counter()
            if d > 0:
                time.sleep(d)
        stop.set()
    th = threading.Thread(target=publish)
    th.start()
    recoveries = []
    for k in range(kills):
        time.sleep(kill_every_s)
        reached[k].wait(120)
        env.kill9()
        killed[k].set()
        t_restart = time.perf_counter()
        env.start_gateway()
        # ingest resumed: the new process handled its first message
        while time.perf_counter() - t_restart < 30:
            if env.metrics().get("cart_gateway_messages_total", 0) > 0:
                recoveries.append(time.perf_counter() - t_restart)
                break
            time.sleep(0.01)
    th.join()
    pub.loop_stop()
    # let the gateway drain the broker's queue and decide the last movements
    expect = len(msgs)
    deadline = time.time() + 60
    stored = 0
    while time.time() < deadline:
        with env.db() as db:
            try:
                stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
        if stored >= expect:
            break
        time.sleep(0.2)
    time.sleep(2.5)   # the 1.5 s vision wait of the last movement, on the timer
    env.stop()
    with env.db() as db:
        stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    st = Store(env.tmp / "state" / "gateway.sqlite3")
    rows = [(r[0], r[3]) for r in st.load_carts()]
    st.close()
    baskets = {}
    for cart, s in rows:
        lines = [ln["weight_g"] for ln in s["lines"]]
        lines += [m["delta_g"] for m in s["moves"].values() if m["state"] != "done" and m["delta_g"] > 0]
        weights_moves = sorted(m["delta_g"] for m in (*s["moves"].values(), *s.get("done", {}).values()))
        baskets[cart] = {"weight_g": round(sum(lines), 1), "moves_seen": s["n"]["move"],
                         "moves_kept": len(weights_moves)}
    lost = max(0, expect - stored)
    twice = {c: baskets[c]["moves_seen"] - movements for c in baskets}
    return {"published": expect, "stored": stored, "lost": lost, 
            "recoveries_s": [round(r, 3) for r in recoveries], "kills": len(recoveries),
            "truth_weight_g": deltas, "basket": baskets, "moves_counted_twice": twice}


def bench_recovery(movements: int = 400, rate: float = 400.0, kills: int = 4) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d))
        env.start_gateway()
        env.wait_online()
        r = stream_and_kill(env, movements, rate, kills, kill_every_s=0.8)
    res = {"bench": "recovery", "rate_events_per_s": rate, **r,
           "recovery_p50_s": round(statistics.median(r["recoveries_s"]), 3) if r["recoveries_s"] else None,
           "recovery_max_s": max(r["recoveries_s"]) if r["recoveries_s"] else None}
    print(f"recovery after kill -9 x{r['kills']}: resumes in {res['recovery_p50_s']} s (max {res['recovery_max_s']}), "
          f"lost {r['lost']}, movements over truth (counted twice) {r['moves_counted_twice']}")
    return res

