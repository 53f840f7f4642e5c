"""What the gateway tells head office (docs/fleet.md §Messages).

Everything here is published under `gateway/<gw>/fleet/out/`, the one subtree
the store's bridge carries to the central broker (docs/fleet.md §Topics):
- `receipt`: one ledger record per issued receipt — the receipt (§12) and a
  summary of its basket (items, prompts asked, reviews sent). No frame ids, no
  review requests, no line evidence: nothing in it can fetch a picture.
- `figures`: the store's day so far (baskets, reviews, prompts), on the timer.
- `health`: the gateway's health, on the timer.

All are QoS 1 through the gateway's outbox, so a record written with its
receipt is published at least once even across a gateway crash; the central
ledger drops the copies (tools/cart_fleet/ledger.py).

End-to-end acknowledgement: a receipt record stays in `fleet_pending` until
the ledger says it committed it (`gateway/<gw>/fleet/in/ack`, sent by
`cart-fleet consume` after its commit and bridged in). A record the link lost
on the way (a central broker crash or restart: Mosquitto 2.0 restores no
shared subscription, so what arrives before the consumers resubscribe is
dropped; seen in tools/tests/test_fleet_outage.py) is sent again once acks
show the link works again: when an ack arrived after the record was sent and
the record is still unacknowledged `resend_s` after sending. While no ack
arrives (the link is down) nothing is resent: the bridge's queue holds the
records, and resending would only fill it with copies.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from .protocol import ProtocolError

DAYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_days (
  day TEXT PRIMARY KEY, baskets INTEGER NOT NULL, items INTEGER NOT NULL,
  prompts INTEGER NOT NULL, reviews INTEGER NOT NULL)"""
