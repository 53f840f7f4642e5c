"""Each cart's reconciler state, stored in parts (cart_parts.py) and rewritten only where it
changed, and the store-wide WeightBook."""
from __future__ import annotations

import json
import pickle
import sqlite3

from .cart_parts import _ABSENT, _BASKET_KEYS, _IMMUTABLE, HEAD, _final_move, _split, join_state

# what save_cart keeps for a part that never changes once stored (cart_parts._final_move: a
# decided movement, a prompt or review record): it is not compared again, so no copy is kept.
# Equal to nothing, so should it be compared (a new session numbers its ids from 1 again) it is
# rewritten.
_STORED = object()


# json.dumps with options builds an encoder per call; a save writes several parts
_PART_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class CartStates:
    """Part of `Store` (database.py): cart states and the WeightBook."""
    db: sqlite3.Connection
    _parts: dict[str, dict[str, object]]
    _final: dict[str, set[str]]
    _heads: dict[str, tuple]

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
            self._heads[c] = (sess, vb, dict(clock))
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
        reopened = getattr(dirty, "reopened", ())
        head = self._heads.get(cart)
        same_session = (head or (None,))[0] == session
        # the clock (board offsets) is compared as a dict: JSON only when the row is written
        if head != (session, version_base, clock):
            self.db.execute("INSERT OR REPLACE INTO carts VALUES (?,?,?,?,?)",
                            (cart, session, version_base, "", json.dumps(clock, sort_keys=True)))
            self._heads[cart] = (session, version_base, dict(clock))
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
                if _final_move(p, v):
                    # never compared again (it is kept while in `final`): no copy of it
                    final.add(p)
                    known[p] = _STORED
                else:
                    # a key order (`k/`) is made fresh by _split, a number or string cannot change:
                    # only what the engine holds and may change in place is copied
                    known[p] = v if p[-1] == "/" or type(v) in _IMMUTABLE else pickle.loads(pickle.dumps(v, 5))
        gone = [(cart, p) for p in known.keys() - parts.keys() - kept if p.split("/", 1)[0] not in skip]
        for _, p in gone:
            del known[p]
            final.discard(p)
        if put:
            self.db.executemany("INSERT OR REPLACE INTO cart_parts VALUES (?,?,?)", put)
        if gone:
            self.db.executemany("DELETE FROM cart_parts WHERE cart=? AND part=?", gone)
        return len(put) + len(gone)

    # The WeightBook's learned statistics: one `book_stats` row per SKU, so a batch that learned
    # from a few sales writes those SKUs, not the whole book (a store that has learned its
    # 30,000 SKUs would rewrite ~1.5 MB of JSON per such batch). The `book` row then says so
    # ({"v": 1, "stats": {}, "in_rows": true}); a database from before holds the whole book in
    # that row, which still loads, and its first save writes every row.
    def load_book(self) -> dict | None:
        row = self.db.execute("SELECT state FROM book WHERE id=1").fetchone()
        if not row:
            return None
        head = json.loads(row[0])
        if not head.get("in_rows"):
            return head
        return {"v": head.get("v", 1), "stats": {sku: [n, mean, m2] for sku, n, mean, m2 in
                                                  self.db.execute("SELECT sku, n, mean, m2 FROM book_stats")}}

    def book_in_rows(self) -> bool:
        """Whether the stored book is per-SKU rows, so a save of the changed SKUs alone is whole."""
        row = self.db.execute("SELECT state FROM book WHERE id=1").fetchone()
        return bool(row) and bool(json.loads(row[0]).get("in_rows"))

    def save_book(self, state: dict, only=None) -> None:
        """Store the book (WeightBook.to_dict()); `only`: the SKUs changed since the last save of
        this store's book as rows (book_in_rows), and only their rows are written."""
        stats = state["stats"]
        if only is None:
            self.db.execute("DELETE FROM book_stats")
            self.db.execute("INSERT OR REPLACE INTO book VALUES (1, ?)",
                            (json.dumps({"v": state.get("v", 1), "stats": {}, "in_rows": True}),))
            only = stats
        self.db.executemany("INSERT OR REPLACE INTO book_stats VALUES (?,?,?,?)",
                            [(sku, *stats[sku]) for sku in only if sku in stats])
