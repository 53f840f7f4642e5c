"""The gateway's state, read through a read-only SQLite connection (`mode=ro`).

The gateway process owns the database (WAL mode): this module never writes it,
and each thread has its own connection, so a page being rendered never holds a
lock the gateway's core loop would wait for. Only what the pages need is read:
the review queue and requests, the retained topics the gateway publishes
(baskets, screen states, receipts: its own committed copy of them), the frames
index, weight events of a movement and the decision log for the figures.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

FRAME_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}/[0-9]{1,10}/[0-9]{1,10}$")   # <cart>/<epoch>/<frame>


class GatewayStateMissing(RuntimeError):
    """The gateway's database does not exist yet (the gateway has never run here)."""


@dataclass(frozen=True)
class Review:
    review_id: str
    cart: str
    status: str          # open | closed
    created_ms: int      # the gateway's receive time when it opened
    request: dict        # the §13 review request
    verdict: dict | None


@dataclass(frozen=True)
class WeightPoint:
    t_ms: int
    type: str            # unsettled | weight
    seq: int
    total_g: float
    window: dict | None


class GatewayState:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.db_path = self.state_dir / "gateway.sqlite3"
        self.frames_root = (self.state_dir / "frames").resolve()
        self._local = threading.local()

    # ------------------------------------------------------------ connection
    def db(self) -> sqlite3.Connection:
        c = getattr(self._local, "db", None)
        if c is None:
            if not self.db_path.exists():
                raise GatewayStateMissing(f"{self.db_path}: no gateway database (has the gateway run?)")
            c = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False, timeout=2)
            c.execute("PRAGMA query_only=ON")
            self._local.db = c
        return c

    # ------------------------------------------------------------ reviews
    def _review(self, row) -> Review:
        rid, cart, req, status, verdict, t = row
        return Review(rid, cart, status, t, json.loads(req), json.loads(verdict) if verdict else None)

    def open_reviews(self) -> list[Review]:
        rows = self.db().execute("SELECT review_id, cart, request, status, verdict, t_ms FROM reviews "
                                 "WHERE status='open' ORDER BY t_ms, review_id").fetchall()
        return [self._review(r) for r in rows]

    def review(self, review_id: str) -> Review | None:
        row = self.db().execute("SELECT review_id, cart, request, status, verdict, t_ms FROM reviews "
                                "WHERE review_id=?", (review_id,)).fetchone()
        return self._review(row) if row else None

    def review_status(self, review_id: str) -> str | None:
        row = self.db().execute("SELECT status FROM reviews WHERE review_id=?", (review_id,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------ retained topics
    def retained(self, prefix: str = "carts/") -> dict[str, dict]:
        """topic -> decoded payload of what the gateway last published retained under `prefix`."""
        out = {}
        for t, p in self.db().execute("SELECT topic, payload FROM retained WHERE topic >= ? AND topic < ?",
                                      (prefix, prefix + "\uffff")):
            try:
                out[t] = json.loads(bytes(p))
            except ValueError:
                continue
        return out

    def retained_one(self, topic: str) -> dict | None:
        row = self.db().execute("SELECT payload FROM retained WHERE topic=?", (topic,)).fetchone()
        return json.loads(bytes(row[0])) if row else None

    def carts(self) -> list[str]:
        return [r[0] for r in self.db().execute("SELECT cart FROM carts ORDER BY cart")]

    def last_event_ms(self) -> dict[str, int]:
        return dict(self.db().execute("SELECT cart, MAX(t_ms) FROM events GROUP BY cart").fetchall())

    # ------------------------------------------------------------ frames
    def frame_file(self, frame_id: str) -> Path | None:
        """The file of a stored frame, or None (unknown id, deleted by retention, or outside the frame store)."""
        if not FRAME_ID_RE.match(frame_id):
            return None
        row = self.db().execute("SELECT path FROM frames WHERE frame_id=?", (frame_id,)).fetchone()
        if not row:
            return None
        p = Path(row[0]).resolve()
        if self.frames_root not in p.parents or not p.is_file():
            return None
        return p

    def present_frames(self, frame_ids: list[str]) -> set[str]:
        if not frame_ids:
            return set()
        q = ",".join("?" * len(frame_ids))
        return {r[0] for r in self.db().execute(f"SELECT frame_id FROM frames WHERE frame_id IN ({q})", frame_ids)}

    def capture_events(self, cart: str, limit: int = 50) -> list[dict]:
        """The camera's latest capture events (§6.3) of a cart, newest first."""
        out = []
        for (payload,) in self.db().execute("SELECT payload FROM events WHERE cart=? AND board='cam' AND "
                                            "type='capture' ORDER BY t_ms DESC LIMIT ?", (cart, limit)):
            try:
                out.append(json.loads(bytes(payload)))
            except ValueError:
                continue
        return out

    # ------------------------------------------------------------ weight trace of a movement
    def weight_trace(self, cart: str, epoch: int, seq: int, before: int = 12, after: int = 4) -> list[WeightPoint]:
        """The scale's events around the movement (`before` earlier, `after` later), by receive time."""
        rows = self.db().execute(
            "SELECT t_ms, type, seq, payload FROM events WHERE cart=? AND board='scale' AND epoch=? "
            "AND seq BETWEEN ? AND ? AND type IN ('weight','unsettled') ORDER BY seq",
            (cart, epoch, max(1, seq - 2 * before), seq + 2 * after)).fetchall()
        out = []
        for t, typ, s, payload in rows:
            try:
                d = json.loads(bytes(payload))
            except ValueError:
                continue
            out.append(WeightPoint(t, typ, s, float(d.get("total_g", 0.0)), d.get("window")))
        return out

    # ------------------------------------------------------------ figures
    def records_mark(self) -> tuple:
        """Changes whenever a decision, review or receipt is added (cheap: rowid maxima)."""
        return self.db().execute("SELECT (SELECT MAX(id) FROM decisions), (SELECT MAX(rowid) FROM reviews), "
                                 "(SELECT COUNT(*) FROM reviews WHERE status='open'), "
                                 "(SELECT MAX(rowid) FROM receipts)").fetchone()
    def receipts_between(self, t0: int, t1: int) -> list[tuple[int, dict]]:
        rows = self.db().execute("SELECT t_ms, receipt FROM receipts WHERE t_ms >= ? AND t_ms < ?", (t0, t1))
        return [(t, json.loads(r)) for t, r in rows]

    def review_times_between(self, t0: int, t1: int) -> list[tuple[str, int]]:
        return self.db().execute("SELECT review_id, t_ms FROM reviews WHERE t_ms >= ? AND t_ms < ?",
                                 (t0, t1)).fetchall()

    def review_opened_ms(self, review_ids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(review_ids), 500):
            chunk = review_ids[i:i + 500]
            q = ",".join("?" * len(chunk))
            out.update(self.db().execute(f"SELECT review_id, t_ms FROM reviews WHERE review_id IN ({q})", chunk))
        return out

    def decisions_between(self, outcome: str, t0: int, t1: int) -> list[tuple[int, dict]]:
        rows = self.db().execute("SELECT t_ms, record FROM decisions WHERE outcome=? AND t_ms >= ? AND t_ms < ?",
                                 (outcome, t0, t1))
        return [(t, json.loads(r)) for t, r in rows]

    def count_decisions_between(self, outcome: str, t0: int, t1: int) -> int:
        return self.db().execute("SELECT COUNT(*) FROM decisions WHERE outcome=? AND t_ms >= ? AND t_ms < ?",
                                 (outcome, t0, t1)).fetchone()[0]
