"""`cart-sim bench`: run N baskets in fast mode and print the store's figures.

The last line printed is one JSON object (docs/simulation.md "Figures").
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter

from .fastsim import Store
from .scenario import load_scenario


def summarise(results, store: Store, wall_s: float) -> dict:
    n = len(results)
    items = sum(r.items for r in results)
    honest = [r for r in results if not r.dishonest]
    cheaters = [r for r in results if r.dishonest and r.cheats]
    lat = sorted(x for r in results for x in r.latencies_ms)
    mlat = sorted(x for r in results for x in r.move_latencies_ms)

    def pct(q, a=lat):
        return round(a[min(len(a) - 1, int(q * len(a)))], 1) if a else None

    per_k = 1000.0 / n if n else 0.0
    loss = [r for r in cheaters if r.under_cents > 0]
    simple = [r for r in honest if r.multi_sku_moves == 0]
    return {
        "scenario": store.sc["name"], "seed": store.seed, "baskets": n, "items": items,
        "human_reviews_per_1000_baskets": round(sum(r.reviews for r in results) * per_k, 2),
        "shopper_prompts_per_100_items": round(100.0 * sum(r.prompts for r in results) / items, 2) if items else 0.0,
        "wrong_baskets_per_1000": round(sum(1 for r in results if r.wrong and not r.dishonest) * per_k, 2),
        "wrong_baskets_all_per_1000": round(sum(1 for r in results if r.wrong) * per_k, 2),
        "honest_baskets_without_multi_sku_moves": len(simple),
        "wrong_baskets_without_multi_sku_moves_per_1000": round(
            1000.0 * sum(1 for r in simple if r.wrong) / len(simple), 2) if simple else None,
        "overcharged_baskets_per_1000": round(sum(1 for r in results if r.over_cents > 0) * per_k, 2),
        "undercharged_honest_baskets_per_1000": round(sum(1 for r in honest if r.under_cents > 0) * per_k, 2),
        "undetected_loss_per_1000": round(len(loss) * per_k, 2),
        "undetected_loss_cents": sum(r.under_cents for r in loss),
        "dishonest_baskets": len(cheaters),
        "dishonest_acts": sum(len(r.cheats) for r in cheaters),
        "dishonest_acts_by_kind": dict(sorted(Counter(c for r in cheaters for c in r.cheats).items())),
        "checkout_refused_baskets": sum(1 for r in results if not r.receipt_ok),
        # diagnosis (docs/simulation.md §6): which actions end wrong, and where prompts / reviews come from
        "wrong_basket_causes": _top(Counter(c for r in honest if r.wrong for c in set(r.causes))),
        "wrong_baskets_without_a_wrong_action": sum(1 for r in honest if r.wrong and not r.causes),
        "wrong_actions_by_cause": _top(Counter(c for r in honest for c in r.causes)),
        "prompts_by_action": _top(sum((r.prompts_by for r in results), Counter())),
        "reviews_by_action": _top(sum((r.reviews_by for r in results), Counter())),
        "unattributed_basket_changes": sum(r.unattributed_effects for r in results),
        "p50_decision_latency_ms": pct(0.5), "p95_decision_latency_ms": pct(0.95),
        "p95_movement_to_decision_ms": pct(0.95, mlat),
        "stale_unsettled_dropped": store.feed.stale_unsettled_dropped,
        "pool_scenes_rendered": store.pool.rendered,
        "gateway_s": round(store.engine_s, 2), "pool_render_s": round(store.pool.render_s, 2),
        "wall_s": round(wall_s, 2),
        **({"stills": store.stills.summary()} if getattr(store, "stills", None) else {}),
    }


def _top(c: Counter, n: int = 15) -> dict:
    """The n most common, then everything else summed as "other"."""
    top = c.most_common(n)
    rest = sum(c.values()) - sum(v for _, v in top)
    out = {k: v for k, v in top}
    if rest:
        out["other"] = rest
    return out


def main_bench(args) -> int:
    sc = load_scenario(args.scenario)
    store = Store(sc, args.seed)
    t0 = time.time()

    def progress(i, n):
        if not args.json and (i % 50 == 0 or i == n):
            print(f"  {i}/{n} baskets, {time.time() - t0:.0f} s", file=sys.stderr)
    res = store.run(args.baskets, progress=progress)
    out = summarise(res, store, time.time() - t0)
    if getattr(args, "show_wrong", False):
        for r in res:
            if r.wrong or (r.dishonest and r.under_cents):
                print(json.dumps({"cart": r.cart, "dishonest": r.dishonest, "cheats": r.cheats,
                                  "over": r.over_cents, "under": r.under_cents, **r.detail}))
    if not args.json:
        for k, v in out.items():
            print(f"{k:>40}: {v}")
    print(json.dumps(out, sort_keys=True))
    return 0
