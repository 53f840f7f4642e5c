"""Durable gateway state in SQLite (WAL).

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
"""
from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, cart TEXT NOT NULL, board TEXT NOT NULL, epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL, type TEXT NOT NULL, t_ms INTEGER NOT NULL, payload BLOB NOT NULL);
-- one row per event stream: a board instance's boot epoch (protocol §5); inst '' = an
-- older board that sends no instance id. `stream` is the epoch the reconciler sees.
CREATE TABLE IF NOT EXISTS seqs (
  cart TEXT NOT NULL, board TEXT NOT NULL, inst TEXT NOT NULL, epoch INTEGER NOT NULL,
  high INTEGER NOT NULL, stream INTEGER NOT NULL, PRIMARY KEY (cart, board, inst, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gaps (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cart TEXT NOT NULL, board TEXT NOT NULL, inst TEXT NOT NULL,
  epoch INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, t_ms INTEGER NOT NULL);
-- a duplicate check looks its seq up in the stream's gaps; retention deletes old ones
CREATE INDEX IF NOT EXISTS gaps_at ON gaps(cart, board, inst, epoch, lo);
CREATE INDEX IF NOT EXISTS gaps_t ON gaps(t_ms);
-- the instance each board slot last spoke with (frames carry no instance id)
CREATE TABLE IF NOT EXISTS boards (
  cart TEXT NOT NULL, board TEXT NOT NULL, inst TEXT NOT NULL, PRIMARY KEY (cart, board)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS carts (
  cart TEXT PRIMARY KEY, session INTEGER NOT NULL, version_base INTEGER NOT NULL,
  state TEXT NOT NULL, clock TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cart_parts (
  cart TEXT NOT NULL, part TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (cart, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS book (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (
  review_id TEXT PRIMARY KEY, cart TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL,
  verdict TEXT, t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
  cart TEXT, req_id TEXT, receipt TEXT NOT NULL, t_ms INTEGER NOT NULL, PRIMARY KEY (cart, req_id));
CREATE TABLE IF NOT EXISTS frames (
  frame_id TEXT PRIMARY KEY, cart TEXT NOT NULL, session INTEGER NOT NULL, path TEXT NOT NULL,
  t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bursts (
  burst_id TEXT PRIMARY KEY, cart TEXT NOT NULL, epoch INTEGER NOT NULL, frames TEXT NOT NULL,
  ref TEXT, engine_ms INTEGER NOT NULL, t_ms INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cart TEXT NOT NULL, session INTEGER NOT NULL,
  outcome TEXT NOT NULL, record TEXT NOT NULL, t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL);
-- retention (prune) looks rows up by cart and age / session: without these it
-- scanned both tables every prune interval inside the core loop's transaction
CREATE INDEX IF NOT EXISTS events_cart_t ON events(cart, t_ms);
CREATE INDEX IF NOT EXISTS frames_t ON frames(t_ms);
CREATE INDEX IF NOT EXISTS decisions_cart ON decisions(cart, session);
"""


# json.dumps with options builds an encoder per call; a save writes several parts
_PART_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# a decision record in the engine's key order (deterministic), compact: sorting its keys was ~1/3 of its cost
_RECORD_JSON = json.JSONEncoder(separators=(",", ":")).encode


class Store:
    def __init__(self, path: Path | str, synchronous: str = "FULL"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the connection is used by one thread at a
        # time (the service's core thread), but created on the main thread.
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("PRAGMA foreign_keys=ON")
        old = _migrate_begin(self.db)
        self.db.executescript(SCHEMA)
        _migrate_end(self.db, old)
        self._in_tx = False
        self._parts: dict[str, dict[str, object]] = {}  # cart -> part -> a private copy of the stored value
        self._final: dict[str, set[str]] = {}           # cart -> its stored parts that never change (_final_move)
        self._heads: dict[str, tuple] = {}              # cart -> stored (session, version_base, clock)
        # stream (cart, board, inst, epoch) -> its `seqs.high` as this transaction sees it (None: no
        # row): an event read it twice (duplicate check, then note_seq). Dropped with a rollback.
        self._highs: dict[tuple, int | None] = {}

    # ---------------------------------------------------------- transactions
    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False
        self._parts, self._heads, self._final = {}, {}, {}    # what save_cart believes is stored may be gone
        self._highs = {}

    def close(self) -> None:
        self.rollback()
        self.db.close()

    def savepoint(self):
        return _Savepoint(self)

    # ---------------------------------------------------------- event log (§5)
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
            self.db.execute("UPDATE seqs SET high=? WHERE cart=? AND board=? AND inst=? AND epoch=?",
                            (seq, cart, board, inst, epoch))
            self._highs[(cart, board, inst, epoch)] = seq
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

    # ---------------------------------------------------------- carts and book
    # A cart's reconciler state is stored in parts (see split_state): each basket
    # line, movement, prompt, review and log record is its own row, and a batch
    # rewrites only the rows whose value changed. Rewriting the whole state
    # (30 kB of JSON for a 60-line basket) for every dirty cart in every batch
    # was the gateway's second-largest cost. `carts.state` is '' for a cart
    # stored in parts (a full JSON state there, from an older version, still loads).
    # The plain values are one head part (`=`); dicts read only by id have no key-order
    # part; parts as f5403a9 wrote them still load (gateway/tests/test_state_hot.py).
    def load_carts(self) -> list[tuple[str, int, int, dict, dict]]:
        """(cart, session, version_base, state, clock) for every cart, from the committed parts."""
        out = []
        self._parts, self._heads, self._final = {}, {}, {}
        rows = self.db.execute("SELECT cart, session, version_base, state, clock FROM carts ORDER BY cart").fetchall()
        for c, sess, vb, st, ck in rows:
            parts = {p: json.loads(v) for p, v in
                     self.db.execute("SELECT part, value FROM cart_parts WHERE cart=?", (c,))}
            state = join_state(parts) if parts else json.loads(st)
            clock = json.loads(ck)
            # join_state hands the decoded values to the engine, which changes them: keep a copy
            self._parts[c] = pickle.loads(pickle.dumps(parts, 5))
            self._heads[c] = (sess, vb, ck)
            out.append((c, sess, vb, state, clock))
        return out

    def save_cart(self, cart, session, version_base, state: dict, clock, dirty=None) -> int:
        """Store a cart's state; writes only the parts that changed. Returns the rows written.

        Each part is compared with a private copy of what was stored (`==`, in C, without
        allocating): pickling every part to compare bytes was most of this function's cost,
        and the cost grew with the basket. A copy is made (pickle round trip: exact types)
        only of a part that changed. `==` takes 1 for 1.0 or True: the engine does not change
        a field's type, and JSON would read either back as an equal number.

        `dirty` (reconcile.state.Dirty, `known`): the basket lines and personal items the
        engine changed since its last save; only those are compared and written, so a save
        costs what changed, not the basket. Ignored (every part compared) when this store's
        copy was just read back from the database (after a load or a rollback)."""
        ck = json.dumps(clock, sort_keys=True)
        reopened = getattr(dirty, "reopened", ())
        same_session = (self._heads.get(cart) or (None,))[0] == session
        if self._heads.get(cart) != (session, version_base, ck):
            self.db.execute("INSERT OR REPLACE INTO carts VALUES (?,?,?,?,?)", (cart, session, version_base, "", ck))
            self._heads[cart] = (session, version_base, ck)
        known = self._parts.get(cart)
        if known is None:     # not seen since the last load or rollback: ask the database what is stored
            known = self._parts[cart] = {
                p: json.loads(v) for p, v in self.db.execute("SELECT part, value FROM cart_parts WHERE cart=?", (cart,))}
            dirty = None
        final = self._final.get(cart)
        if final is None or not same_session:    # a new basket numbers its movements from 1 again
            final = self._final[cart] = {p for p, v in known.items() if _final_move(p, v)} if same_session else set()
        for mid in reopened:    # compared again: it may be decided anew
            final.discard(f"done/{mid}")
        # the engine bumps `version` in every step that changes the basket (engine.step): at the
        # stored version (of this session: a new basket counts from 0 again) no line or personal
        # item changed, so they are neither split nor compared
        stored_version = known.get(HEAD, known).get("version", _ABSENT)
        if same_session and stored_version == state.get("version"):
            skip, only = _BASKET_KEYS, {}
        elif same_session and dirty is not None and dirty.known:
            skip = () if dirty.personal else ("personal",)
            only = {"lines": dirty.lines}
        else:
            skip, only = (), {}
        marked = None
        if only and not getattr(dirty, "line_set", True) and "lines/" in known and state.get("lines"):
            # the same lines as stored, some values changed: only the marked lines' parts (no key
            # order, no pass over the others)
            skip += ("lines",)
            marked = {f"lines/{ln['line_id']}": ln for ln in state["lines"] if ln["line_id"] in dirty.lines}
        parts, kept = _split(state, skip, only, known, final)
        if marked:
            parts.update(marked)
        put = []
        for p, v in parts.items():
            old = known.get(p, _ABSENT)
            if old is _ABSENT or not old == v:
                put.append((cart, p, _PART_JSON(v)))
                # a key order (`k/`) is made fresh by _split, a number or string cannot change:
                # only what the engine holds and may change in place is copied
                known[p] = v if p[-1] == "/" or type(v) in _IMMUTABLE else pickle.loads(pickle.dumps(v, 5))
                if _final_move(p, v):
                    final.add(p)
        gone = [(cart, p) for p in known.keys() - parts.keys() - kept if p.split("/", 1)[0] not in skip]
        for _, p in gone:
            del known[p]
            final.discard(p)
        if put:
            self.db.executemany("INSERT OR REPLACE INTO cart_parts VALUES (?,?,?)", put)
        if gone:
            self.db.executemany("DELETE FROM cart_parts WHERE cart=? AND part=?", gone)
        return len(put) + len(gone)

    def load_book(self) -> dict | None:
        row = self.db.execute("SELECT state FROM book WHERE id=1").fetchone()
        return json.loads(row[0]) if row else None

    def save_book(self, state: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO book VALUES (1, ?)", (json.dumps(state, sort_keys=True),))

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
    def add_decision(self, cart, session, record: dict, t_ms: int) -> None:
        self.db.execute("INSERT INTO decisions (cart, session, outcome, record, t_ms) VALUES (?,?,?,?,?)",
                        (cart, session, record["outcome"], _RECORD_JSON(record), t_ms))

    def decisions(self, cart: str | None = None) -> list[dict]:
        q = "SELECT record FROM decisions" + (" WHERE cart=?" if cart else "") + " ORDER BY id"
        return [json.loads(r[0]) for r in self.db.execute(q, (cart,) if cart else ())]

    # ---------------------------------------------------------- retention
    def prune(self, events_before_ms: int, decisions_before_ms: int, limit: int) -> tuple[int, int]:
        """Delete up to `limit` events and decisions older than the cut-offs, only of closed
        sessions: an event before its cart's last receipt, a decision of an earlier session
        than the cart's current one. Returns (events, decisions) deleted."""
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

    # ---------------------------------------------------------- outbox, retained
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


# ---------------------------------------------------------- state parts
_ABSENT = object()
_IMMUTABLE = (int, float, str, bool, type(None))
_BASKET_KEYS = ("lines", "personal")   # change only with the basket's version
_ID_KEYS = ("line_id", "id", "pid")
# dicts whose order nothing reads but creation order (looked up by id, or sorted; movements are
# made in id order): their items are stored without a key-order part, which every new or
# closed item rewrote; read back in id order
_UNORDERED = ("moves", "prompts", "reviews", "done", "unsettled")
HEAD = "="     # one part for the small plain values (version, clock, counters): one row per save, not three
# short lists that change with most weight events: in the head too
_HEAD_LISTS = ("settled_refs", "nochange_refs")


def _final_move(part: str, stored) -> bool:
    """A part that never changes once stored, so it is not compared again:
    - a decided movement (`done/<id>`, or `moves/<id>` in `done` state as older versions
      stored it): the engine keeps it only to recognise late vision
      for it and then deletes it; every change to it happens in the step that decides it
      (reconcile/decide.py, answers.py);
    - a prompt or review record (`prompts/<id>`, `reviews/<id>`): made once when the prompt or
      review opens (decide.py), only deleted after (ids are never reused: they count on
      across sessions). An engine change that edits one in place must drop it from here;
      gateway/tests/test_store_dirty.py compares the stored states with the engines'."""
    head = part[:8]
    if head == "prompts/" or head == "reviews/":
        return len(part) > 8
    if head[:5] == "done/":        # decided movements (reconcile/state.py: `done`)
        return len(part) > 5
    return head[:6] == "moves/" and type(stored) is dict and stored.get("state") == "done"


def split_state(state: dict, skip=()) -> dict[str, object]:
    """A reconciler state as parts: `key` for a plain value; for a dict of dicts
    (moves, prompts, reviews, ...) `key/` holds the key order and `key/<k>` each item;
    for a list of dicts with a unique id (lines, log, personal) `key/` holds the id
    field and the ids in order and `key/<id>` each item; the items of an unordered dict
    (_UNORDERED) are `key/<k>` without a `key/`; plain scalar values and dicts of scalars
    (version, now_ms, the counters `n`) together are the head part `=`."""
    return _split(state, skip)[0]


def _split(state: dict, skip=(), only=None, known=None, final=()) -> tuple[dict[str, object], set[str]]:
    """split_state; with `only` (key -> ids) only the items of that list with those ids
    become parts, the others (unchanged, stored in `known`) are returned as the second
    value: parts to keep as they are, as are the items named in `final` (stored, never
    changed again: _final_move)."""
    out: dict[str, object] = {"/": list(state)}    # top-level key order
    kept: set[str] = set()
    head: dict[str, object] = {}
    for k, v in state.items():
        if k in skip:       # the caller knows these are unchanged: no parts for them
            continue
        if type(v) in _IMMUTABLE or k in _HEAD_LISTS or (type(v) is dict and k not in _UNORDERED
                                                         and all(type(x) in _IMMUTABLE for x in v.values())):
            head[k] = v
            continue
        if k in _UNORDERED and type(v) is dict:     # (the engine's records: dicts, state.check_state)
            pre = k + "/"
            for sk, x in v.items():
                p = pre + sk
                if p in final:
                    kept.add(p)
                else:
                    out[p] = x
            continue
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            out[k + "/"] = {"dict": list(v)}
            for sk, x in v.items():
                p = f"{k}/{sk}"
                if p in final:
                    kept.add(p)
                else:
                    out[p] = x
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            changed = only.get(k) if only else None
            # basket lines always carry line_id (state.Line): no search for the id field
            idk = "line_id" if changed is not None else next((f for f in _ID_KEYS if all(f in x for x in v)), None)
            if idk is not None:
                ids = [str(x[idk]) for x in v]
                if len(set(ids)) == len(ids):
                    out[k + "/"] = {"list": ids, "id": idk}
                    for i, x in zip(ids, v):
                        p = f"{k}/{i}"
                        if changed is None or i in changed or p not in known:
                            out[p] = x
                        else:
                            kept.add(p)
                    continue
        out[k] = v
    if head:
        out[HEAD] = head
    return out, kept


def join_state(parts: dict[str, object]) -> dict:
    """The inverse of split_state, in the same key order."""
    state: dict = {}
    plain = parts.get(HEAD, {})
    for k in parts["/"]:
        if k in plain:
            state[k] = plain[k]
            continue
        if k in parts:      # (also a plain value stored on its own, as older versions did)
            state[k] = parts[k]
            continue
        if k + "/" not in parts:    # an unordered dict: its items, in id order
            pre = k + "/"
            state[k] = {p[len(pre):]: v for p, v in sorted(
                ((p, v) for p, v in parts.items() if p.startswith(pre)), key=lambda pv: _natural(pv[0]))}
            continue
        head = parts[k + "/"]
        if "dict" in head:
            state[k] = {sk: parts[f"{k}/{sk}"] for sk in head["dict"]}
        else:
            state[k] = [parts[f"{k}/{i}"] for i in head["list"]]
    return state


def _natural(key: str):
    """`p10` after `p9` (ids end in a counter)."""
    digits = len(key) - len(key.rstrip("0123456789"))
    return (key[: len(key) - digits], int(key[len(key) - digits:] or 0))


def _migrate_begin(db) -> bool:
    """A database from before instance ids (seqs without `inst`): set its tables aside."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(seqs)")]
    if not cols or "inst" in cols:
        return False
    db.execute("DROP INDEX IF EXISTS gaps_at")
    db.execute("ALTER TABLE seqs RENAME TO seqs_v1")
    db.execute("ALTER TABLE gaps RENAME TO gaps_v1")
    return True


def _migrate_end(db, old: bool) -> None:
    """Copy the old streams in as inst '' (the identity they had)."""
    if not old:
        return
    db.execute("INSERT INTO seqs SELECT cart, board, '', epoch, high, epoch FROM seqs_v1")
    db.execute("INSERT INTO gaps (cart, board, inst, epoch, lo, hi, t_ms) "
               "SELECT cart, board, '', epoch, lo, hi, t_ms FROM gaps_v1 ORDER BY id")
    db.execute("DROP TABLE seqs_v1")
    db.execute("DROP TABLE gaps_v1")


class _Savepoint:
    """Undo one message's changes if its handler fails, keep the rest of the batch."""
    _n = 0

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db
        _Savepoint._n += 1
        self.name = f"sp{_Savepoint._n}"

    def __enter__(self):
        self.db.execute(f"SAVEPOINT {self.name}")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.db.execute(f"ROLLBACK TO {self.name}")
            # save_cart's cache may list parts this rollback just undid: a later save
            # would then write only a diff against rows that are not there
            self.store._parts, self.store._heads, self.store._final = {}, {}, {}
            self.store._highs = {}
        self.db.execute(f"RELEASE {self.name}")
        return False
