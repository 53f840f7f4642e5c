"""`cart-fleet receipts` and `cart-fleet rates`: what head office asks the ledger."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import date

from cart_fleet import ledger


def _day(v: str) -> date:
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r}: expected YYYY-MM-DD") from None


def cmd_receipts(a: argparse.Namespace) -> int:
    with ledger.connect(a.db) as conn:
        rows = ledger.receipts_of(conn, a.store, a.day)
    for r in rows:
        print(f"{r.receipt_id}  cart {r.cart}  {r.total_cents / 100:.2f}  {r.items} items  "
              f"{r.prompts} prompts  {r.reviews} reviews")
    print(f"{len(rows)} receipts of store {a.store} on {a.day}")
    if a.json:
        print(json.dumps({"store": a.store, "day": a.day.isoformat(), "count": len(rows),
                          "receipts": [asdict(r) for r in rows]}, sort_keys=True))
    return 0


def cmd_rates(a: argparse.Namespace) -> int:
    with ledger.connect(a.db) as conn:
        rows = ledger.rates(conn, a.store, a.day)
    out = []
    for r in rows:
        print(f"{r.store} {r.day}: {r.baskets} baskets, {r.reviews_per_1000_baskets} reviews / 1,000 baskets, "
              f"{r.prompts_per_100_items} prompts / 100 items")
        out.append({"store": r.store, "day": r.day.isoformat(), "baskets": r.baskets, "items": r.items,
                    "reviews": r.reviews, "prompts": r.prompts,
                    "reviews_per_1000_baskets": r.reviews_per_1000_baskets,
                    "prompts_per_100_items": r.prompts_per_100_items})
    if a.json:
        print(json.dumps({"rates": out}, sort_keys=True))
    return 0


def register(sub) -> None:
    p = sub.add_parser("receipts", help="which receipts of store S on day D")
    p.add_argument("--db", required=True, help="PostgreSQL conninfo")
    p.add_argument("--store", required=True)
    p.add_argument("--day", type=_day, required=True, help="the store's business day, YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(fn=cmd_receipts)
    p = sub.add_parser("rates", help="reviews per 1,000 baskets (and prompts per 100 items) per store per day")
    p.add_argument("--db", required=True, help="PostgreSQL conninfo")
    p.add_argument("--store")
    p.add_argument("--day", type=_day)
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(fn=cmd_rates)
