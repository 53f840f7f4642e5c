"""The gateway's one SQLite database (WAL): `Store` opens it, creates or migrates the schema, and
runs the transactions and savepoints. What is stored is in the parts `Store` is made of: the
event log (event_log.py), cart states and the WeightBook (cart_states.py), reviews, receipts,
frames, bursts and the decision log (records.py), the outbox (outbox.py)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from .cart_states import CartStates
from .event_log import EventLog
from .outbox import Outbox
from .records import SessionRecords
from .schema import SCHEMA, _migrate_begin, _migrate_end


class Store(EventLog, CartStates, SessionRecords, Outbox):
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
        self._decisions: list[tuple] = []     # the decision log's rows not yet written (records.py)
        self._held_highs: dict[tuple, int] = {}     # streams' new `seqs.high` not yet written (event_log.py)

    # ---------------------------------------------------------- transactions
    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.flush_held()
            self.db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False
        self._parts, self._heads, self._final = {}, {}, {}    # what save_cart believes is stored may be gone
        self._highs = {}
        self._decisions, self._held_highs = [], {}      # made by the rolled-back work: never written

    def close(self) -> None:
        self.rollback()
        self.db.close()

    def savepoint(self):
        return _Savepoint(self)


class _Savepoint:
    """Undo one message's changes if its handler fails, keep the rest of the batch."""
    _n = 0

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db
        _Savepoint._n += 1
        self.name = f"sp{_Savepoint._n}"

    def __enter__(self):
        self.store.flush_held()    # held rows from before it are not this savepoint's to undo
        self.db.execute(f"SAVEPOINT {self.name}")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.db.execute(f"ROLLBACK TO {self.name}")
            # save_cart's cache may list parts this rollback just undid: a later save
            # would then write only a diff against rows that are not there
            self.store._parts, self.store._heads, self.store._final = {}, {}, {}
            self.store._highs = {}
            self.store._decisions, self.store._held_highs = [], {}    # only this savepoint's: flushed at its start
        else:
            self.store.flush_held()
        self.db.execute(f"RELEASE {self.name}")
        return False
