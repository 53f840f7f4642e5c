"""Micro-benchmark: time per input (weight event -> basket update) with a 300-SKU catalogue.

    python -m cart_gateway.reconcile.bench [--skus 300] [--moves 400] [--seed 1]

Prints p50/p99 per input kind, then one JSON line with every figure. Also
reports how often the engine accepted, asked or sent to review, and whether
the final basket matches the simulated truth (with truthful shopper answers).
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from .engine import CartReconciler
from .scenario import Session, drive
from .synth import synthetic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cart_gateway.reconcile.bench")
    ap.add_argument("--skus", type=int, default=300)
    ap.add_argument("--moves", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    skus = synthetic(args.skus, seed=args.seed)
    eng = CartReconciler("bench", skus)
    sess = Session(skus, cart="bench", seed=args.seed)
    times: dict[str, list[float]] = {}
    orig_step = eng.step

    def timed(item):   # time the engine's own step, not the simulator
        t0 = time.perf_counter()
        fx = orig_step(item)
        times.setdefault(type(item).__name__, []).append((time.perf_counter() - t0) * 1000.0)
        return fx

    eng.step = timed
    t0 = time.perf_counter()
    drive(eng, sess, args.moves)
    wall = time.perf_counter() - t0
    t_state = time.perf_counter()
    blob = eng.to_json()   # what the service persists after each step
    ser_ms = (time.perf_counter() - t_state) * 1000.0
    out = {"skus": args.skus, "moves": args.moves, "seed": args.seed, "wall_s": round(wall, 3),
           "state_json_bytes": len(blob), "state_to_json_ms": round(ser_ms, 3),
           "decisions_logged": len(eng.decisions()), "basket_lines": len(eng.s["lines"])}
    print(f"{'input':<14}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for k in sorted(times):
        a = np.array(times[k])
        p50, p99 = float(np.percentile(a, 50)), float(np.percentile(a, 99))
        print(f"{k:<14}{len(a):>6}{p50:>10.3f}{p99:>10.3f}{a.max():>10.3f}")
        out[k] = {"n": len(a), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "max_ms": round(float(a.max()), 3)}
    outcomes = Counter(d["outcome"] for d in eng.decisions())
    truth = Counter(s for s, _ in sess.basket)
    got = Counter()
    for ln in eng.s["lines"]:
        got[ln["sku"]] += ln["qty"]
    out["outcomes"] = dict(sorted(outcomes.items()))
    out["basket_items_true"] = sum(truth.values())
    out["basket_items_missing"] = sum((truth - got).values())
    out["basket_items_extra"] = sum((got - truth).values())
    print("outcomes:", out["outcomes"])
    print(f"basket: {out['basket_items_true']} true items, {out['basket_items_missing']} missing, "
          f"{out['basket_items_extra']} extra")
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
