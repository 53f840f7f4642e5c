"""Publishes not yet acknowledged by the broker (the outbox) and the last payload of every
retained topic, resent on every (re)connect."""
from __future__ import annotations

import sqlite3


class Outbox:
    """Part of `Store` (database.py): the outbox and the retained topics."""
    db: sqlite3.Connection

    def outbox_add(self, topic, payload: bytes, qos, retain) -> int:
        cur = self.db.execute("INSERT INTO outbox (topic, payload, qos, retain) VALUES (?,?,?,?)",
                              (topic, payload, qos, int(retain)))
        if retain:
            self.db.execute("INSERT OR REPLACE INTO retained VALUES (?,?)", (topic, payload))
        return cur.lastrowid

    def outbox(self) -> list[tuple[int, str, bytes, int, bool]]:
        rows = self.db.execute("SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id").fetchall()
        return [(i, t, bytes(p), q, bool(r)) for i, t, p, q, r in rows]

    def outbox_done(self, ids) -> None:
        self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])

    def retained(self) -> list[tuple[str, bytes]]:
        return [(t, bytes(p)) for t, p in self.db.execute("SELECT topic, payload FROM retained ORDER BY topic")]
