"""Firmware benchmarks (measure, not pass/fail):

  .venv/bin/python firmware/tests/bench_fw.py [--events N] [--seconds S]

1. Journaled events per second one virtual board sustains through Mosquitto:
   the real firmware (runtime + the loadgen test app) in micropython under the
   scale heap budget, N events produced as fast as the app can, timed from the
   first to the last arrival at a paho subscriber; every event is journaled,
   published at QoS 1 and acknowledged (cursor advanced).
2. Live-heap high-water per board budget: the same runtime under each sim
   board's heap_budget for S seconds at 10 events/s, high-water read from the
   board's telemetry (heap_peak: most bytes live right after a collection).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fwtest import LOADGEN, ROOT, Board, Broker, Subscriber, board_config, stage_lib  # noqa: E402


def make_board(tmp, name, heap, cfg):
    flash = tmp / name
    flash.mkdir()
    stage_lib(flash, LOADGEN, mpy=True)
    b = Board(flash, heap)
    b.write_config(cfg)
    return b


def timed_throughput(tmp, n):
    broker = Broker(tmp).start()
    sub = Subscriber(broker.port)
    stamps = []
    orig = sub._on

    def on(c, u, m):
        if m.topic.endswith("/evt"):
            stamps.append(time.perf_counter())
        orig(c, u, m)
    sub.c.on_message = on
    b = make_board(tmp, "tp", "96k", board_config(broker.port, tele_s=1,
                   app={"rate_hz": 100000, "burst": 50, "count": n},
                   journal={"max_bytes": 4 * 1024 * 1024, "segment_bytes": 16384}))
    try:
        b.start()
        sub.wait(lambda: len(stamps) >= n, 300)
        got = len({(e["epoch"], e["seq"]) for e in sub.events()})
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
        teles = [json.loads(p) for t, p, r in sub.on("/tele")]
        peak = max((t["heap_peak"] for t in teles), default=None)
        return got, span, peak
    finally:
        b.kill()
        sub.close()
        broker.stop()


def heap_per_board(tmp, seconds):
    rows = []
    for name in ("sim-scale", "sim-cam"):
        bj = json.loads((ROOT / "boards" / name / "board.json").read_text())
        budget = bj["heap_budget"]
        broker = Broker(tmp).start()
        sub = Subscriber(broker.port)
        b = make_board(tmp, name, str(budget), board_config(broker.port, board=bj["role"], tele_s=2,
                       app={"rate_hz": 10, "count": 0}))
        try:
            b.start()
            time.sleep(seconds)
            teles = [json.loads(p) for t, p, r in sub.on("/tele")]
            peak = max((t["heap_peak"] for t in teles), default=None)
            low = min((t["heap_free"] for t in teles), default=None)
            rows.append((name, budget, peak, low, "MemoryError" in b.text()))
        finally:
            b.kill()
            sub.close()
            broker.stop()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        got, span, peak = timed_throughput(tmp, a.events)
        print(f"throughput: {got}/{a.events} events journaled+published+acked in {span:.2f} s "
              f"(first to last arrival) = {got / span:.0f} events/s, heap 96k, high-water {peak} B")
        for name, budget, peak, low, mem in heap_per_board(tmp, a.seconds):
            print(f"heap {name}: budget {budget} B, live high-water {peak} B "
                  f"({100 * peak / budget:.0f}%), lowest free after gc {low} B, MemoryError={mem}")


if __name__ == "__main__":
    main()
