"""cart-fleet: a chain's stores bridged to head office (docs/fleet.md).

Modules, one job each:
- topics.py   the topic layout on the store broker and on the central broker
- cli.py      `cart-fleet <subcommand>`: a registry each subcommand module joins
- rollout*.py model / catalogue publishing and rollback (publisher side)
"""
