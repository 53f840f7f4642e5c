"""Gateway benchmarks: `python -m cart_gateway.bench {latency,ingest,handler,frames,recovery}`.

Each starts a private Mosquitto on a free loopback port and the gateway as a
subprocess (`cart-gateway run`), prints figures and ends with one JSON line.
Measurements, not pass/fail.

- latency: weight event published -> retained basket received (no inference), p50/p99,
  plus the handler's own time per weight event (in-process, incl. SQLite commit).
- ingest: weight events/s the gateway stores, side by side with a bare paho
  subscriber receiving the same stream in the same run; the ratio.
- handler: the ingest stream through the handlers in-process (no broker): the gateway's own cost.
- frames: frames/s through reassembly + detection + barcode reading.
- recovery: kill -9 the gateway under load and restart it; seconds until
  ingest resumes, events lost and counted twice.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

from .testkit import Board, frame_chunks

MOSQUITTO = "/usr/sbin/mosquitto"
PKG_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Env:
    """A private broker and a gateway subprocess in a temporary directory."""

    def __init__(self, tmp: Path, detector: bool = False, carts=("c001", "c002"), port: int | None = None,
                 sync: str = "FULL"):
        """`port`: use that (already running) broker instead of starting one; `sync`: sqlite_synchronous."""
        self.tmp = tmp
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.broker = None
        if port is None:
            conf = tmp / "mosquitto.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                            "max_inflight_messages 0\nmax_queued_messages 1000000\nset_tcp_nodelay true\n")
            self.broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
        self._wait_port(self.port)
        self.config = tmp / "gw.toml"
        self.config.write_text("\n".join([
            'gateway_id = "gw1"', f'state_dir = "{tmp / "state"}"', f"metrics_port = {self.metrics_port}",
            'log_level = "warning"', "batch_max = 500", f'sqlite_synchronous = "{sync}"',
            "[mqtt]", f"port = {self.port}", "[carts]", f"known = {json.dumps(list(carts))}",
            "[detector]", f"enabled = {'true' if detector else 'false'}", "queue_size = 64",
            "[frames]", "max_in_progress = 64",
            # synthetic boards send a movement every 100 ms: one weight event is one movement here
            # (the engine merges settles of one action otherwise, issue 12)
            "[reconcile]", "merge_gap_ms = 0"]) + "\n")
        self.gw: subprocess.Popen | None = None

    @staticmethod
    def _wait_port(port: int, timeout: float = 10.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listening on port {port}")

    def start_gateway(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(PKG_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.gw = subprocess.Popen([sys.executable, "-m", "cart_gateway.cli", "run", "--config", str(self.config)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "gw.log", "ab"))

    def wait_online(self, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.metrics()
            if m.get("cart_gateway_mqtt_connected") == 1.0:
                return
            time.sleep(0.1)
        raise RuntimeError("gateway did not connect; see " + str(self.tmp / "gw.log"))

    def metrics(self) -> dict[str, float]:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = out.get(k, 0.0) + float(v)
                base = k.split("{")[0]
                if "{" in k:
                    out[base] = out.get(base, 0.0) + float(v)
        return out

    def stop_gateway(self) -> None:
        """A clean stop (SIGTERM): the broker keeps the gateway's session and queues for it."""
        if self.gw and self.gw.poll() is None:
            self.gw.terminate()
            self.gw.wait(30)

    def kill9(self) -> None:
        if self.gw and self.gw.poll() is None:
            self.gw.send_signal(signal.SIGKILL)
            self.gw.wait()

    def stop(self) -> None:
        if self.gw and self.gw.poll() is None:
            self.gw.terminate()
            try:
                self.gw.wait(10)
            except subprocess.TimeoutExpired:
                self.gw.kill()
                self.gw.wait()
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            self.broker.wait()
            self.broker = None

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.tmp / "state" / "gateway.sqlite3"))