PENDING_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_pending (
  receipt_id TEXT PRIMARY KEY, record TEXT NOT NULL, sent_ms INTEGER NOT NULL)"""
MAX_ACK_IDS = 5000
RESEND_BATCH = 200          # records sent again per check (bounds one tick's work)

# the only receipt-line fields that leave the store (a line's evidence stays)
LINE_FIELDS = ("line_id", "sku", "name", "qty", "weight_g", "unit_price_cents", "price_cents")


def out_topic(gateway: str, kind: str) -> str:
    return f"gateway/{gateway}/fleet/out/{kind}"


class FleetOut:
    def __init__(self, db, gateway: str, tz: str, interval_s: float, resend_s: float = 60.0):
        self.db, self.gw = db, gateway
        self.tz = ZoneInfo(tz)
        self.interval_ms = int(interval_s * 1000)
        self.resend_ms = int(resend_s * 1000)
        self.next_ms = 0
        self.next_resend_check_ms = 0
        self.last_ack_ms = 0        # receive time of the newest ack: the link to the ledger works
        self.started = time.monotonic()
        self.ack_topic = f"gateway/{gateway}/fleet/in/ack"
        db.execute(DAYS_SCHEMA)
        db.execute(PENDING_SCHEMA)

    def day_of(self, t_ms: int) -> str:
        return datetime.fromtimestamp(t_ms / 1000, timezone.utc).astimezone(self.tz).date().isoformat()

    def receipt_record(self, cart: str, session: int, receipt: dict, t_ms: int) -> dict:
        """The ledger record of one receipt; counts it into the store's day (same transaction)."""
        outcomes = dict(self.db.execute("SELECT outcome, count(*) FROM decisions WHERE cart=? AND session=? "
                                        "GROUP BY outcome", (cart, session)).fetchall())
        lines = [{k: ln[k] for k in LINE_FIELDS if k in ln} for ln in receipt.get("lines", [])]
        items = sum(int(ln.get("qty", 0)) for ln in lines)
        day = self.day_of(t_ms)
        prompts, reviews = outcomes.get("ask", 0), outcomes.get("review", 0)   # reconcile.Outcome
        self.db.execute("INSERT INTO fleet_days VALUES (?,1,?,?,?) ON CONFLICT(day) DO UPDATE SET "
                        "baskets=baskets+1, items=items+excluded.items, prompts=prompts+excluded.prompts, "
                        "reviews=reviews+excluded.reviews", (day, items, prompts, reviews))
        r = {k: receipt[k] for k in ("receipt_id", "req_id", "total_cents", "issued_ms") if k in receipt}
        rec = {"v": 1, "gateway": self.gw, "cart": cart, "day": day, "published_ms": t_ms,
               "receipt": dict(r, lines=lines),
               "basket": {"items": items, "lines": len(lines), "prompts": prompts, "reviews": reviews,
                          "accepted": outcomes.get("accept", 0)}}
        self.db.execute("INSERT OR REPLACE INTO fleet_pending VALUES (?,?,?)",
                        (receipt["receipt_id"], json.dumps(rec, sort_keys=True), t_ms))
        return rec

    def on_ack(self, payload: bytes, t_ms: int) -> int:
        """The ledger committed these receipts: forget them. Returns how many were pending."""
        try:
            d = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError(f"fleet ack: not JSON ({e})") from None
        ids = d.get("receipts") if isinstance(d, dict) and d.get("v") == 1 else None
        if not isinstance(ids, list) or len(ids) > MAX_ACK_IDS:
            raise ProtocolError(f"fleet ack: expected {{\"v\":1,\"receipts\":[up to {MAX_ACK_IDS} ids]}}")
        bad = next((i for i in ids if not isinstance(i, str) or len(i) > 200), None)
        if bad is not None:
            raise ProtocolError(f"fleet ack: receipt id {str(bad)[:40]!r} is not a string of <= 200 characters")
        self.last_ack_ms = max(self.last_ack_ms, t_ms)
        before = self.db.total_changes
        self.db.executemany("DELETE FROM fleet_pending WHERE receipt_id=?", [(i,) for i in ids])
        return self.db.total_changes - before

    def resends(self, t_ms: int) -> list[dict]:
        """Records to send again (see the module docstring); at most once a second."""
        if t_ms < self.next_resend_check_ms or not self.last_ack_ms:
            return []
        self.next_resend_check_ms = t_ms + 1000
        cut = min(t_ms - self.resend_ms, self.last_ack_ms - 1)
        rows = self.db.execute("SELECT receipt_id, record FROM fleet_pending WHERE sent_ms <= ? "
                               "ORDER BY sent_ms LIMIT ?", (cut, RESEND_BATCH)).fetchall()
        if rows:
            self.db.executemany("UPDATE fleet_pending SET sent_ms=? WHERE receipt_id=?",
                                [(t_ms, rid) for rid, _ in rows])
        return [json.loads(r) for _, r in rows]

    def pending(self) -> int:
        return self.db.execute("SELECT count(*) FROM fleet_pending").fetchone()[0]

    def due(self, t_ms: int) -> bool:
        if not self.interval_ms or t_ms < self.next_ms:
            return False
        if not self.next_ms:        # the first one an interval after start (a tick alone writes nothing)
            self.next_ms = t_ms + self.interval_ms
            return False
        self.next_ms = t_ms + self.interval_ms
        return True

    def figures(self, t_ms: int) -> dict:
        day = self.day_of(t_ms)
        row = self.db.execute("SELECT baskets, items, prompts, reviews FROM fleet_days WHERE day=?",
                              (day,)).fetchone() or (0, 0, 0, 0)
        b, i, p, r = row
        return {"v": 1, "gateway": self.gw, "day": day, "at_ms": t_ms, "baskets": b, "items": i,
                "prompts": p, "reviews": r,
                "reviews_per_1000_baskets": round(1000 * r / b, 2) if b else 0.0,
                "prompts_per_100_items": round(100 * p / i, 2) if i else 0.0}

    def health(self, t_ms: int, version: str, carts: int, open_reviews: int) -> dict:
        outbox = self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return {"v": 1, "gateway": self.gw, "at_ms": t_ms, "version": version,
                "uptime_s": int(time.monotonic() - self.started), "carts": carts,
                "open_reviews": open_reviews, "outbox": outbox, "ledger_pending": self.pending()}
