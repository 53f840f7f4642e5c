"""Where fleet messages live (docs/fleet.md §Topics).

On a store broker everything the bridge may carry sits under one subtree of the
gateway, `gateway/<gw>/fleet/`: `out/<kind>` goes to head office, `in/<kind>`
comes from it. The bridge maps that subtree, and nothing else, onto the store's
prefix on the central broker, `stores/<store>/out|in/<kind>`; chain-wide
updates arrive from `chain/in/<kind>`. Frames (`carts/+/cam/frame`) and review
requests (`gateway/<gw>/review/new`, they name frames) are outside the subtree,
so no bridge line can reach them.

Rollout (rollout.py, docs/protocol.md §17) keeps one name on both brokers:
`fleet/in/<store>/rollout/...` and `fleet/in/all/rollout/...` in,
`fleet/out/<store>/rollout/...` out; the bridge carries those three subtrees
unchanged (the central ACL binds each store to its own).
"""
from __future__ import annotations

from enum import Enum


class Out(str, Enum):
    """Store -> head office."""
    RECEIPT = "receipt"    # one ledger record per receipt: the receipt + its basket summary
    FIGURES = "figures"    # review / prompt / basket counts of the store's day so far
    HEALTH = "health"      # the gateway's health (carts online, queue depths, uptime)
    BRIDGE = "bridge"      # the bridge's own connection state (Mosquitto notifications)


class In(str, Enum):
    """Head office -> store (models and catalogues: the rollout topics below)."""
    ACK = "ack"            # the ledger committed these receipt ids (consumer -> gateway)
    CONFIG = "config"
    PRICES = "prices"


def rollout_in(store: str) -> str:
    """`all` for the chain-wide one."""
    return f"fleet/in/{store}/rollout/#"


def rollout_out(store: str) -> str:
    return f"fleet/out/{store}/rollout/#"


def store_out(gateway: str, kind: Out) -> str:
    return f"gateway/{gateway}/fleet/out/{kind.value}"


def store_in(gateway: str, kind: In) -> str:
    return f"gateway/{gateway}/fleet/in/{kind.value}"


def local_prefix(gateway: str) -> str:
    return f"gateway/{gateway}/fleet/"


def remote_prefix(store: str) -> str:
    return f"stores/{store}/"


CHAIN_PREFIX = "chain/"


def central_out(store: str, kind: Out) -> str:
    """`+` for store: every store's topic (a consumer's subscription)."""
    return f"stores/{store}/out/{kind.value}"


def central_in(store: str, kind: In) -> str:
    return f"stores/{store}/in/{kind.value}"


def chain_in(kind: In) -> str:
    return f"chain/in/{kind.value}"


def store_of(central_topic: str) -> str:
    """The store id of a central `stores/<store>/...` topic."""
    parts = central_topic.split("/")
    if len(parts) < 4 or parts[0] != "stores":
        raise ValueError(f"not a store topic: {central_topic!r}")
    return parts[1]
