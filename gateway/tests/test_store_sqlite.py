"""The SQLite store: WAL + synchronous, dedupe by identity, gaps, outbox, survives reopening."""
import json
import sqlite3

import pytest

from cart_gateway.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "g.sqlite3")
    yield s
    s.close()


def test_pragmas_wal_and_full_sync(tmp_path):
    s = Store(tmp_path / "a.sqlite3")
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2     # FULL
    s.close()
    s = Store(tmp_path / "b.sqlite3", "NORMAL")
    assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 1
    s.close()


def test_event_identity_is_stored_once(store):
    store.begin()
    assert store.add_event("c1/scale/1/1", "c1", "scale", 1, 1, "weight", 5, b"{}")
    assert not store.add_event("c1/scale/1/1", "c1", "scale", 1, 1, "weight", 9, b"{}")
    store.commit()
    assert store.event_count() == 1


def test_gap_ranges_open_split_and_close(store):
    store.begin()
    assert store.note_seq("c1", "scale", 1, 1, 0) == ("next", None)
    assert store.note_seq("c1", "scale", 1, 6, 0) == ("gap", (2, 5))
    assert store.note_seq("c1", "scale", 1, 4, 0) == ("late", None)
    assert [(g["lo"], g["hi"]) for g in store.open_gaps()] == [(2, 3), (5, 5)]
    for seq in (2, 3, 5):
        store.note_seq("c1", "scale", 1, seq, 0)
    assert store.open_gaps() == []
    # a new epoch starts a fresh sequence: no gap from the old epoch's numbers
    assert store.note_seq("c1", "scale", 2, 1, 0) == ("next", None)
    store.commit()


def test_rolled_back_transaction_leaves_nothing(tmp_path):
    s = Store(tmp_path / "g.sqlite3")
    s.begin()
    s.add_event("c1/scale/1/1", "c1", "scale", 1, 1, "weight", 5, b"{}")
    s.rollback()
    assert s.event_count() == 0
    s.begin()
    with pytest.raises(RuntimeError):
        with s.savepoint():
            s.add_event("c1/scale/1/2", "c1", "scale", 1, 2, "weight", 5, b"{}")
            raise RuntimeError("handler failed")
    s.add_event("c1/scale/1/3", "c1", "scale", 1, 3, "weight", 5, b"{}")
    s.commit()
    ids = [r[0] for r in s.db.execute("SELECT event_id FROM events")]
    assert ids == ["c1/scale/1/3"]
    s.close()


def test_committed_state_is_visible_after_reopening_and_uncommitted_is_not(tmp_path):
    p = tmp_path / "g.sqlite3"
    s = Store(p)
    s.begin()
    s.save_cart("c1", 1, 0, {"x": 1}, {"scale/1": 5})
    s.save_book({"v": 1, "stats": {}})
    oid = s.outbox_add("carts/c1/basket", b"{}", 1, True)
    s.commit()
    s.begin()
    s.save_cart("c1", 1, 0, {"x": 2}, {})
    # a second connection (another process after a crash) sees only committed data
    other = sqlite3.connect(str(p))
    assert json.loads(other.execute("SELECT value FROM cart_parts WHERE part='='").fetchone()[0]) == {"x": 1}
    other.close()
    s.rollback()
    s.close()
    s = Store(p)
    assert s.load_carts() == [("c1", 1, 0, {"x": 1}, {"scale/1": 5})]
    assert s.load_book() == {"v": 1, "stats": {}}
    assert [r[0] for r in s.outbox()] == [oid] and s.retained() == [("carts/c1/basket", b"{}")]
    s.begin()
    s.outbox_done([oid])
    s.commit()
    assert s.outbox() == [] and s.retained() == [("carts/c1/basket", b"{}")]   # retained state stays
    s.close()


def test_reviews_keep_their_verdict(store):
    store.begin()
    store.add_review({"review_id": "c1-r1", "cart": "c1", "frames": ["c1/1/1"]}, 10)
    assert [r["review_id"] for r in store.open_reviews()] == ["c1-r1"]
    store.close_review("c1-r1", {"verdict_id": "v1"})
    store.close_review("c1-r1", None)          # closing again keeps the verdict
    store.commit()
    assert store.open_reviews() == []
    assert store.all_reviews()[0]["verdict"] == {"verdict_id": "v1"}


