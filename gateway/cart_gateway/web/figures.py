"""The store's figures, from the gateway's own records (docs/web.md, Figures).

- baskets: receipts issued (the `receipts` table);
- items: product units on those receipts (personal items are not items);
- human reviews per 1,000 baskets: reviews opened (`reviews`) / baskets;
- shopper prompts per 100 items: `ask` decisions (the decision log) / items;
- median time to clear a review: from the review's opening to the gateway's
  `verdict` decision naming it, both on the gateway's receive clock.

Days are the store's calendar days (config `timezone`). The figures are kept
until the gateway's records change (a new decision, review or receipt) or the
day does, so a store view refreshed by many tablets costs one pass per change.
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .gwstate import GatewayState


@dataclass(frozen=True)
class Period:
    label: str
    t0_ms: int
    t1_ms: int
    baskets: int
    items: int
    reviews: int
    prompts: int
    cleared: int
    median_clear_s: float | None

    @property
    def reviews_per_1000_baskets(self) -> float | None:
        return 1000.0 * self.reviews / self.baskets if self.baskets else None

    @property
    def prompts_per_100_items(self) -> float | None:
        return 100.0 * self.prompts / self.items if self.items else None


def _items(receipt: dict) -> int:
    return sum(int(ln.get("qty", 1)) for ln in receipt.get("lines", [])
               if ln.get("sku") and ln.get("status", "accepted") == "accepted")


def period(gs: GatewayState, label: str, t0: int, t1: int) -> Period:
    receipts = gs.receipts_between(t0, t1)
    reviews = len(gs.review_times_between(t0, t1))
    prompts = gs.count_decisions_between("ask", t0, t1)
    verdicts = [(t, d.get("review_id")) for t, d in gs.decisions_between("verdict", t0, t1) if d.get("review_id")]
    opened = gs.review_opened_ms([r for _, r in verdicts])
    waits = [(t - opened[r]) / 1000.0 for t, r in verdicts if r in opened and t >= opened[r]]
    return Period(label, t0, t1, len(receipts), sum(_items(r) for _, r in receipts), reviews, prompts,
                  len(waits), round(statistics.median(waits), 1) if waits else None)


class Figures:
    def __init__(self, gs: GatewayState, timezone: str = "UTC"):
        self.gs, self.tz = gs, ZoneInfo(timezone)
        self._cache: tuple[tuple, tuple[Period, Period, list[Period]]] | None = None
        self._lock = threading.Lock()

    def compute(self, now_ms: int | None = None) -> tuple[Period, Period, list[Period]]:
        """(today, the last 7 days, one Period per day of those 7, oldest first)."""
        with self._lock:
            now = datetime.fromtimestamp((now_ms or time.time() * 1000) / 1000, self.tz)
            key = (now.date(), self.gs.records_mark())
            if now_ms is None and self._cache and self._cache[0] == key:
                return self._cache[1]
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            days = []
            for k in range(6, -1, -1):
                d0 = midnight - timedelta(days=k)
                d1 = d0 + timedelta(days=1)
                days.append(period(self.gs, d0.strftime("%a %d"), int(d0.timestamp() * 1000),
                                   int(d1.timestamp() * 1000)))
            t0 = days[0].t0_ms
            week = period(self.gs, "last 7 days", t0, days[-1].t1_ms)
            out = (days[-1], week, days)
            if now_ms is None:
                self._cache = (key, out)
            return out
