"""The event log (protocol §5): events stored once by their identity, the highest seq and the
open gaps per event stream, the stream numbers the reconciler sees, the instance in each board
slot, and the retention of old events and decisions."""
from __future__ import annotations

import sqlite3


class EventLog:
    """Part of `Store` (database.py): the event log and sequence tracking."""
    db: sqlite3.Connection
    _highs: dict[tuple, int | None]
    _held_highs: dict[tuple, int]      # streams whose new `seqs.high` is not written yet (_flush_highs)

    # An event stream is (cart, board, inst, epoch): a re-flashed or new board mints a new
    # instance id, so its epoch 1 is a new stream and none of its events is taken for one of
    # the old board's. Events without `inst` (older firmware) are the stream inst=''.
    _GAP_AT = ("SELECT id, lo, hi, t_ms FROM gaps WHERE cart=? AND board=? AND inst=? AND epoch=? AND lo<=? "
               "ORDER BY lo DESC LIMIT 1")    # gaps of a stream never overlap: the last one starting at or below

    def add_event(self, event_id, cart, board, epoch, seq, type_, t_ms, payload, inst: str = "") -> bool:
        """Store an event; False if its identity was received before (a duplicate).

        Received = in the event log, or at or below the stream's highest seq and in no open
        gap: the second test still knows an event whose row retention pruned."""
        high = self._high(cart, board, inst, epoch)
        if high is not None and seq <= high and self._gap_at(cart, board, inst, epoch, seq) is None:
            return False
        cur = self.db.execute(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?)",
            (event_id, cart, board, epoch, seq, type_, t_ms, payload))
        return cur.rowcount == 1

    def _flush_highs(self) -> None:
        if self._held_highs:
            self.db.executemany("UPDATE seqs SET high=? WHERE cart=? AND board=? AND inst=? AND epoch=?",
                                [(h, *k) for k, h in self._held_highs.items()])
            self._held_highs = {}

    def _high(self, cart, board, inst, epoch) -> int | None:
        key = (cart, board, inst, epoch)
        if key not in self._highs:
            row = self.db.execute("SELECT high FROM seqs WHERE cart=? AND board=? AND inst=? AND epoch=?",
                                  key).fetchone()
            self._highs[key] = row[0] if row else None
        return self._highs[key]

    def _gap_at(self, cart, board, inst, epoch, seq):
        row = self.db.execute(self._GAP_AT, (cart, board, inst, epoch, seq)).fetchone()
        return row if row and row[2] >= seq else None

    def stream(self, cart, board, inst: str, epoch: int, create: bool = True) -> int | None:
        """The epoch the reconciler sees for this stream: the board's own for inst '' (as
        before instance ids), else a number above 2^32 handed out per (cart, board) at the
        stream's first event or birth, so two instances' (epoch, seq) never meet in a cart's
        state. create=False (frame chunks, capture refs): None for a stream not seen yet, so
        what only names a stream cannot make rows without end."""
        if not inst:
            return epoch
        row = self.db.execute("SELECT stream FROM seqs WHERE cart=? AND board=? AND inst=? AND epoch=?",
                              (cart, board, inst, epoch)).fetchone()
        if row:
            return row[0]
        if not create:
            return None
        top = self.db.execute("SELECT MAX(stream) FROM seqs WHERE cart=? AND board=?", (cart, board)).fetchone()[0]
        stream = max(top or 0, 2**32 - 1) + 1
        self.db.execute("INSERT INTO seqs VALUES (?,?,?,?,?,?)", (cart, board, inst, epoch, 0, stream))
        self._highs[(cart, board, inst, epoch)] = 0
        return stream

    def stream_origin(self, cart, board, stream: int) -> tuple[str, int] | None:
        """(inst, board epoch) of a stream number `stream` gave out; ('', epoch) below 2^32 (a board
        without an instance id, whose epoch is its stream)."""
        if stream < 2**32:
            return "", stream
        row = self.db.execute("SELECT inst, epoch FROM seqs WHERE cart=? AND board=? AND stream=?",
                              (cart, board, stream)).fetchone()
        return (row[0], row[1]) if row else None

    def note_board(self, cart, board, inst: str) -> None:
        """The instance now in this board slot (from its status and events)."""
        self.db.execute("INSERT OR REPLACE INTO boards VALUES (?,?,?)", (cart, board, inst))

    def board_inst(self, cart, board) -> str:
        row = self.db.execute("SELECT inst FROM boards WHERE cart=? AND board=?", (cart, board)).fetchone()
        return row[0] if row else ""

    def note_seq(self, cart, board, epoch, seq, t_ms, inst: str = "") -> tuple[str, tuple[int, int] | None]:
        """Track the highest seq per stream (cart, board, inst, epoch).

        Returns ("next"|"gap"|"late", range): "gap" with the missing range
        recorded; "late" when the seq is below the highest (a gap is closed).
        """
        known = self._high(cart, board, inst, epoch)
        high = known or 0
        if seq > high:
            if known is None:    # (stream() has already added an instance's row)
                self.db.execute("INSERT OR IGNORE INTO seqs VALUES (?,?,?,?,0,?)",
                                (cart, board, inst, epoch, self.stream(cart, board, inst, epoch)))
            # written once per stream with the batch's other held rows (flush_held), not per event
            self._highs[(cart, board, inst, epoch)] = self._held_highs[(cart, board, inst, epoch)] = seq
            if seq > high + 1:
                rng = (high + 1, seq - 1)
                self.db.execute("INSERT INTO gaps (cart, board, inst, epoch, lo, hi, t_ms) VALUES (?,?,?,?,?,?,?)",
                                (cart, board, inst, epoch, rng[0], rng[1], t_ms))
                return "gap", rng
            return "next", None
        self._close_gap(cart, board, inst, epoch, seq)
        return "late", None

    def _close_gap(self, cart, board, inst, epoch, seq) -> None:
        row = self._gap_at(cart, board, inst, epoch, seq)
        if not row:
            return
        gid, lo, hi, t = row
        self.db.execute("DELETE FROM gaps WHERE id=?", (gid,))
        for a, b in ((lo, seq - 1), (seq + 1, hi)):
            if a <= b:
                self.db.execute("INSERT INTO gaps (cart, board, inst, epoch, lo, hi, t_ms) VALUES (?,?,?,?,?,?,?)",
                                (cart, board, inst, epoch, a, b, t))

    def bound_gaps(self, cart, board, limit: int) -> int:
        """At most `limit` open gaps per board (all its instances and epochs): over it, the
        oldest gap is merged with the next gap of its stream, or dropped if it has none.
        A merged gap also spans seqs that were received; their rows in the event log still
        make a redelivery a duplicate. Returns the gaps merged or dropped."""
        n = self.db.execute("SELECT COUNT(*) FROM gaps WHERE cart=? AND board=?", (cart, board)).fetchone()[0]
        done = 0
        while n - done > limit:
            gid, inst, epoch, lo, hi = self.db.execute(
                "SELECT id, inst, epoch, lo, hi FROM gaps WHERE cart=? AND board=? ORDER BY id LIMIT 1",
                (cart, board)).fetchone()
            nxt = self.db.execute("SELECT id, hi FROM gaps WHERE cart=? AND board=? AND inst=? AND epoch=? AND lo>? "
                                  "ORDER BY lo LIMIT 1", (cart, board, inst, epoch, hi)).fetchone()
            self.db.execute("DELETE FROM gaps WHERE id=?", (gid,))
            if nxt:
                self.db.execute("UPDATE gaps SET lo=? WHERE id=?", (lo, nxt[0]))
            done += 1
        return done

    def prune_gaps(self, before_ms: int, limit: int) -> int:
        """Delete up to `limit` gaps opened before `before_ms` (the event log's retention: a
        board's journal cannot hold an event that long)."""
        return self.db.execute("DELETE FROM gaps WHERE id IN (SELECT id FROM gaps WHERE t_ms < ? ORDER BY t_ms LIMIT ?)",
                               (before_ms, limit)).rowcount

    def open_gaps(self) -> list[dict]:
        rows = self.db.execute("SELECT cart, board, inst, epoch, lo, hi FROM gaps ORDER BY id").fetchall()
        return [dict({"cart": c, "board": b, "epoch": e, "lo": lo, "hi": hi}, **({"inst": i} if i else {}))
                for c, b, i, e, lo, hi in rows]

    def event_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    # ---------------------------------------------------------- retention
    def prune(self, events_before_ms: int, decisions_before_ms: int, limit: int) -> tuple[int, int]:
        """Delete up to `limit` events and decisions older than the cut-offs, only of closed
        sessions: an event before its cart's last receipt, a decision of an earlier session
        than the cart's current one. Returns (events, decisions) deleted."""
        self.flush_held()
        ev = self.db.execute(
            "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e JOIN "
            "(SELECT cart, MAX(t_ms) AS closed FROM receipts GROUP BY cart) r ON e.cart = r.cart "
            "WHERE e.t_ms < ? AND e.t_ms < r.closed ORDER BY e.rowid LIMIT ?)",
            (events_before_ms, limit)).rowcount
        de = self.db.execute(
            "DELETE FROM decisions WHERE id IN (SELECT d.id FROM decisions d JOIN carts c ON d.cart = c.cart "
            "WHERE d.t_ms < ? AND d.session < c.session ORDER BY d.id LIMIT ?)",
            (decisions_before_ms, limit)).rowcount
        return ev, de
