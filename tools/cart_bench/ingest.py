"""Sustained ingest: weight events/s the gateway stores, side by side with a bare paho
subscriber receiving the same stream in the same run; the ratio."""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from cart_gateway.reconcile import fitkernel

from .env import Env, client
from .stream import ingest_stream


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


POLL_S = 0.02   # how often the bench reads the gateway's database (another process: no load on the gateway)


def _thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of the process so far, by thread id; {} where
    /proc is not there. The gateway's main thread is its core loop (decode, reconcile, SQLite,
    the publish calls); the others are paho's network thread (packets in, acks and publishes
    out), the /metrics server and the detector worker."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    tick = os.sysconf("SC_CLK_TCK")
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _runqueue_s(pid: int, tid: int | None = None) -> float | None:
    """Seconds a thread (default: the main thread) has been runnable but waiting for a CPU, from
    /proc/<pid>/task/<tid>/schedstat (its second field, ns); None where the kernel does not keep it.
    This is the time a shared machine's other processes took from it: wall time of the core
    thread = its CPU + this + the time it was blocked (input queue, fsync, the GIL)."""
    try:
        return int(Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _wait_gateway_events(env: Env, n: int, timeout: float = 300, cpu: list | None = None) -> tuple[float | None, float | None]:
    """(first, last): the gateway's first stored event (its receive time, `t_ms` in the events
    table) and the moment its database first holds n events, as time.time() seconds.

    Read from SQLite by this process (WAL: a reader does not block the gateway's writes).
    The old bench scraped the gateway's Prometheus endpoint every 20 ms instead, which ran
    the HTTP server and the exposition in the gateway's own process, under its GIL, while it
    was being measured.

    `cpu`: gets the gateway's CPU-s when its first stored event is seen and when the n-th is."""
    deadline = time.time() + timeout
    db = None
    try:
        while time.time() < deadline:
            try:
                if db is None:
                    db = sqlite3.connect(f"file:{env.tmp / 'state' / 'gateway.sqlite3'}?mode=ro", uri=True)
                got, lo = db.execute("SELECT COUNT(*), MIN(t_ms) FROM events").fetchone()
            except sqlite3.OperationalError:     # not created yet
                if db is not None:
                    db.close()
                db = None
                time.sleep(POLL_S)
                continue
            now = time.time()
            if cpu is not None and got and not cpu:
                cpu.extend(_cpu_reading(env))
            if got >= n:
                if cpu is not None:
                    cpu.extend(_cpu_reading(env))
                return lo / 1000.0, now
            time.sleep(POLL_S)
    finally:
        if db is not None:
            db.close()
    return None, None


def _cpu_reading(env: Env) -> tuple:
    """(process CPU-s, CPU-s by thread, the main thread's run-queue wait s) now."""
    return env.gateway_cpu_s(), _thread_cpu_s(env.gw.pid), _runqueue_s(env.gw.pid)


def _split_threads(pid: int, before: dict, after: dict) -> tuple[float | None, float | None]:
    """(main thread, all other threads) CPU-s between two _thread_cpu_s readings; a thread
    started in between counts from 0."""
    if not after:
        return None, None
    d = {t: c - before.get(t, 0.0) for t, c in after.items()}
    return d.get(pid, 0.0), sum(c for t, c in d.items() if t != pid)


def bench_ingest(n: int = 6000, mode: str = "live", publishers: int = 1, profile: str | None = None,
                 sync: str = "FULL") -> dict:
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
    msgs, truth = ingest_stream(n, carts, answers=mode == "queued")
    # the bare subscriber takes what the gateway takes: the events and (queued) the answers in
    # the stream; it once took the events only, 6,000 of the gateway's 8,800 messages
    total = len(msgs)
    # compiled (or loaded) into numba's cache by this process, so the gateway's background
    # warm-up loads it instead of compiling (~6 CPU-s) while it drains the queue
    fitkernel.warm()
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d), carts=carts, sync=sync)
        try:
            env.start_gateway()
            env.wait_online()
            bare = {"n": 0, "t_first": None, "t_end": None, "rq": []}

            def on_bare(c, u, m):
                bare["n"] += 1
                if bare["t_first"] is None:
                    bare["t_first"] = time.perf_counter()
                    bare["rq"].append(_runqueue_s(os.getpid(), threading.get_native_id()))   # paho's loop thread
                if bare["n"] == total:
                    bare["t_end"] = time.perf_counter()
                    bare["rq"].append(_runqueue_s(os.getpid(), threading.get_native_id()))
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
            # live: the screens' answers are not part of the published stream (`total` is the events)
            sub.subscribe([("carts/+/+/evt", 1)] + ([("carts/+/screen/answer", 1)] if mode == "queued" else []))
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
                env.start_gateway(profile)
                cpu: list = []
                g_first, g_end = _wait_gateway_events(env, n, cpu=cpu)
                ok = len(cpu) == 6 and cpu[0] is not None and cpu[3] is not None
                gw_cpu = cpu[3] - cpu[0] if ok else None
                main_cpu, other_cpu = _split_threads(env.gw.pid, cpu[1], cpu[4]) if ok else (None, None)
                # threads that ended in between (the fit kernel's warm-up): the process's CPU-s less the live threads'
                ended_cpu = gw_cpu - main_cpu - other_cpu if ok and main_cpu is not None else None
                runq = cpu[5] - cpu[2] if ok and cpu[2] is not None and cpu[5] is not None else None
                gw_rate = n / (g_end - g_first) if g_end and g_end > g_first else None
                bare_rate = n / (bare["t_end"] - bare["t_first"]) if bare["t_end"] else None
                bare_rq = bare["rq"][1] - bare["rq"][0] if len(bare["rq"]) == 2 and None not in bare["rq"] else None
                # each side's rate had it not waited for a CPU (its wall time less its run-queue
                # wait): what the ratio is on a machine shared with other work
                gw_own = n / (g_end - g_first - runq) if gw_rate and runq is not None else None
                bare_own = n / (bare["t_end"] - bare["t_first"] - bare_rq) if bare_rate and bare_rq is not None else None
            else:
                t0_wall = time.time() - t_pub          # publishing started (the gateway's clock is wall time)
                g_first, g_end = _wait_gateway_events(env, n)
                deadline = time.time() + 120
                while bare["t_end"] is None and time.time() < deadline:
                    time.sleep(0.02)
                gw_rate = n / (g_end - t0_wall) if g_end else None
                gw_cpu = main_cpu = other_cpu = ended_cpu = runq = bare_rq = gw_own = bare_own = None
                bare_rate = n / (bare["t_end"] - t0 + t_pub) if bare["t_end"] else None
            sub.loop_stop()
            if screen is not None:
                screen.loop_stop()
            m = env.metrics()
        finally:
            env.stop()
    res = {"bench": "ingest", "mode": mode, "sync": sync, "events": n, "publishers": publishers,
           "publish_s": round(t_pub, 3),
           "publish_events_per_s": round(n / t_pub, 1),
           "gateway_events_per_s": round(gw_rate, 1) if gw_rate else None,
           "bare_paho_events_per_s": round(bare_rate, 1) if bare_rate else None,
           "ratio": round(gw_rate / bare_rate, 3) if gw_rate and bare_rate else None,
           "gateway_stored": m.get("cart_gateway_events_total"),
           "answers_handled": m.get('cart_gateway_messages_total{kind="screen/answer"}'),
           "decisions": m.get("cart_gateway_decisions_total"),
           "commit_batches": m.get("cart_gateway_commit_seconds_count"),
           # queued: the gateway's CPU-s from its first stored event seen to its n-th (POLL_S apart)
           "gateway_cpu_s": round(gw_cpu, 3) if gw_cpu else None,
           "gateway_events_per_cpu_s": round(n / gw_cpu, 1) if gw_cpu else None,
           # the same CPU-s by thread: the core loop (main thread) and the rest (paho's network
           # thread above all), which the in-process handler bench does not run
           "gateway_core_thread_cpu_s": round(main_cpu, 3) if main_cpu is not None else None,
           "gateway_other_threads_cpu_s": round(other_cpu, 3) if other_cpu is not None else None,
           "gateway_ended_threads_cpu_s": round(ended_cpu, 3) if ended_cpu is not None else None,
           # where the core thread's wall time went: on a CPU, waiting in the run queue for one
           # (the shared machine's other processes), or blocked (input, fsync, the GIL)
           "gateway_core_thread_runqueue_s": round(runq, 3) if runq is not None else None,
           "gateway_core_thread_blocked_s": (round(g_end - g_first - main_cpu - runq, 3)
                                             if runq is not None and main_cpu is not None else None),
           "bare_paho_messages": total,
           "bare_paho_runqueue_s": round(bare_rq, 3) if bare_rq is not None else None,
           "gateway_events_per_s_less_runqueue": round(gw_own, 1) if gw_own else None,
           "bare_paho_events_per_s_less_runqueue": round(bare_own, 1) if bare_own else None,
           "ratio_less_runqueue": round(gw_own / bare_own, 3) if gw_own and bare_own else None,
           # the gateway's CPU over the same wall time: ~1 (a core's worth) = CPU-bound; far
           # below 1 on an idle machine = it waited (broker window, batch timer, fsync)
           "gateway_wall_s": round(g_end - g_first, 3) if mode == "queued" and g_end and g_end > g_first else None,
           "gateway_cpu_per_wall_s": (round(gw_cpu / (g_end - g_first), 3)
                                      if mode == "queued" and gw_cpu and g_end and g_end > g_first else None),
           "load_avg_1m": round(os.getloadavg()[0], 2)}     # the machine's, at the end (shared: read with it)
    print(f"ingest ({mode}, {publishers} publisher(s) at {res['publish_events_per_s']} ev/s): gateway "
          f"{res['gateway_events_per_s']} ev/s, bare paho {res['bare_paho_events_per_s']} ev/s, ratio {res['ratio']}")
    return res

