"""cart-sim: the virtual store (bench, trace) and the virtual boards (board, demo)."""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cart-sim")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="fast mode: N baskets, print the store's figures (last line JSON)")
    b.add_argument("--scenario", default="default", help="shipped name (default, rush-hour, hard) or a TOML path")
    b.add_argument("--baskets", type=int, default=100)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--json", action="store_true", help="print only the JSON line")
    b.add_argument("--catalogue", default=None, metavar="FILE|store-20k", help=(
        "a catalogue file (the gateway's schema) or a generated store (store-20k: 20,000 SKUs); "
        "default the packaged 317"))
    b.add_argument("--pool-seed", type=int, default=None, help="the scene pool's seed (default: --seed)")
    b.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=(
        "override one scenario key for this run (repeatable), e.g. --set sensor.noise_g=2.0"))
    b.add_argument("--gateway", action="append", default=[], metavar="SECTION.KEY=VALUE", help=(
        "set one of the gateway's own settings for this run (repeatable), as in its config file, "
        "e.g. --gateway reconcile.accept_posterior=0.9: a threshold's effect on the figures"))
    b.add_argument("--show-wrong", action="store_true", help="print each wrong basket before the figures")
    b.add_argument("--oracle", default="", metavar="LIST", help=(
        "comma-separated truth sources to measure the decision logic's floor: vision (the detector returns "
        "the truth at 0.99), scale (no noise, spikes, drift, pushes, bumps or resting hands), shopper (no slips), reviewer (every verdict is the truth)"))
    b.add_argument("--workers", type=int, default=None, metavar="N", help=(
        "processes (default: one per core); baskets run in chunks of 100 on a fresh gateway each, "
        "so the figures do not depend on N"))
    t = sub.add_parser("trace", help="write trace.jsonl (protocol §14) and truth.json")
    t.add_argument("--scenario", default="default")
    t.add_argument("--baskets", type=int, default=5)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--out", required=True)
    from .virtual_board import add_board_arguments
    add_board_arguments(sub.add_parser("board", help="run one virtual board in the foreground"))
    from .demo import add_arguments as add_demo_arguments
    add_demo_arguments(sub.add_parser("demo", help="the live virtual store: real processes, a rich view, receipts"))
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd in ("bench", "trace") and args.baskets < 1:
        print("cart-sim: --baskets must be >= 1", file=sys.stderr)
        return 2
    if args.cmd == "bench" and args.workers is not None and args.workers < 1:
        print("cart-sim: --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.cmd == "bench":
            from .bench import main_bench
            return main_bench(args)
        if args.cmd == "trace":
            from .tracegen import main_trace
            return main_trace(args)
    except Exception as e:   # a bad scenario file: say which key, no traceback
        from .scenario import ScenarioError
        if isinstance(e, ScenarioError):
            print(f"cart-sim: {e}", file=sys.stderr)
            return 2
        raise
    if args.cmd == "board":
        from cart_sim.virtual_board import main_board
        return main_board(args) or 0
    from cart_sim.demo import main as demo_main
    return demo_main(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
