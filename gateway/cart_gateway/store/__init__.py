"""Durable gateway state in SQLite (WAL): `Store`.

One database under the state directory holds the event log (duplicates
dropped by event identity, protocol §5), sequence gaps, each cart's
reconciler state, the store-wide WeightBook, the review queue, receipts,
stored frames, pending capture bursts and an outbox of publishes not yet
acknowledged by the broker.

Durability: `synchronous=FULL` by default. In WAL mode NORMAL already
survives a process crash (kill -9), but a power cut may lose the last
transactions; the gateway acknowledges MQTT messages right after the
commit, so a lost commit would be a lost event the broker will not resend.
FULL fsyncs the WAL on every commit; the service groups many messages in
one transaction (group commit) so the fsync cost is shared.

One job a module: `database` (Store: connection, transactions, savepoints), `schema` (tables,
the migration from before instance ids), `event_log` (events, seqs, gaps, streams, retention),
`cart_states` (cart states in parts, the WeightBook), `cart_parts` (a state as parts and back),
`records` (reviews, receipts, frames, bursts, decisions), `outbox` (the outbox, retained topics).
"""
from .database import Store

__all__ = ["Store"]
