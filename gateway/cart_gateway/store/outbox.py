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

    def outbox_add_many(self, rows: list[tuple[str, bytes, int, bool]]) -> list[int]:
        """outbox_add for a batch's publishes (topic, payload, qos, retain), in order, with two
        executemany: the ids are the ones AUTOINCREMENT would hand out one by one (above the
        highest ever used), read inside the caller's transaction."""
        if not rows:
            return []
        top = self.db.execute("SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='outbox'), 0), "
                              "COALESCE((SELECT MAX(id) FROM outbox), 0))").fetchone()[0]
        ids = list(range(top + 1, top + 1 + len(rows)))
        self.db.executemany("INSERT INTO outbox (id, topic, payload, qos, retain) VALUES (?,?,?,?,?)",
                            [(i, t, p, q, int(r)) for i, (t, p, q, r) in zip(ids, rows)])
        last = {t: p for t, p, _, r in rows if r}      # a retained topic's last payload
        if last:
            self.db.executemany("INSERT OR REPLACE INTO retained VALUES (?,?)", list(last.items()))
        return ids

    def outbox(self) -> list[tuple[int, str, bytes, int, bool]]:
        rows = self.db.execute("SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id").fetchall()
        return [(i, t, bytes(p), q, bool(r)) for i, t, p, q, r in rows]

    def outbox_done(self, ids) -> None:
        self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])

    def retained(self) -> list[tuple[str, bytes]]:
        return [(t, bytes(p)) for t, p in self.db.execute("SELECT topic, payload FROM retained ORDER BY topic")]
