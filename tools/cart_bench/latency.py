"""Weight event published -> retained basket received (no inference), p50/p99, and the
handler's own time per weight event (in-process, incl. the SQLite commit)."""
from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

from cart_gateway.config import parse_config
from cart_gateway.service import Gateway

from .env import Env, client, pct
from .stream import N_CARTS, shop
from .testkit import Board


def bench_latency(n: int = 300, settle_ms: int = 300, sync: str = "FULL") -> dict:
    """`settle_ms`: pause between a movement's `unsettled` and its `weight` event. The scale sends
    `weight` only after the item is down and the load has been quiet for hold_ms (150 ms,
    firmware/lib/cartfw/scale/pipeline.py), so 300 ms is a quick placement; 0 sends them back to
    back, and the weight event then also waits for the `unsettled` event's commit (one more fsync)."""
    carts = [f"c{i:03d}" for i in range(N_CARTS)]
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d), carts=carts, sync=sync)
        try:
            env.start_gateway()
            env.wait_online()
            got: dict[tuple[str, int], float] = {}
            ev = threading.Event()
            truth: dict[str, str] = {}
            pub = client(env.port, "bench-pub")

            def on_msg(c, u, m):
                if m.topic.endswith("/basket"):
                    b = json.loads(m.payload)
                    got.setdefault((b["cart"], len(b["lines"]) + sum(ln["qty"] - 1 for ln in b["lines"])),
                                   time.perf_counter())
                    ev.set()
                elif m.topic.endswith("/screen/prompt"):   # the shopper answers truthfully
                    p = json.loads(m.payload)
                    cart = m.topic.split("/")[1]
                    pub.publish(f"carts/{cart}/screen/answer",
                                json.dumps({"v": 1, "prompt_id": p["prompt_id"], "answer_id": "a-" + p["prompt_id"],
                                            "choice": {"sku": truth[p["prompt_id"].rsplit("-p", 1)[0]]}}), qos=1)
            sub = client(env.port, "bench-sub", on_msg)
            sub.subscribe([("carts/+/basket", 1), ("carts/+/screen/prompt", 1)])
            time.sleep(0.5)
            boards = {c: Board(c) for c in carts}
            items = {c: 0 for c in carts}
            lat = []
            for ci, sku, delta in shop(n):
                cart = carts[ci]
                b = boards[cart]
                truth[cart] = sku
                pub.publish(b.topic, b.unsettled(), qos=1).wait_for_publish(5)
                time.sleep(settle_ms / 1000.0)
                w = b.weight(delta, unsettled_seq=b.seq)
                items[cart] += 1
                key = (cart, items[cart])
                ev.clear()
                t0 = time.perf_counter()
                pub.publish(b.topic, w, qos=1)
                deadline = t0 + 5
                while key not in got and time.perf_counter() < deadline:
                    ev.wait(0.2)
                    ev.clear()
                if key in got:
                    lat.append((got[key] - t0) * 1000)
                time.sleep(0.1)   # a shopper does not add items faster than this
            sub.loop_stop(); pub.loop_stop()
        finally:
            env.stop()
    handler = _handler_latency(n, sync)
    res = {"bench": "latency", "events": n, "carts": N_CARTS, "received": len(lat), "settle_ms": settle_ms,
           "sqlite_synchronous": sync,
           "mqtt_p50_ms": round(pct(lat, 50), 2), "mqtt_p99_ms": round(pct(lat, 99), 2),
           "mqtt_max_ms": round(max(lat), 2) if lat else None, **handler}
    print(f"weight event -> basket via Mosquitto: p50 {res['mqtt_p50_ms']} ms, p99 {res['mqtt_p99_ms']} ms "
          f"({len(lat)}/{n}); handler+commit p50 {handler['handler_p50_ms']} ms, p99 {handler['handler_p99_ms']} ms")
    return res


def _handler_latency(n: int, sync: str = "FULL") -> dict:
    """The handler alone, in-process: weight event in -> basket publish out, incl. the SQLite commit."""
    carts = [f"c{i:03d}" for i in range(N_CARTS)]
    with tempfile.TemporaryDirectory() as d:
        # the handler's own cost: the merge hold (issue 12) is policy time, which cart-sim bench's
        # decision latency reports
        cfg = parse_config({"state_dir": d, "carts": {"known": carts}, "detector": {"enabled": False},
                            "sqlite_synchronous": sync, "reconcile": {"merge_gap_ms": 0}})
        gw = Gateway(cfg)
        boards = {c: Board(c) for c in carts}
        t, xs = 1_700_000_000_000, []

        truth: dict[str, str] = {}

        def step(fn, *a):
            gw.store.begin()
            out = fn(*a)
            gw.store.commit()
            for p in out:   # the shopper answers every prompt truthfully
                if p.topic.endswith("/screen/prompt"):
                    pr = json.loads(p.payload)
                    cart = p.topic.split("/")[1]
                    ans = {"v": 1, "prompt_id": pr["prompt_id"], "answer_id": "a" + pr["prompt_id"],
                           "choice": {"sku": truth[cart]}}
                    step(gw.handle, f"carts/{cart}/screen/answer", json.dumps(ans).encode(), t)
            return out
        for ci, sku, delta in shop(n):
            b = boards[carts[ci]]
            t += 100
            b.mono = t - 1_600_000_000_000        # the board's clock runs with the gateway's
            step(gw.handle, b.topic, b.unsettled(dt_ms=0), t)
            truth[b.cart] = sku
            t += 300
            t0 = time.perf_counter()
            gw.store.begin()
            out = gw.handle(b.topic, b.weight(delta, dt_ms=300, unsettled_seq=b.seq), t)
            gw.store.commit()
            xs.append((time.perf_counter() - t0) * 1000)
            assert any(p.topic.endswith("/basket") for p in out)
            t += 2000   # the vision wait runs out on the timer
            step(gw.tick, t)
        accepted = sum(len(rt.engine.s["lines"]) for rt in gw.carts.values())
        gw.store.close()
    return {"handler_p50_ms": round(pct(xs, 50), 3), "handler_p99_ms": round(pct(xs, 99), 3),
            "handler_accepted_lines": accepted}

