"""Checks on what the boards published, shared by the tests."""
from __future__ import annotations

import json


def identity(ev: dict) -> str:
    return f"{ev['cart']}/{ev['board']}/{ev['epoch']}/{ev['seq']}"  # protocol §5


def dedupe(events: list[dict]) -> tuple[list[dict], int]:
    """Events by identity in first-arrival order, and the number of duplicates.
    A duplicate must be byte-for-byte the same event (same identity, same content)."""
    seen: dict[str, dict] = {}
    dups = 0
    for ev in events:
        k = identity(ev)
        if k in seen:
            dups += 1
            if json.dumps(seen[k], sort_keys=True) != json.dumps(ev, sort_keys=True):
                raise AssertionError(f"duplicate identity {k} with different content:\n{seen[k]}\n{ev}")
        else:
            seen[k] = ev
    return list(seen.values()), dups


def check_no_gaps(events: list[dict]) -> dict[int, tuple[int, int]]:
    """Within each epoch the seqs seen form one unbroken run. Returns
    {epoch: (first, last)}."""
    by_epoch: dict[int, list[int]] = {}
    for ev in events:
        by_epoch.setdefault(ev["epoch"], []).append(ev["seq"])
    out = {}
    for epoch, seqs in by_epoch.items():
        s = sorted(seqs)
        missing = sorted(set(range(s[0], s[-1] + 1)) - set(s))
        if missing:
            raise AssertionError(f"epoch {epoch}: events lost, seq {missing} missing between {s[0]} and {s[-1]}")
        out[epoch] = (s[0], s[-1])
    return out


def check_order(events: list[dict]) -> None:
    """Arrival order within an epoch follows seq (one event in flight)."""
    last: dict[int, int] = {}
    for ev in events:
        e, s = ev["epoch"], ev["seq"]
        if e in last and s <= last[e]:
            raise AssertionError(f"epoch {e}: seq {s} arrived after seq {last[e]}")
        last[e] = s


def readings(events: list[dict]) -> list[dict]:
    """The weight readings a gateway counts (protocol §6.1): a final event (`replaces`) takes the
    place of the provisional it names, in the provisional's position."""
    out: list[dict] = []
    for e in events:
        if e.get("type") != "weight":
            continue
        at = [i for i, x in enumerate(out) if e.get("replaces") is not None and x["seq"] == e["replaces"]
              and x.get("epoch") == e.get("epoch")]
        if at:
            out[at[0]] = e
        else:
            out.append(e)
    return out