def client(port: int, cid: str, on_message=None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    c.max_inflight_messages_set(1000)
    from .mqtt_client import _nodelay
    c.on_socket_open = _nodelay
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


# ------------------------------------------------------------------ latency
N_CARTS = 20   # movements spread over a store's carts: ~15 items per basket, as in a real shop


def _shop(n: int, seed: int = 7):
    """n movements (cart index, sku, delta_g): packaged SKUs at their catalogue weight."""
    import random
    from .catalogue import Catalogue
    rnd = random.Random(seed)
    items = [s for s in Catalogue.load() if not s.sold_by_weight]
    return [(i % N_CARTS, s.sku, round(s.weight_mean_g, 1)) for i, s in ((i, rnd.choice(items)) for i in range(n))]


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
            for ci, sku, delta in _shop(n):
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
    from .config import parse_config
    from .service import Gateway
    carts = [f"c{i:03d}" for i in range(N_CARTS)]
    with tempfile.TemporaryDirectory() as d:
        cfg = parse_config({"state_dir": d, "carts": {"known": carts}, "detector": {"enabled": False},
                            "sqlite_synchronous": sync})
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
        for ci, sku, delta in _shop(n):
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


# ------------------------------------------------------------------ ingest
ANSWER_AFTER = 4    # in-stream answers: movement k's prompt is answered after the cart's movement k + 4


def _ingest_stream(n: int, carts: list[str], answers: bool = False):
    """n events (unsettled + weight pairs) round-robin over the carts, and each cart's true SKUs.

    `answers`: also put the screens' answers in the stream. Every weight-only movement asks
    (prompt `<cart>-p<k>` for the cart's k-th), and is decided once the cart's clock is 1.5 s
    past it: 4 movements (2 s of board time) later its prompt is open, so the answer goes there.
    The last 4 movements of each cart stay unanswered."""
    boards = [Board(c) for c in carts]
    msgs: list[tuple[str, bytes]] = []
    truth: dict[str, list] = {}
    shop = _shop(n // 2)
    for k in range(n // 2):
        b = boards[k % len(boards)]
        mine = truth.setdefault(b.cart, [])
        mine.append(shop[k][1])
        msgs += b.movement(shop[k][2])
        j = len(mine) - ANSWER_AFTER
        if answers and j >= 1:
            pid = f"{b.cart}-p{j}"
            msgs.append((f"carts/{b.cart}/screen/answer", json.dumps(
                {"v": 1, "prompt_id": pid, "answer_id": "a-" + pid, "choice": {"sku": mine[j - 1]}}).encode()))
    return msgs, truth


def _screens(port: int, truth: dict) -> mqtt.Client:
    """The carts' screens: every prompt is answered (truthfully), as shoppers do."""
    def on_prompt(c, u, m):
        p = json.loads(m.payload)
        cart = m.topic.split("/")[1]
        # weight-only movements all ask, so the n-th prompt is the n-th movement
        k = int(p["prompt_id"].rsplit("-p", 1)[1])
        sku = truth[cart][min(k, len(truth[cart])) - 1]
        c.publish(f"carts/{cart}/screen/answer", json.dumps(
            {"v": 1, "prompt_id": p["prompt_id"], "answer_id": "a-" + p["prompt_id"],
             "choice": {"sku": sku}}), qos=1)
    screen = client(port, "bench-screens", on_prompt)
    screen.subscribe("carts/+/screen/prompt", qos=1)
    return screen


def _publish_all(port: int, msgs: list, publishers: int) -> float:
    """Publish at QoS 1 over `publishers` connections (a cart's events stay on one, in order)."""
    pubs = [client(port, f"bench-pub{i}") for i in range(publishers)]
    parts = [[] for _ in pubs]
    for t, p in msgs:
        parts[int(t.split("/")[1][1:]) % publishers].append((t, p))

    def run(c, part):
        infos = [c.publish(t, p, qos=1) for t, p in part]
        for i in infos:
            i.wait_for_publish(120)
    t0 = time.perf_counter()
    ths = [threading.Thread(target=run, args=(c, part)) for c, part in zip(pubs, parts)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    dt = time.perf_counter() - t0
    for c in pubs:
        c.loop_stop()
        c.disconnect()
    return dt


def _wait_gateway_events(env: Env, n: int, timeout: float = 300) -> tuple[float | None, float | None]:
    """(first, last): when the gateway's stored-events counter first moved and when it reached n."""
    first = None
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = env.metrics().get("cart_gateway_events_total", 0)
        now = time.perf_counter()
        if got and first is None:
            first = now
        if got >= n:
            return first, now
        time.sleep(0.02)
    return first, None


def bench_ingest(n: int = 6000, mode: str = "live", publishers: int = 1) -> dict:
    """Weight events/s the gateway stores vs a bare paho subscriber of the same stream, same run.

    live: the events are published (QoS 1, `publishers` connections) while both are subscribed:
      both rates are bounded by the load generator, so a ratio near 1 only says "keeps up".
      Prompts are answered by a screens client as they come.
    queued: the events, and the screens' answers (in-stream, see _ingest_stream), are queued at
      the broker for the gateway's and the bare subscriber's persistent sessions while both are
      offline; then the bare subscriber, and after it the gateway, drain their queue. Each rate
      is the subscriber's own (first to last event stored), not the publisher's.
    """
    carts = [f"c{i:03d}" for i in range(50)]    # one store's carts
    msgs, truth = _ingest_stream(n, carts, answers=mode == "queued")
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d), carts=carts)
        try:
            env.start_gateway()
            env.wait_online()
            bare = {"n": 0, "t_first": None, "t_end": None}

            def on_bare(c, u, m):
                bare["n"] += 1
                if bare["t_first"] is None:
                    bare["t_first"] = time.perf_counter()
                if bare["n"] == n:
                    bare["t_end"] = time.perf_counter()
            sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
            sub.max_inflight_messages_set(1000)
            sub.on_message = on_bare
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            props.ReceiveMaximum = 1000       # as the gateway
            sub.connect("127.0.0.1", env.port, clean_start=False, properties=props)
            sub.loop_start()
            sub.subscribe("carts/+/+/evt", qos=1)
            screen = _screens(env.port, truth) if mode == "live" else None
            time.sleep(0.5)
            if mode == "queued":
                sub.disconnect()
                sub.loop_stop()
                env.stop_gateway()
                time.sleep(0.3)
            t_pub = _publish_all(env.port, msgs, publishers)
            t0 = time.perf_counter()
            if mode == "queued":
                sub.reconnect()
                sub.loop_start()
                deadline = time.time() + 120
                while bare["t_end"] is None and time.time() < deadline:
                    time.sleep(0.02)
                env.start_gateway()
                g_first, g_end = _wait_gateway_events(env, n)
                gw_rate = n / (g_end - g_first) if g_end and g_end > g_first else None
                bare_rate = n / (bare["t_end"] - bare["t_first"]) if bare["t_end"] else None
            else:
                g_first, g_end = _wait_gateway_events(env, n)
                deadline = time.time() + 120
                while bare["t_end"] is None and time.time() < deadline:
                    time.sleep(0.02)
                gw_rate = n / (g_end - t0 + t_pub) if g_end else None
                bare_rate = n / (bare["t_end"] - t0 + t_pub) if bare["t_end"] else None
            sub.loop_stop()
            if screen is not None:
                screen.loop_stop()
            m = env.metrics()
        finally:
            env.stop()
    res = {"bench": "ingest", "mode": mode, "events": n, "publishers": publishers, "publish_s": round(t_pub, 3),
           "publish_events_per_s": round(n / t_pub, 1),
           "gateway_events_per_s": round(gw_rate, 1) if gw_rate else None,
           "bare_paho_events_per_s": round(bare_rate, 1) if bare_rate else None,
           "ratio": round(gw_rate / bare_rate, 3) if gw_rate and bare_rate else None,
           "gateway_stored": m.get("cart_gateway_events_total"),
           "answers_handled": m.get('cart_gateway_messages_total{kind="screen/answer"}'),
           "decisions": m.get("cart_gateway_decisions_total"),
           "commit_batches": m.get("cart_gateway_commit_seconds_count")}
    print(f"ingest ({mode}, {publishers} publisher(s) at {res['publish_events_per_s']} ev/s): gateway "
          f"{res['gateway_events_per_s']} ev/s, bare paho {res['bare_paho_events_per_s']} ev/s, ratio {res['ratio']}")
    return res


# ------------------------------------------------------------------ handler (no broker)
def bench_handler(n: int = 6000, batch: int = 64) -> dict:
    """The ingest stream (50 carts, every prompt answered) through Gateway.handle_batch in-process,
    `batch` messages per transaction with a commit (FULL) each: the gateway's own CPU cost per
    event, without Mosquitto or paho. Answers go in the batch after the one that opened the prompt."""
    from .config import parse_config
    from .reconcile import engine, scoring
    from .service import Gateway
    carts = [f"c{i:03d}" for i in range(50)]
    score_cpu = [0.0]

    def timed_score(*a):      # the engine's scoring calls, timed: its share of the handler's CPU
        c = time.process_time()
        try:
            return scoring.score(*a)
        finally:
            score_cpu[0] += time.process_time() - c
    msgs, truth = _ingest_stream(n, carts)
    with tempfile.TemporaryDirectory() as d:
        gw = Gateway(parse_config({"state_dir": d, "carts": {"known": carts}, "detector": {"enabled": False}}))
        t = 1_700_000_000_000
        items = []
        for topic, p in msgs:
            t += 1
            items.append(("msg", topic, p, t))
        pending: list = []
        i = batches = answers = 0
        stats0 = dict(scoring.STATS)
        engine.score = timed_score
        t0, c0 = time.perf_counter(), time.process_time()
        while i < len(items) or pending:
            work = pending + items[i:i + batch]
            i += batch
            pending = []
            gw.store.begin()
            out = gw.handle_batch(work)
            gw.store.commit()
            batches += 1
            for p in out:
                if p.topic.endswith("/screen/prompt"):
                    pr = json.loads(p.encoded())
                    cart = p.topic.split("/")[1]
                    k = int(pr["prompt_id"].rsplit("-p", 1)[1])
                    ans = {"v": 1, "prompt_id": pr["prompt_id"], "answer_id": "a-" + pr["prompt_id"],
                           "choice": {"sku": truth[cart][min(k, len(truth[cart])) - 1]}}
                    pending.append(("msg", f"carts/{cart}/screen/answer", json.dumps(ans).encode(), t))
                    answers += 1
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        engine.score = scoring.score
        scored = {k: scoring.STATS[k] - stats0[k] for k in stats0}
        lines = sum(len(rt.engine.s["lines"]) for rt in gw.carts.values()) / len(carts)
        gw.store.close()
    res = {"bench": "handler", "events": n, "answers": answers, "batches": batches, "seconds": round(dt, 3),
           "events_per_s": round(n / dt, 1), "cpu_s": round(cpu, 3), "events_per_cpu_s": round(n / cpu, 1),
           "final_lines_per_cart": lines, "scored": scored, "score_cpu_s": round(score_cpu[0], 3)}
    # CPU time is the figure that survives a shared machine; wall time includes the fsyncs
    print(f"handler in-process: {res['events_per_s']} events/s wall, {res['events_per_cpu_s']} per CPU-second "
          f"({n} events + {answers} answers, "
          f"{batches} commits, baskets end at {lines:.0f} lines); scoring: {res['score_cpu_s']} s CPU in "
          f"{sum(scored[k] for k in ('pruned', 'full'))} calls, {scored['pruned']} pruned, "
          f"{scored['full']} in full, of which {scored['fallback']} after a pruning attempt")
    return res


# ------------------------------------------------------------------ frames
def _test_jpeg(i: int) -> bytes:
    import numpy as np
    from PIL import Image
    # textured like a camera frame (noise compresses badly): ~20-30 kB at 320x240
    rng = np.random.default_rng(i)
    base = np.linspace(0, 255, 320, dtype=np.float32)[None, :, None].repeat(240, 0).repeat(3, 2)
    img = Image.fromarray(np.clip(base + rng.normal(0, 25, (240, 320, 3)), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def bench_frames(bursts: int = 40, per_burst: int = 4) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d), detector=True)
        try:
            env.start_gateway()
            env.wait_online(60)
            pub = client(env.port, "bench-cam")
            time.sleep(0.5)
            cam = Board("c001", "cam")
            jpegs = [_test_jpeg(i) for i in range(8)]
            n = bursts * per_burst
            t0 = time.perf_counter()
            frame_no = 0
            for k in range(bursts):
                nums = list(range(frame_no + 1, frame_no + per_burst + 1))
                frame_no += per_burst
                for num in nums:
                    for ch in frame_chunks(cam.epoch, num, jpegs[num % 8]):
                        pub.publish("carts/c001/cam/frame", ch, qos=1)
                pub.publish(cam.topic, cam.capture(nums, ref=None, trigger="motion"), qos=1).wait_for_publish(30)
            deadline = time.time() + 300
            done_t = None
            while time.time() < deadline:
                m = env.metrics()
                if m.get("cart_gateway_inference_seconds_count", 0) >= bursts:
                    done_t = time.perf_counter()
                    break
                time.sleep(0.05)
            m = env.metrics()
            pub.loop_stop()
        finally:
            env.stop()
    inf = m.get("cart_gateway_inference_seconds_sum", 0.0)
    res = {"bench": "frames", "frames": n, "bursts": bursts, "frame_bytes": len(jpegs[0]),
           "frames_per_s": round(n / (done_t - t0), 1) if done_t else None,
           "bursts_run": m.get("cart_gateway_inference_seconds_count"),
           "detector_dropped": m.get("cart_gateway_detector_dropped_total"),
           "inference_ms_per_frame": round(inf / n * 1000, 2) if n else None}
    print(f"frames with detection: {res['frames_per_s']} frames/s ({res['bursts_run']} bursts, "
          f"{res['inference_ms_per_frame']} ms inference per frame, dropped {res['detector_dropped']})")
    return res


# ------------------------------------------------------------------ recovery
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

    def publish():
        gap = 1.0 / rate
        nxt = time.perf_counter()
        for t, p in msgs:
            pub.publish(t, p, qos=1)
            nxt += gap
            d = nxt - time.perf_counter()
            if d > 0:
                time.sleep(d)
        stop.set()
    th = threading.Thread(target=publish)
    th.start()
    recoveries = []
    for _ in range(kills):
        time.sleep(kill_every_s)
        if stop.is_set():
            break
        env.kill9()
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
    from .store import Store
    st = Store(env.tmp / "state" / "gateway.sqlite3")
    rows = [(r[0], r[3]) for r in st.load_carts()]
    st.close()
    baskets = {}
    for cart, s in rows:
        lines = [ln["weight_g"] for ln in s["lines"]]
        lines += [m["delta_g"] for m in s["moves"].values() if m["state"] != "done" and m["delta_g"] > 0]
        weights_moves = sorted(m["delta_g"] for m in s["moves"].values())
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cart_gateway.bench")
    ap.add_argument("name", choices=["latency", "ingest", "handler", "frames", "recovery"])
    ap.add_argument("-n", type=int, help="size (events, bursts or movements)")
    ap.add_argument("--mode", choices=["live", "queued"], default="live",
                    help="ingest: publish while subscribed, or drain a queue built while offline")
    ap.add_argument("--publishers", type=int, default=1, help="ingest: publisher connections")
    ap.add_argument("--settle-ms", type=int, default=300, help="latency: pause between unsettled and weight")
    ap.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL", help="latency: sqlite_synchronous")
    args = ap.parse_args(argv)
    fn = {"latency": bench_latency, "ingest": bench_ingest, "handler": bench_handler, "frames": bench_frames,
          "recovery": bench_recovery}[args.name]
    kw = {}
    if args.name == "ingest":
        kw = {"mode": args.mode, "publishers": args.publishers}
    elif args.name == "latency":
        kw = {"settle_ms": args.settle_ms, "sync": args.sync}
    res = fn(args.n, **kw) if args.n else fn(**kw)
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
