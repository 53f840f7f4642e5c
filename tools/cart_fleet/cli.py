"""cart-fleet: the head-office side of a chain's stores (docs/fleet.md).

  cart-fleet consume --broker HOST:PORT --db DSN [--group ledger]
  cart-fleet receipts --db DSN --store s001 --day 2026-12-01 [--json]
  cart-fleet rates --db DSN [--store s001] [--day 2026-12-01] [--json]
  cart-fleet bench [--json]

Subcommands live in their own modules. Each module in COMMAND_MODULES has
`register(sub)`, which adds its parser(s) with `sub.add_parser(...)` and sets
`fn=<callable(args) -> int>` as the parser's default. To add a subcommand, add
its module's name to COMMAND_MODULES (one line).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from cart_fleet.errors import FleetError

COMMAND_MODULES: tuple[str, ...] = (
    "cart_fleet.central",
    "cart_fleet.consumer",
    "cart_fleet.queries",
    "cart_fleet.bench",
    "cart_fleet.sizing",
    # rollout (publish / rollback) modules go below this line
    "cart_fleet.rollout_cli",
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cart-fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except FleetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
