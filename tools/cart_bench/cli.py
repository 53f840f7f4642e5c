"""`cart-bench reconcile|handler|ingest|latency|frames|recovery|book [--json]`.

Measurements, not pass/fail. Each bench prints its figures; with `--json` the last line
is one JSON object with all of them (docs/gateway.md, docs/reconciliation.md).
"""
from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cart-bench", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="name", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
        return p
    p = cmd("reconcile", "the engine alone: time per weight event and answer")
    p.add_argument("--skus", type=int, default=317, help="synthetic store catalogue size")
    p.add_argument("--moves", type=int, default=400)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--basket-items", type=int, default=0,
                   help="check out at this many items, next basket on a fresh cart (0: one basket)")
    p = cmd("handler", "the gateway's handlers in-process, no broker: events per CPU-second")
    p.add_argument("-n", type=int, default=6000, help="events")
    p.add_argument("--batch", type=int, default=64, help="messages per commit")
    p.add_argument("--skus", type=int, default=0, help="synthetic store catalogue size (0: the packaged one)")
    p.add_argument("--profile", metavar="FILE", help="write a cProfile of the measured loop to FILE")
    p.add_argument("--breakdown", action="store_true", help="thread-CPU self time of the named stages")
    p = cmd("ingest", "events/s through Mosquitto: the gateway vs a bare paho subscriber")
    p.add_argument("-n", type=int, default=6000, help="events")
    p.add_argument("--mode", choices=["live", "queued"], default="live",
                   help="publish while subscribed, or drain a queue built while offline")
    p.add_argument("--publishers", type=int, default=1, help="publisher connections")
    p.add_argument("--profile", metavar="FILE", help="queued: run the gateway under cProfile, stats to FILE")
    p.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL", help="sqlite_synchronous")
    p = cmd("latency", "weight event published -> basket received")
    p.add_argument("-n", type=int, default=300, help="events")
    p.add_argument("--settle-ms", type=int, default=300, help="pause between unsettled and weight")
    p.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL", help="sqlite_synchronous")
    p = cmd("frames", "frames/s through reassembly, detection and barcodes")
    p.add_argument("-n", type=int, default=40, help="bursts")
    p = cmd("recovery", "kill -9 under load: seconds to resume, lost, counted twice")
    p.add_argument("-n", type=int, default=400, help="movements per cart")
    p = cmd("book", "the WeightBook saved after a batch that learned a few SKUs: CPU ms per save")
    p.add_argument("--skus", type=int, default=30000, help="learned SKUs (a synthetic catalogue)")
    p.add_argument("--changed", type=int, default=5, help="SKUs the batch learned")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.name == "reconcile":
        from .reconcile import bench_reconcile
        res = bench_reconcile(args.skus, args.moves, args.seed, args.basket_items)
    elif args.name == "handler":
        from .handler import bench_handler
        res = bench_handler(args.n, args.batch, skus=args.skus, profile=args.profile, breakdown=args.breakdown)
    elif args.name == "ingest":
        from .ingest import bench_ingest
        res = bench_ingest(args.n, mode=args.mode, publishers=args.publishers, profile=args.profile, sync=args.sync)
    elif args.name == "latency":
        from .latency import bench_latency
        res = bench_latency(args.n, settle_ms=args.settle_ms, sync=args.sync)
    elif args.name == "frames":
        from .frames import bench_frames
        res = bench_frames(args.n)
    elif args.name == "book":
        from .book import bench_book
        res = bench_book(args.skus, args.changed)
    else:
        from .recovery import bench_recovery
        res = bench_recovery(args.n)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