def test_cart_state_is_stored_in_parts_and_only_changed_parts_are_rewritten(tmp_path):
    from cart_gateway.store.cart_parts import join_state, split_state
    state = {"v": 1, "n": {"line": 2}, "now_ms": 5,
             "lines": [{"line_id": "L1", "qty": 1, "weight_g": 350.2}, {"line_id": "L2", "qty": 2, "weight_g": -0.0}],
             "moves": {"m1": {"id": "m1", "state": "done"}, "m2": {"id": "m2", "state": "waiting"}},
             "unsettled": {"1/7": {"mono_ms": 3}}, "visions": [{"mono_ms": 1}], "log": [], "receipt": None}
    assert join_state(split_state(state)) == state
    assert list(join_state(split_state(state))) == list(state)       # key order kept
    s = Store(tmp_path / "g.sqlite3")
    s.begin()
    first = s.save_cart("c1", 1, 0, state, {})
    assert s.save_cart("c1", 1, 0, state, {}) == 0          # nothing changed: nothing written
    state["lines"][1]["qty"] = 3                             # one line changes
    state["moves"].pop("m1")                                 # a movement is dropped
    state["now_ms"] = 9
    assert s.save_cart("c1", 1, 0, state, {}) == 3           # the line, m1 gone, the head (now_ms)
    s.commit()
    assert first == len(split_state(dict(state, moves={"m1": {}, "m2": {}})))
    s.begin()
    state["lines"].append({"line_id": "L3", "qty": 1, "weight_g": 1.0})
    s.save_cart("c1", 1, 0, state, {})
    s.rollback()                                             # the rolled-back line is not believed stored
    s.begin()
    state["lines"].pop()
    s.save_cart("c1", 1, 0, state, {})
    s.commit()
    s.close()
    got = Store(tmp_path / "g.sqlite3").load_carts()
    assert got == [("c1", 1, 0, state, {})]
    assert repr(got[0][3]["lines"][1]["weight_g"]) == "-0.0"  # exact values, not just equal ones


def test_a_full_json_state_from_an_older_version_still_loads(tmp_path):
    p = tmp_path / "g.sqlite3"
    s = Store(p)
    s.db.execute("INSERT INTO carts VALUES ('c1', 2, 7, ?, '{}')", ('{"v":1,"lines":[]}',))
    assert s.load_carts() == [("c1", 2, 7, {"v": 1, "lines": []}, {})]


def test_a_rolled_back_savepoint_is_not_believed_stored(tmp_path):
    """save_cart inside a savepoint that fails: the next save must write what the rollback undid."""
    s = Store(tmp_path / "g.sqlite3")
    state = {"v": 1, "lines": [{"line_id": "L1", "qty": 1}]}
    s.begin()
    s.save_cart("c1", 1, 0, state, {})
    s.commit()
    s.begin()
    with pytest.raises(RuntimeError):
        with s.savepoint():
            state["lines"].append({"line_id": "L2", "qty": 1})
            s.save_cart("c1", 1, 0, state, {})
            raise RuntimeError("a later write of the same message failed")
    state["lines"].append({"line_id": "L3", "qty": 1})
    s.save_cart("c1", 1, 0, state, {})
    s.commit()
    s.close()
    assert Store(tmp_path / "g.sqlite3").load_carts() == [("c1", 1, 0, state, {})]


def test_retention_finds_its_rows_through_indexes_not_table_scans(tmp_path):
    """prune() runs inside the core loop's transaction: a full scan of the event log or the
    decision log there stalls every message in the batch."""
    s = Store(tmp_path / "g.sqlite3")
    s.begin()
    for i in range(300):
        s.add_event(f"c{i % 30}/scale/1/{i}", f"c{i % 30}", "scale", 1, i, "weight", i, b"{}")
        s.add_decision(f"c{i % 30}", i % 3, {"outcome": "accept"}, i)
    for c in range(30):
        s.add_receipt(f"c{c}", "r", {}, 200)
        s.save_cart(f"c{c}", 3, 0, {"v": 1}, {})
    s.commit()
    s.db.execute("ANALYZE")
    seen = []
    s.db.set_trace_callback(seen.append)
    s.begin()
    assert s.prune(100, 100, 1000) == (100, 100)
    s.commit()
    s.db.set_trace_callback(None)
    deletes = [q for q in seen if q.lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 2
    for q in deletes:
        plan = [r[3] for r in s.db.execute("EXPLAIN QUERY PLAN " + q)]
        assert not [p for p in plan if p.startswith("SCAN") and ("events" in p or "decisions" in p
                                                                   or p in ("SCAN e", "SCAN d"))], plan
    s.close()
