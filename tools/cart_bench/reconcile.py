"""The reconciliation engine alone: time per input with a synthetic store catalogue.

    cart-bench reconcile [--skus 317] [--moves 400] [--seed 1] [--json]

One cart, a seeded session (cart_bench.scenario: adds, removals, lift-and-replace,
personal items; vision 85 % of the time, out of order 30 %), prompts and reviews
answered with the truth. Times every engine call in CPU time of this thread (the machine
is shared: wall time there measures the neighbours; `wall_weight_*` has it too).
`weight_*`: the calls that decide a weight movement (its weight event when the vision came
first, else the vision or the timer that ends its wait); `answer_*`: the shopper's answers. Also how often the engine
accepted, asked or reviewed, and whether the final basket matches the truth.
"""
from __future__ import annotations

import time
from collections import Counter

import numpy as np

from cart_gateway.reconcile import CartReconciler, fitkernel
from cart_gateway.reconcile.inputs import Answer

from .scenario import Session, drive
from .synth import store_catalogue

DECIDING = ("accept", "ask", "review")


def _pct(xs: list[float], p: float) -> float | None:
    return round(float(np.percentile(np.array(xs), p)), 3) if xs else None


def bench_reconcile(skus: int = 317, moves: int = 400, seed: int = 1, basket_items: int = 0) -> dict:
    """`basket_items`: the shopper checks out once the basket holds this many items and the
    next one starts on a fresh cart state (same catalogue index and WeightBook, as the gateway
    does after a receipt); 0: one basket for the whole session (it grows to ~170 lines)."""
    cat = store_catalogue(skus, seed=seed)
    items = list(cat)
    t_build = time.perf_counter()
    eng = CartReconciler("bench", cat)
    build_ms = (time.perf_counter() - t_build) * 1000.0
    kernel = fitkernel.warm()       # as the gateway does at start: no compile in the timed events
    sess = Session(items, cart="bench", seed=seed)
    times: dict[str, list[float]] = {}
    weight: list[float] = []
    wall_weight: list[float] = []
    orig_step, orig_advance = eng.step, eng.advance

    def record(kind: str, fx: dict, c0: float, t0: float) -> None:
        ms = (time.thread_time() - c0) * 1000.0
        times.setdefault(kind, []).append(ms)
        if any(d["outcome"] in DECIDING and d["move_id"] for d in fx["decisions"]) and kind != "Answer":
            weight.append(ms)
            wall_weight.append((time.perf_counter() - t0) * 1000.0)

    def timed_step(item):   # the engine's own calls, not the simulator's
        t0, c0 = time.perf_counter(), time.thread_time()
        fx = orig_step(item)
        record(type(item).__name__, fx, c0, t0)
        return fx

    def timed_advance(mono_ms):
        t0, c0 = time.perf_counter(), time.thread_time()
        fx = orig_advance(mono_ms)
        record("advance", fx, c0, t0)
        return fx

    eng.step, eng.advance = timed_step, timed_advance
    missing = extra = true_items = baskets = 0

    def tally(e) -> None:
        nonlocal missing, extra, true_items, baskets
        truth = Counter(s for s, _ in sess.basket)
        got = Counter()
        for ln in e.s["lines"]:
            got[ln["sku"]] += ln["qty"]
        true_items += sum(truth.values())
        missing += sum((truth - got).values())
        extra += sum((got - truth).values())
        baskets += 1
    outcomes: Counter = Counter()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(moves):
        drive(eng, sess, 1)
        if basket_items and len(sess.basket) >= basket_items:
            tally(eng)
            outcomes.update(d["outcome"] for d in eng.decisions())
            eng = CartReconciler("bench", cat, None, eng.book, index=eng.cat)
            orig_step, orig_advance = eng.step, eng.advance
            eng.step, eng.advance = timed_step, timed_advance
            sess.basket = []
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tally(eng)
    outcomes.update(d["outcome"] for d in eng.decisions())
    answers = times.get(Answer.__name__, [])
    out = {"bench": "reconcile", "skus": skus, "moves": moves, "seed": seed, "basket_items": basket_items,
           "baskets": baskets, "wall_s": round(wall, 3),
           "cpu_s": round(cpu, 3), "fit_kernel": kernel, "index_build_ms": round(build_ms, 1),
           "weight_n": len(weight), "weight_p50_ms": _pct(weight, 50), "weight_p99_ms": _pct(weight, 99),
           "weight_max_ms": round(max(weight), 3) if weight else None,
           "wall_weight_p50_ms": _pct(wall_weight, 50), "wall_weight_p99_ms": _pct(wall_weight, 99),
           "answer_n": len(answers), "answer_p50_ms": _pct(answers, 50), "answer_p99_ms": _pct(answers, 99),
           "decisions_logged": len(eng.decisions()), "basket_lines": len(eng.s["lines"]), "inputs": {}}
    print(f"{'input':<14}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}   (CPU time)")
    for k in sorted(times):
        a = times[k]
        out["inputs"][k] = {"n": len(a), "p50_ms": _pct(a, 50), "p99_ms": _pct(a, 99), "max_ms": round(max(a), 3)}
        print(f"{k:<14}{len(a):>6}{_pct(a, 50):>10.3f}{_pct(a, 99):>10.3f}{max(a):>10.3f}")
    out["outcomes"] = dict(sorted(outcomes.items()))
    out["basket_items_true"] = true_items
    out["basket_items_missing"] = missing
    out["basket_items_extra"] = extra
    print(f"{skus} SKUs: weight movement decided p50 {out['weight_p50_ms']} ms, p99 {out['weight_p99_ms']} ms "
          f"({len(weight)}); answer p99 {out['answer_p99_ms']} ms ({len(answers)})")
    print("outcomes:", out["outcomes"])
    print(f"basket: {out['basket_items_true']} true items, {out['basket_items_missing']} missing, "
          f"{out['basket_items_extra']} extra")
    return out
