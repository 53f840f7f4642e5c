"""The central ledger in PostgreSQL: one row per receipt id, whoever delivers it how often.

A receipt record may arrive more than once (the bridge and the consumers are
at-least-once: QoS 1, redelivery after a crash); `INSERT ... ON CONFLICT DO
NOTHING` on the receipt id makes the second copy a no-op, counted in
`deliveries` so a run can say how many copies were absorbed. A copy whose
content differs from the stored one is not applied and is counted in
`conflicts` (a forged or corrupted record must not rewrite the ledger)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import psycopg

from cart_fleet.errors import FleetError
from cart_fleet.records import Figures, ReceiptRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
  receipt_id text PRIMARY KEY,
  store text NOT NULL,
  gateway text NOT NULL,
  cart text NOT NULL,
  day date NOT NULL,                -- the store's business day (its own time zone)
  issued_ms bigint NOT NULL,
  total_cents bigint NOT NULL,
  items integer NOT NULL,
  prompts integer NOT NULL,
  reviews integer NOT NULL,
  record jsonb NOT NULL,
  stored_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  deliveries integer NOT NULL DEFAULT 1,
  conflicts integer NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS receipts_store_day ON receipts (store, day);
CREATE TABLE IF NOT EXISTS figures (
  store text NOT NULL, day date NOT NULL, at_ms bigint NOT NULL, record jsonb NOT NULL,
  PRIMARY KEY (store, day));
CREATE TABLE IF NOT EXISTS health (
  store text PRIMARY KEY, at_ms bigint NOT NULL, record jsonb NOT NULL);
"""

INSERT_RECEIPT = """
INSERT INTO receipts (receipt_id, store, gateway, cart, day, issued_ms, total_cents, items, prompts, reviews, record)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (receipt_id) DO UPDATE SET
  deliveries = receipts.deliveries + 1,
  conflicts = receipts.conflicts + (receipts.record <> EXCLUDED.record OR receipts.store <> EXCLUDED.store)::int
"""

# newest snapshot of a store's day wins; an older one arriving late changes nothing
UPSERT_FIGURES = """
INSERT INTO figures (store, day, at_ms, record) VALUES (%s, %s, %s, %s)
ON CONFLICT (store, day) DO UPDATE SET at_ms = EXCLUDED.at_ms, record = EXCLUDED.record
WHERE figures.at_ms < EXCLUDED.at_ms
"""
UPSERT_HEALTH = """
INSERT INTO health (store, at_ms, record) VALUES (%s, %s, %s)
ON CONFLICT (store) DO UPDATE SET at_ms = EXCLUDED.at_ms, record = EXCLUDED.record
WHERE health.at_ms < EXCLUDED.at_ms
"""


def connect(dsn: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, connect_timeout=5)
    except psycopg.OperationalError as e:
        raise FleetError(f"cannot reach PostgreSQL at {dsn!r}: {str(e).strip()}") from None
    with conn.transaction():
        # consumers start together: one creates the tables, the others wait for it
        conn.execute("SELECT pg_advisory_xact_lock(1818)")
        conn.execute(SCHEMA)
    return conn


def store_batch(conn: psycopg.Connection, receipts: list[tuple[str, ReceiptRecord]],
                figures: list[tuple[str, Figures]], health: list[tuple[str, int, dict]]) -> None:
    """One transaction: everything or nothing (the caller acks only after it returns)."""
    with conn.transaction():
        with conn.cursor() as cur:
            if receipts:
                cur.executemany(INSERT_RECEIPT, [
                    (r.receipt_id, store, r.gateway, r.cart, r.day, r.issued_ms, r.total_cents, r.items,
                     r.prompts, r.reviews, json.dumps(r.raw, sort_keys=True)) for store, r in receipts])
            if figures:
                cur.executemany(UPSERT_FIGURES, [(store, f.day, f.at_ms, json.dumps(f.raw, sort_keys=True))
                                                 for store, f in figures])
            if health:
                cur.executemany(UPSERT_HEALTH, [(store, at, json.dumps(rec, sort_keys=True))
                                                for store, at, rec in health])


@dataclass(frozen=True)
class ReceiptRow:
    receipt_id: str
    cart: str
    issued_ms: int
    total_cents: int
    items: int
    prompts: int
    reviews: int


def receipts_of(conn: psycopg.Connection, store: str, day: date) -> list[ReceiptRow]:
    rows = conn.execute("SELECT receipt_id, cart, issued_ms, total_cents, items, prompts, reviews FROM receipts "
                        "WHERE store = %s AND day = %s ORDER BY issued_ms, receipt_id", (store, day)).fetchall()
    return [ReceiptRow(*r) for r in rows]


@dataclass(frozen=True)
class DayRates:
    store: str
    day: date
    baskets: int
    items: int
    reviews: int
    prompts: int

    @property
    def reviews_per_1000_baskets(self) -> float:
        return round(1000.0 * self.reviews / self.baskets, 2) if self.baskets else 0.0

    @property
    def prompts_per_100_items(self) -> float:
        return round(100.0 * self.prompts / self.items, 2) if self.items else 0.0


def rates(conn: psycopg.Connection, store: str | None = None, day: date | None = None) -> list[DayRates]:
    """Reviews per 1,000 baskets (and prompts per 100 items) per store per day, from the
    ledger's receipts: a basket counts once it is paid, with the reviews and prompts it had."""
    where, args = [], []
    if store:
        where.append("store = %s")
        args.append(store)
    if day:
        where.append("day = %s")
        args.append(day)
    q = ("SELECT store, day, count(*), sum(items), sum(reviews), sum(prompts) FROM receipts"
         + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY store, day ORDER BY store, day")
    return [DayRates(s, d, n, int(i), int(r), int(p)) for s, d, n, i, r, p in conn.execute(q, args).fetchall()]
