"""`cart-fleet sizing --trace FILE`: events and bytes per store per day, what stays
in the store and what crosses the bridge, from a virtual-store trace (`cart-sim trace`).

Store side: every message of the trace by kind (frames are ~98 % of the bytes and
never leave). Bridge side: each paid basket of the trace's truth.json is written as a ledger
record by the gateway's own builder (cart_gateway.fleet) and measured; figures
and health are one each per `figures_interval_s` (~330 and ~200 bytes). Scaled to `--baskets-per-day` (an estimate, see docs/fleet.md)."""
from __future__ import annotations

import argparse
import collections
import json
import sqlite3
from pathlib import Path

MQTT_OVERHEAD = 2 + 2 + 2    # fixed header, topic length, packet id; the topic itself is added per message


def _kind(topic: str) -> str:
    parts = topic.split("/")
    return "/".join(parts[2:]) if parts[0] in ("carts", "gateway") else topic


def _records(truth: dict) -> list[bytes]:
    """Each truth basket's receipt as the gateway's own record builder writes it
    (cart_gateway.fleet.FleetOut; names from the packaged catalogue)."""
    from cart_gateway.catalogue import Catalogue
    from cart_gateway.fleet import FleetOut
    cat = Catalogue.load(None)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE decisions (cart TEXT, session INTEGER, outcome TEXT)")
    db.execute("CREATE TABLE outbox (id INTEGER)")
    fo = FleetOut(db, "gw1", "UTC", 60.0)
    out = []
    for n, b in enumerate(truth["baskets"]):
        r = b.get("receipt") or {}
        if not r.get("ok"):
            continue
        lines = []
        for i, ln in enumerate(r["lines"]):
            sku = ln.get("sku")
            item = cat[sku] if sku and sku in cat else None
            lines.append({"line_id": f"{b['cart']}-l{i + 1}", "sku": sku,
                          "name": getattr(item, "name", None) or "Personal item", "qty": ln["qty"],
                          "weight_g": 412.5, "unit_price_cents": ln["price_cents"] // max(1, ln["qty"]),
                          "price_cents": ln["price_cents"]})
        receipt = {"receipt_id": f"{b['cart']}-{n + 1}-{len(lines) * 3}", "req_id": f"exit-{n}",
                   "total_cents": r["total_cents"], "issued_ms": 1_790_000_000_000 + n, "lines": lines}
        rec = fo.receipt_record(b["cart"], 1, receipt, receipt["issued_ms"])
        out.append(json.dumps(rec, separators=(",", ":"), sort_keys=True).encode())
    return out


def measure(trace: Path, baskets_per_day: int, figures_interval_s: float = 60.0) -> dict:
    from cart_gateway.protocol import read_trace
    with open(trace, encoding="utf-8") as f:
        _, records = read_trace(f)
    msgs, size = collections.Counter(), collections.Counter()
    for r in records:
        k = _kind(r.topic)
        msgs[k] += 1
        size[k] += len(r.payload) + len(r.topic) + MQTT_OVERHEAD
    truth = json.loads((trace.parent / "truth.json").read_text())
    recs = _records(truth)
    baskets = len(truth["baskets"])
    if not recs:
        raise ValueError(f"{trace}: no paid basket in truth.json")
    topic = len("stores/s001/out/receipt") + MQTT_OVERHEAD
    rec_bytes = sum(len(r) for r in recs) / len(recs) + topic
    scale = baskets_per_day / baskets
    per_day_store = {k: {"messages": round(msgs[k] * scale), "bytes": round(size[k] * scale)} for k in sorted(msgs)}
    ticks = 86400 / figures_interval_s
    ack_bytes = 40 + len("stores/s001/in/ack") + MQTT_OVERHEAD   # one small ack per consumer batch, at most one per receipt
    fleet = {"receipt": {"messages": baskets_per_day, "bytes": round(rec_bytes * baskets_per_day)},
             "figures": {"messages": round(ticks), "bytes": round(ticks * 330)},
             "health": {"messages": round(ticks), "bytes": round(ticks * 200)},
             "ack (in)": {"messages": baskets_per_day, "bytes": round(ack_bytes * baskets_per_day)}}
    store_total = sum(v["bytes"] for v in per_day_store.values())
    fleet_total = sum(v["bytes"] for v in fleet.values())
    return {"trace_baskets": baskets, "baskets_per_day": baskets_per_day,
            "receipt_record_bytes_mean": round(rec_bytes), "store_per_day": per_day_store,
            "store_bytes_per_day": store_total,
            "store_messages_per_day": sum(v["messages"] for v in per_day_store.values()),
            "bridge_per_day": fleet, "bridge_bytes_per_day": fleet_total,
            "bridge_messages_per_day": sum(v["messages"] for v in fleet.values()),
            "bridge_share_of_store_bytes": round(fleet_total / store_total, 5)}


def cmd_sizing(a: argparse.Namespace) -> int:
    res = measure(a.trace, a.baskets_per_day)
    for k, v in res["store_per_day"].items():
        print(f"store  {k:16s} {v['messages']:>10,} msg/day {v['bytes'] / 1e6:>10.1f} MB/day")
    for k, v in res["bridge_per_day"].items():
        print(f"bridge {k:16s} {v['messages']:>10,} msg/day {v['bytes'] / 1e6:>10.3f} MB/day")
    print(f"{res['baskets_per_day']} baskets/day: store {res['store_bytes_per_day'] / 1e9:.2f} GB, "
          f"bridge {res['bridge_bytes_per_day'] / 1e6:.2f} MB ({res['bridge_share_of_store_bytes'] * 100:.3f} %)")
    if a.json:
        print(json.dumps(res, sort_keys=True))
    return 0


def register(sub) -> None:
    p = sub.add_parser("sizing", help="events and bytes per store per day from a `cart-sim trace`")
    p.add_argument("--trace", type=Path, required=True, help="trace.jsonl written by `cart-sim trace`")
    p.add_argument("--baskets-per-day", type=int, default=3000, help="baskets a store checks out a day (estimate)")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(fn=cmd_sizing)
