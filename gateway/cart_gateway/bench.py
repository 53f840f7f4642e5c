"""Gateway benchmarks: `python -m cart_gateway.bench {latency,ingest,frames,recovery}`.

Each starts a private Mosquitto on a free loopback port and the gateway as a
subprocess (`cart-gateway run`), prints figures and ends with one JSON line.
Measurements, not pass/fail.

- latency: weight event published -> retained basket received (no inference), p50/p99,
  plus the handler's own time per weight event (in-process, incl. SQLite commit).
- ingest: weight events/s the gateway stores, side by side with a bare paho
  subscriber receiving the same stream in the same run; the ratio.
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

    def __init__(self, tmp: Path, detector: bool = False, carts=("c001", "c002"), port: int | None = None):
        """`port`: use that (already running) broker instead of starting one."""
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
            'log_level = "warning"', "batch_max = 500",
            "[mqtt]", f"port = {self.port}", "[carts]", f"known = {json.dumps(list(carts))}",
            "[detector]", f"enabled = {'true' if detector else 'false'}", "queue_size = 64",
            "[frames]", "max_in_progress = 64"]) + "\n")
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


def bench_latency(n: int = 300) -> dict:
    carts = [f"c{i:03d}" for i in range(N_CARTS)]
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d), carts=carts)
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
    handler = _handler_latency(n)
    res = {"bench": "latency", "events": n, "carts": N_CARTS, "received": len(lat),
           "mqtt_p50_ms": round(pct(lat, 50), 2), "mqtt_p99_ms": round(pct(lat, 99), 2),
           "mqtt_max_ms": round(max(lat), 2) if lat else None, **handler}
    print(f"weight event -> basket via Mosquitto: p50 {res['mqtt_p50_ms']} ms, p99 {res['mqtt_p99_ms']} ms "
          f"({len(lat)}/{n}); handler+commit p50 {handler['handler_p50_ms']} ms, p99 {handler['handler_p99_ms']} ms")
    return res


def _handler_latency(n: int) -> dict:
    """The handler alone, in-process: weight event in -> basket publish out, incl. the SQLite commit."""
    from .config import parse_config
    from .service import Gateway
    carts = [f"c{i:03d}" for i in range(N_CARTS)]
    with tempfile.TemporaryDirectory() as d:
        cfg = parse_config({"state_dir": d, "carts": {"known": carts}, "detector": {"enabled": False}})
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
def bench_ingest(n: int = 6000) -> dict:
    """n events (unsettled + weight pairs) from 50 carts, published as fast as QoS 1 allows."""
    with tempfile.TemporaryDirectory() as d:
        carts = [f"c{i:03d}" for i in range(50)]    # one store's carts
        env = Env(Path(d), carts=carts)
        try:
            env.start_gateway()
            env.wait_online()
            bare = {"n": 0, "t_end": None}

            def on_bare(c, u, m):
                bare["n"] += 1
                if bare["n"] == n:
                    bare["t_end"] = time.perf_counter()
            sub = client(env.port, "bench-bare", on_bare)
            sub.subscribe("carts/+/+/evt", qos=1)
            pub = client(env.port, "bench-pub")
            truth: dict[str, list] = {}

            def on_prompt(c, u, m):   # the shoppers answer their prompts (truthfully), as in a store
                p = json.loads(m.payload)
                cart = m.topic.split("/")[1]
                # weight-only movements all ask, so the n-th prompt is the n-th movement
                n = int(p["prompt_id"].rsplit("-p", 1)[1])
                sku = truth[cart][min(n, len(truth[cart])) - 1]
                c.publish(f"carts/{cart}/screen/answer", json.dumps(
                    {"v": 1, "prompt_id": p["prompt_id"], "answer_id": "a-" + p["prompt_id"],
                     "choice": {"sku": sku}}), qos=1)
            screen = client(env.port, "bench-screens", on_prompt)
            screen.subscribe("carts/+/screen/prompt", qos=1)
            time.sleep(0.5)
            boards = [Board(c) for c in carts]
            msgs = []
            shop = _shop(n // 2)
            for k in range(n // 2):
                b = boards[k % len(boards)]
                truth.setdefault(b.cart, []).append(shop[k][1])
                msgs += b.movement(shop[k][2])
            t0 = time.perf_counter()
            infos = [pub.publish(t, p, qos=1) for t, p in msgs]
            for i in infos:
                i.wait_for_publish(60)
            t_pub = time.perf_counter() - t0
            deadline = time.time() + 120
            gw_end = None
            while time.time() < deadline:
                m = env.metrics()
                if m.get("cart_gateway_events_total", 0) >= n:
                    gw_end = time.perf_counter()
                    break
                time.sleep(0.02)
            while bare["t_end"] is None and time.time() < deadline:
                time.sleep(0.02)
            sub.loop_stop(); pub.loop_stop(); screen.loop_stop()
            m = env.metrics()
        finally:
            env.stop()
    gw_rate = n / (gw_end - t0) if gw_end else None
    bare_rate = n / (bare["t_end"] - t0) if bare["t_end"] else None
    res = {"bench": "ingest", "events": n, "publish_s": round(t_pub, 3),
           "gateway_events_per_s": round(gw_rate, 1) if gw_rate else None,
           "bare_paho_events_per_s": round(bare_rate, 1) if bare_rate else None,
           "ratio": round(gw_rate / bare_rate, 3) if gw_rate and bare_rate else None,
           "gateway_stored": m.get("cart_gateway_events_total"),
           "commit_batches": m.get("cart_gateway_commit_seconds_count")}
    print(f"ingest: gateway {res['gateway_events_per_s']} ev/s, bare paho {res['bare_paho_events_per_s']} ev/s, "
          f"ratio {res['ratio']}")
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
    ap.add_argument("name", choices=["latency", "ingest", "frames", "recovery"])
    ap.add_argument("-n", type=int, help="size (events, bursts or movements)")
    args = ap.parse_args(argv)
    fn = {"latency": bench_latency, "ingest": bench_ingest, "frames": bench_frames, "recovery": bench_recovery}[args.name]
    res = fn(args.n) if args.n else fn()
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
