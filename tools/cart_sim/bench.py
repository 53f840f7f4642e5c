"""`cart-sim bench`: run N baskets in fast mode and print the store's figures.

The last line printed is one JSON object (docs/simulation.md "Figures").
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass

from .fastsim import ORACLES, BasketResult, RunTotals, run_baskets
from .judge import judge_receipt
from .scenario import gateway_overrides, load_scenario


@dataclass(frozen=True)
class Goal:
    limit: float
    unit: str = ""
    per_1000_baskets: bool = False    # the limit is for 1,000 baskets (a time budget)

    def met(self, value, baskets: int) -> bool:
        scale = 1000.0 / baskets if self.per_1000_baskets and baskets else 1.0
        return value is not None and value * scale <= self.limit

    def text(self) -> str:
        return f"goal <= {self.limit:g}{self.unit}" + (" per 1,000 baskets" if self.per_1000_baskets else "")


# The product's goals (README, docs/simulation.md "Figures").
GOALS = {
    "human_reviews_per_1000_baskets": Goal(10),
    "shopper_prompts_per_100_items": Goal(2),
    "wrong_baskets_per_1000": Goal(1),
    "wall_s": Goal(300, " s", per_1000_baskets=True),
    "max_receipt_ms": Goal(1000, " ms"),     # the demo's: a receipt at the exit in under a second
}
HEADLINE = ("baskets", "items", *GOALS)


def summarise(results, scenario: dict, seed: int, oracles=(), totals: RunTotals | None = None,
              wall_s: float = 0.0) -> dict:
    lat = sorted(x for r in results for x in r.latencies_ms)
    mlat = sorted(x for r in results for x in r.move_latencies_ms)
    tot = totals or RunTotals()

    def pct(q, a=lat):
        return round(a[min(len(a) - 1, int(q * len(a)))], 1) if a else None

    return {
        "scenario": scenario["name"], "seed": seed, "oracles": sorted(oracles),
        **({"overrides": scenario["overrides"]} if scenario.get("overrides") else {}),
        **({"gateway_overrides": scenario["gateway_overrides"]} if scenario.get("gateway_overrides") else {}),
        **basket_figures(results),
        "p50_decision_latency_ms": pct(0.5), "p95_decision_latency_ms": pct(0.95),
        "p50_movement_to_decision_ms": pct(0.5, mlat), "p95_movement_to_decision_ms": pct(0.95, mlat),
        **reviewer_figures(results),
        # windows the scale opened that no weight event closed (the gateway drops them: unsettled_expire_ms)
        "unsettled_without_weight": sum(r.unsettled_without_weight for r in results),
        "pool_scenes_rendered": tot.pool_rendered,
        "gateway_s": round(tot.gateway_s, 2), "detector_stage_s": round(tot.detector_s, 2),
        "pool_render_s": round(tot.pool_render_s, 2),
        "workers": tot.workers, "gateways": tot.chunks,
        "gateway_refused_messages": dict(sorted(tot.refused.items())),   # bad_input by reason: 0 expected
        "wall_s": round(wall_s, 2), "cpu_s": round(tot.cpu_s, 2),
        **({"stills": tot.stills.summary()} if tot.stills is not None else {}),
    }


def reviewer_figures(results) -> dict:
    """The reviewer model's figures (cart_sim/reviewers.py) and how often a prompt came after the
    shopper had already done something else (they answer about what they did last)."""
    clear = sorted(x for r in results for x in r.review_clear_ms)

    def pct_s(q):
        return round(clear[min(len(clear) - 1, int(q * len(clear)))] / 1000.0, 1) if clear else None

    return {"review_clear_s_p50": pct_s(0.5), "review_clear_s_p95": pct_s(0.95),
            "reviewer_errors": sum(r.reviewer_errors for r in results),
            "reviewer_slips": sum(r.reviewer_slips for r in results),
            "reviews_cleared_at_cart": sum(r.reviews_at_cart for r in results),
            "prompts_on_earlier_action": sum(r.prompts_on_earlier_action for r in results),
            "camera_retakes": sum(r.camera_retakes for r in results)}


def basket_figures(results) -> dict:
    """The figures of a set of scored baskets (the fast simulation's, or a replay's against its truth)."""
    n = len(results)
    items = sum(r.items for r in results)
    honest = [r for r in results if not r.dishonest]
    cheaters = [r for r in results if r.dishonest and r.cheats]
    per_k = 1000.0 / n if n else 0.0
    loss = [r for r in cheaters if r.under_cents > 0]
    simple = [r for r in honest if r.multi_sku_moves == 0]
    return {
        "baskets": n, "items": items,
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
        # each wrong honest basket once, by the decision that charged its first wrong action (wrong_causes.py)
        "wrong_by_cause": wrong_by_cause(honest),
        "wrong_actions_by_decision": _top(Counter(c for r in honest for c in r.decision_causes_wrong), 30),
        "wrong_baskets_without_a_wrong_action": sum(1 for r in honest if r.wrong and not r.causes),
        "wrong_actions_by_cause": _top(Counter(c for r in honest for c in r.causes)),
        "prompts_by_action": _top(sum((r.prompts_by for r in results), Counter())),
        "reviews_by_action": _top(sum((r.reviews_by for r in results), Counter())),
        # why each ask and review was decided (the decision log's cause): "<action>: <outcome>: <cause>"
        "asks_and_reviews_by_cause": _top(sum((r.decision_causes for r in results), Counter()), 30),
        "unattributed_basket_changes": sum(r.unattributed_effects for r in results),
    }


def wrong_by_cause(honest) -> dict:
    """Wrong honest baskets by cause, most first; the counts sum to the wrong baskets."""
    c = Counter(r.decision_causes_wrong[0] if r.decision_causes_wrong else
                "no wrong action (a charge of a movement no action made)" for r in honest if r.wrong)
    return dict(c.most_common())


def _top(c: Counter, n: int = 15) -> dict:
    """The n most common, then everything else summed as "other"."""
    top = c.most_common(n)
    rest = sum(c.values()) - sum(v for _, v in top)
    out = {k: v for k, v in top}
    if rest:
        out["other"] = rest
    return out


def figure_lines(out: dict, keys=None) -> list[str]:
    """`figure: value` lines, each goal beside its figure (met / MISSED)."""
    keys = list(out) if keys is None else [k for k in keys if k in out]
    width = max((len(k) for k in keys), default=0)
    lines = []
    for k in keys:
        line = f"{k:>{width}}: {out[k]}"
        goal = GOALS.get(k)
        if goal is not None:
            verdict = "met" if goal.met(out[k], out.get("baskets", 0)) else "MISSED"
            line = f"{line:<{width + 12}}  {goal.text()}: {verdict}"
        lines.append(line)
    return lines


def score_replay(result: dict, truth: dict, catalogue) -> dict:
    """Figures of a replay (`cart-gateway replay`) against the truth of its trace
    (`cart-sim trace`), scored as the bench scores its baskets."""
    receipts: dict[str, dict] = {}
    for rc in result.get("receipts", []):
        if rc.get("ok") or rc.get("cart") not in receipts:
            receipts[rc.get("cart")] = rc
    outcomes: dict[str, Counter] = {}
    for d in result.get("decisions", []):
        outcomes.setdefault(d.get("cart"), Counter())[d.get("outcome")] += 1
    scored = []
    for b in truth["baskets"]:
        if "contents" not in b:
            raise ValueError("truth file has no basket contents: write it again with this version of cart-sim trace")
        j = judge_receipt(catalogue, Counter(b["contents"]["units"]), Counter(b["contents"]["produce_cents"]),
                          b["truth_cents"], receipts.get(b["cart"]))
        seen = outcomes.get(b["cart"], Counter())
        r = BasketResult(b["cart"], b["dishonest"], b["items"], prompts=seen["ask"], reviews=seen["review"],
                         receipt_ok=j.receipt_ok, wrong=j.wrong, over_cents=j.over_cents, under_cents=j.under_cents,
                         truth_cents=b["truth_cents"], charged_cents=j.charged_cents, cheats=list(b["cheats"]),
                         multi_sku_moves=b.get("multi_sku_moves", 0), detail=j.detail)
        scored.append(r)
    return {"scenario": truth.get("scenario"), "seed": truth.get("seed"), **basket_figures(scored)}


class _Progress:
    """A rich progress bar with time left on stderr when it is a terminal; else a
    line every tenth. Never on stdout (its last line is the JSON)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.t0 = total, time.time()
        self.bar = None
        self.quiet = quiet
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self.bar = Progress(TextColumn("baskets"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True),
                                transient=True)
            self.task = self.bar.add_task("bench", total=total)
            self.bar.start()

    def __call__(self, i: int, n: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=i)
        elif not self.quiet and (i % max(1, n // 10) == 0 or i == n):
            el = time.time() - self.t0
            print(f"  {i}/{n} baskets, {el:.0f} s, about {el / i * (n - i):.0f} s left", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def main_bench(args) -> int:
    sc = load_scenario(args.scenario, getattr(args, "set", ()))
    if getattr(args, "gateway", None):
        sc["gateway"] = gateway_overrides(args.gateway)       # travels with the scenario to each worker
        sc["gateway_overrides"] = list(args.gateway)
    oracles = [o.strip() for o in (getattr(args, "oracle", "") or "").split(",") if o.strip()]
    bad = sorted(set(oracles) - set(ORACLES))
    if bad:
        print(f"cart-sim: --oracle: unknown oracle {bad[0]!r} (choose from {', '.join(ORACLES)})", file=sys.stderr)
        return 2
    from .world import ScenePool, load_catalogue
    from cart_gateway.catalogue import CatalogueError
    t_cat = time.perf_counter()
    try:
        cat = load_catalogue(getattr(args, "catalogue", None))
    except CatalogueError as e:
        print(f"cart-sim: --catalogue: {e}", file=sys.stderr)
        return 2
    t_cat = time.perf_counter() - t_cat
    pool_seed = args.seed if getattr(args, "pool_seed", None) is None else args.pool_seed
    pool = ScenePool(cat, sc["camera"], seed=pool_seed)
    t0 = time.time()
    progress = _Progress(args.baskets, quiet=args.json)
    try:
        res, totals = run_baskets(sc, args.seed, args.baskets, oracles, workers=getattr(args, "workers", None),
                                  catalogue=cat, progress=progress, pool=pool)
    finally:
        progress.close()
    out = summarise(res, sc, args.seed, oracles, totals, time.time() - t0)
    out.update(pool.figures(), catalogue={"name": getattr(args, "catalogue", None) or "packaged",
                                         "skus": len(cat), "load_s": round(t_cat, 2)})
    if getattr(args, "show_wrong", False):
        for r in res:
            if r.wrong or (r.dishonest and r.under_cents):
                print(json.dumps({"cart": r.cart, "dishonest": r.dishonest, "cheats": r.cheats,
                                  "over": r.over_cents, "under": r.under_cents, "causes": r.causes,
                                  "camera_retakes": r.camera_retakes, **r.detail}))
    if not args.json:
        for line in figure_lines(out):
            print(line)
    print(json.dumps(out, sort_keys=True))
    return 0
