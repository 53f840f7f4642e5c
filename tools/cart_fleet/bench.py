"""`cart-fleet bench [--json]`: receipts/s into the ledger with 1 and 2 consumers
against a bare paho subscriber on the same broker, checkout -> ledger latency."""
from __future__ import annotations

import argparse
import json


def cmd_bench(a: argparse.Namespace) -> int:
    from cart_fleet.benchrun import run_bench
    res = run_bench(a.n, a.latency_n)
    if a.json:
        print(json.dumps(res, sort_keys=True))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="receipts/s stored (1 and 2 consumers vs bare paho), checkout -> ledger latency")
    p.add_argument("-n", type=int, default=3000, help="receipt records per throughput run")
    p.add_argument("--latency-n", type=int, default=200, help="checkouts for the latency run (10/s)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    p.set_defaults(fn=cmd_bench)
