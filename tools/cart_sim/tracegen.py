"""`cart-sim trace`: the fast simulation's messages as a §14 trace, plus the truth.

trace.jsonl: header, then every message the boards, the screen (answers,
checkout) and the review station (verdicts) sent, in send order, frames as
real JPEG chunks (cartfw.framing), or with `real_frames=False` as the fast
mode's stand-in frames (replay them with fastsim.PoolDetector as the
detector). A scenario whose camera takes stills gets them as the board sends
them: rendered at its still_res, chunked as §7.1 stills (stills.py). truth.json: per basket what was really in the cart and the receipt
the in-process gateway (the real service, one for the whole trace) published,
so a replay can be checked.
"""
from __future__ import annotations

import json
from pathlib import Path

from cart_gateway.catalogue import Catalogue
from cart_gateway.protocol import trace_line

from .bench import summarise
from .fastsim import GW, WALL0, RunTotals, run_chunk, scene_pool
from .scenario import load_scenario
from .stills import StillPool


def write_trace(scenario: dict, baskets: int, seed: int, out_dir, real_frames: bool = True,
                pool=None) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / "trace.jsonl", "w", encoding="utf-8")
    f.write(json.dumps({"trace": 1, "created_ms": WALL0, "source": f"cart-sim trace {scenario['name']} seed={seed}",
                        "gateway_id": GW},
                       separators=(",", ":")) + "\n")

    def sink(t_ms, topic, qos, retain, payload):
        f.write(trace_line(t_ms, topic, qos, retain, payload) + "\n")
    pool = pool or scene_pool(Catalogue.load(), scenario, seed)
    try:
        chunk = run_chunk(scenario, seed, 0, baskets, catalogue=pool.cat, sink=sink, frames=real_frames, pool=pool)
    finally:
        f.close()
    pool.save()
    res = chunk.results
    truth = {"scenario": scenario["name"], "seed": seed, "baskets": []}
    for r in res:
        rc = r.receipt or {}
        truth["baskets"].append({
            "cart": r.cart, "dishonest": r.dishonest, "cheats": r.cheats, "items": r.items,
            "truth_cents": r.truth_cents, "charged_cents": r.charged_cents, "wrong": r.wrong,
            "contents": {"units": r.truth_units, "produce_cents": r.truth_produce_cents},
            "multi_sku_moves": r.multi_sku_moves,
            "receipt": {"ok": rc.get("ok"), "total_cents": rc.get("total_cents"),
                        "lines": [{k: ln[k] for k in ("sku", "qty", "price_cents", "status")}
                                  for ln in rc.get("lines", [])]}})
    tot = RunTotals(gateway_s=chunk.gateway_s)
    if scenario["camera"]["still"]:    # the stills' reads, as the bench reports them
        tot.stills = StillPool(pool.cat, scenario["camera"], seed=0)
        tot.stills.stats.update(chunk.stills_stats)
        tot.stills.rendered, tot.stills.render_s = chunk.stills_rendered, chunk.stills_render_s
    truth["summary"] = summarise(res, scenario, seed, (), tot, 0.0)
    (out / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True), encoding="utf-8")
    return truth


def main_trace(args) -> int:
    sc = load_scenario(args.scenario)
    t = write_trace(sc, args.baskets, args.seed, args.out)
    print(json.dumps({"out": str(args.out), "baskets": len(t["baskets"])}))
    return 0
