"""What a shopping session leaves behind besides its state: review requests and verdicts,
receipts, the stored frames' index, capture bursts waiting for inference, the decision log."""
from __future__ import annotations

import json
import sqlite3


# a decision record in the engine's key order (deterministic), compact: sorting its keys was ~1/3 of its cost
_RECORD_JSON = json.JSONEncoder(separators=(",", ":")).encode


class SessionRecords:
    """Part of `Store` (database.py): reviews, receipts, frames, bursts, decisions."""
    db: sqlite3.Connection
    _decisions: list[tuple]     # decision rows not yet written (flush_decisions)

    # ---------------------------------------------------------- reviews, receipts
    def add_review(self, request: dict, t_ms: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO reviews VALUES (?,?,?,?,?,?)",
                        (request["review_id"], request["cart"], json.dumps(request), "open", None, t_ms))

    def close_review(self, review_id: str, verdict: dict | None) -> None:
        self.db.execute("UPDATE reviews SET status='closed', verdict=COALESCE(?, verdict) WHERE review_id=?",
                        (json.dumps(verdict) if verdict is not None else None, review_id))

    def review_cart(self, review_id: str) -> str | None:
        row = self.db.execute("SELECT cart FROM reviews WHERE review_id=?", (review_id,)).fetchone()
        return row[0] if row else None

    def get_review(self, review_id: str) -> dict | None:
        row = self.db.execute("SELECT request FROM reviews WHERE review_id=?", (review_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def open_reviews(self) -> list[dict]:
        rows = self.db.execute("SELECT request FROM reviews WHERE status='open' ORDER BY t_ms, review_id")
        return [json.loads(r[0]) for r in rows]

    def all_reviews(self) -> list[dict]:
        rows = self.db.execute("SELECT request, status, verdict FROM reviews ORDER BY t_ms, review_id")
        return [dict(json.loads(r), status=s, verdict=json.loads(v) if v else None) for r, s, v in rows]

    def get_receipt(self, cart, req_id) -> dict | None:
        row = self.db.execute("SELECT receipt FROM receipts WHERE cart=? AND req_id=?", (cart, req_id)).fetchone()
        return json.loads(row[0]) if row else None

    def add_receipt(self, cart, req_id, receipt: dict, t_ms: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO receipts VALUES (?,?,?,?)", (cart, req_id, json.dumps(receipt), t_ms))

    def receipts(self) -> list[dict]:
        rows = self.db.execute("SELECT cart, receipt FROM receipts ORDER BY t_ms, cart, req_id")
        return [dict(json.loads(r), cart=c) for c, r in rows]

    # ---------------------------------------------------------- frames, bursts
    def add_frame(self, frame_id, cart, session, path, t_ms) -> None:
        self.db.execute("INSERT OR REPLACE INTO frames VALUES (?,?,?,?,?)", (frame_id, cart, session, path, t_ms))

    def frame_path(self, frame_id) -> str | None:
        row = self.db.execute("SELECT path FROM frames WHERE frame_id=?", (frame_id,)).fetchone()
        return row[0] if row else None

    def frames(self, before_ms: int | None = None) -> list[tuple[str, str, int, str, int]]:
        """Stored frames, oldest first; with before_ms only those taken before it (retention)."""
        q = "SELECT frame_id, cart, session, path, t_ms FROM frames"
        if before_ms is None:
            return self.db.execute(q + " ORDER BY t_ms").fetchall()
        return self.db.execute(q + " WHERE t_ms < ? ORDER BY t_ms", (before_ms,)).fetchall()

    def delete_frame(self, frame_id) -> None:
        self.db.execute("DELETE FROM frames WHERE frame_id=?", (frame_id,))

    def add_burst(self, burst_id, cart, epoch, frames, ref, engine_ms, t_ms) -> None:
        self.db.execute("INSERT OR IGNORE INTO bursts VALUES (?,?,?,?,?,?,?,?)",
                        (burst_id, cart, epoch, json.dumps(frames), ref, engine_ms, t_ms, "waiting"))

    def bursts(self, state: str | None = None) -> list[dict]:
        q = "SELECT burst_id, cart, epoch, frames, ref, engine_ms, t_ms, state FROM bursts"
        rows = self.db.execute(q + (" WHERE state=?" if state else "") + " ORDER BY t_ms, burst_id",
                               (state,) if state else ())
        return [{"burst_id": b, "cart": c, "epoch": e, "frames": json.loads(f), "ref": r, "engine_ms": m,
                 "t_ms": t, "state": s} for b, c, e, f, r, m, t, s in rows]

    def set_burst_state(self, burst_id, state) -> None:
        self.db.execute("UPDATE bursts SET state=? WHERE burst_id=?", (state, burst_id))

    def delete_burst(self, burst_id) -> None:
        self.db.execute("DELETE FROM bursts WHERE burst_id=?", (burst_id,))

    # ---------------------------------------------------------- decision log
    # Decisions are held and written with one executemany (flush_held) before anything
    # reads the table or the transaction ends: a COMMIT, a savepoint's start and release, a
    # read. A rollback (of the transaction or of a savepoint) drops what it held: the rows
    # are undone with the events they came from (database.py).
    def add_decision(self, cart, session, record: dict, t_ms: int) -> None:
        self._decisions.append((cart, session, record["outcome"], _RECORD_JSON(record), t_ms))

    def flush_held(self) -> None:
        """Write what this transaction holds back: the decision rows and the streams' highest seqs."""
        self._flush_highs()
        self.flush_decisions()

    def flush_decisions(self) -> None:
        if self._decisions:
            self.db.executemany("INSERT INTO decisions (cart, session, outcome, record, t_ms) VALUES (?,?,?,?,?)",
                                self._decisions)
            self._decisions = []

    def decisions(self, cart: str | None = None) -> list[dict]:
        self.flush_held()
        q = "SELECT record FROM decisions" + (" WHERE cart=?" if cart else "") + " ORDER BY id"
        return [json.loads(r[0]) for r in self.db.execute(q, (cart,) if cart else ())]
