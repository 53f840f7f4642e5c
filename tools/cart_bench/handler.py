"""The ingest stream through the gateway's handlers in-process (no broker): its own CPU cost per event."""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time

from cart_gateway.config import parse_config
from cart_gateway.reconcile import fitkernel, multi, scoring
from cart_gateway.service import Gateway

from .breakdown import CpuBreakdown
from .stream import ingest_stream
from .synth import store_catalogue


class ScoringTimer:
    """CPU time spent in the scorers the engine actually calls.

    The engine reaches scoring through names it imported (engine -> multi.score_multi ->
    scoring.score), so patching one module's name misses the calls made through another's
    (this bench once timed `engine.score`, which nothing called: 0.0 s). Every
    `cart_gateway.reconcile.*` module's reference to a scorer is replaced for the run; only
    the outermost call is timed (score_multi calls score)."""

    def __init__(self, targets=None):
        self.targets = targets or [scoring.score, multi.score_multi]
        self.cpu_s, self.calls, self._depth, self._saved = 0.0, 0, 0, []

    def _wrap(self, fn):
        def timed(*a, **kw):
            if self._depth:
                return fn(*a, **kw)
            self._depth += 1
            c = time.thread_time()      # the handler runs on this thread; ~1 us here, process_time ~7 us
            try:
                return fn(*a, **kw)
            finally:
                self.cpu_s += time.thread_time() - c
                self.calls += 1
                self._depth -= 1
        return timed

    def __enter__(self):
        wrapped = {id(f): self._wrap(f) for f in self.targets}
        for name, mod in list(sys.modules.items()):
            if mod is None or not name.startswith("cart_gateway.reconcile"):
                continue
            for attr, val in list(vars(mod).items()):
                if id(val) in wrapped and val in self.targets:
                    self._saved.append((mod, attr, val))
                    setattr(mod, attr, wrapped[id(val)])
        if not self._saved:
            raise RuntimeError("ScoringTimer: no module refers to the scorers; the timer would read 0")
        return self

    def __exit__(self, *exc):
        for mod, attr, val in self._saved:
            setattr(mod, attr, val)
        self._saved = []
        return False


def bench_handler(n: int = 6000, batch: int = 64, skus: int = 0, profile: str | None = None,
                  breakdown: bool = False) -> dict:
    """The ingest stream (50 carts, every prompt answered) through Gateway.handle_batch in-process,
    `batch` messages per transaction with a commit (FULL) each: the gateway's own CPU cost per
    event, without Mosquitto or paho. Answers go in the batch after the one that opened the prompt.
    `skus`: a synthetic store catalogue of that size instead of the packaged one.
    `breakdown`: also the thread-CPU self time of the named stages (breakdown.py), key `cpu_self_s`."""
    carts = [f"c{i:03d}" for i in range(50)]
    cat = store_catalogue(skus) if skus else None
    msgs, truth = ingest_stream(n, carts, catalogue=cat)
    with tempfile.TemporaryDirectory() as d:
        # the synthetic stream is 1 ms a message: merging the settles of one action (issue 12,
        # merge_gap_ms) would fold a cart's whole stream into one movement, so each is its own here
        gw = Gateway(parse_config({"state_dir": d, "carts": {"known": carts}, "detector": {"enabled": False},
                                   "reconcile": {"merge_gap_ms": 0}}), catalogue=cat)
        n_skus = len(gw.catalogue)
        kernel = fitkernel.warm()       # the gateway compiles it in the background: done before the timing
        t = 1_700_000_000_000
        items = []
        for topic, p in msgs:
            t += 1
            items.append(("msg", topic, p, t))
        pending: list = []
        i = batches = answers = 0
        stats0 = dict(scoring.STATS)
        prof = None
        if profile:
            import cProfile
            # thread CPU time, not wall: on a shared machine a wall-clock profile charges the
            # neighbours' time to whatever call was running (once ~39 s to time.thread_time itself)
            prof = cProfile.Profile(time.thread_time)
        stages = CpuBreakdown() if breakdown else contextlib.nullcontext()
        with stages, ScoringTimer() as timer:
            if prof:
                prof.enable()
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
            if prof:
                prof.disable()
                prof.dump_stats(profile)
        scored = {k: scoring.STATS[k] - stats0.get(k, 0) for k in scoring.STATS}
        lines = sum(len(rt.engine.s["lines"]) for rt in gw.carts.values()) / len(carts)
        gw.store.close()
    res = {"bench": "handler", "fit_kernel": kernel, "skus": n_skus, "events": n, "answers": answers, "batches": batches,
           "seconds": round(dt, 3), "events_per_s": round(n / dt, 1), "cpu_s": round(cpu, 3),
           "events_per_cpu_s": round(n / cpu, 1), "final_lines_per_cart": lines, "scored": scored,
           "score_calls": timer.calls, "score_cpu_s": round(timer.cpu_s, 3),
           "score_share": round(timer.cpu_s / cpu, 3) if cpu else None}
    if breakdown:
        own = dict(stages.self_s)
        # scoring runs inside the engine's step only: its time is taken out of the step's
        own["CartReconciler.step"] = own.get("CartReconciler.step", 0.0) - timer.cpu_s
        own["scoring"] = timer.cpu_s
        res["cpu_self_s"] = {k: round(v, 3) for k, v in sorted(own.items(), key=lambda kv: -kv[1])}
    # CPU time is the figure that survives a shared machine; wall time includes the fsyncs
    print(f"handler in-process, {n_skus} SKUs: {res['events_per_s']} events/s wall, {res['events_per_cpu_s']} per "
          f"CPU-second ({n} events + {answers} answers, {batches} commits, baskets end at {lines:.0f} lines); "
          f"scoring: {res['score_cpu_s']} s CPU ({res['score_share']:.0%}) in {timer.calls} calls; {scored}")
    return res
