"""The decision log and the outbox written with one executemany per batch: the rows stand or
fall with the transaction (and savepoint) of the events they came from, and read back as the
row-by-row writes did."""
import sqlite3

import pytest

from cart_gateway.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "g.sqlite3")
    yield s
    s.close()


def _rec(i, outcome="accept"):
    return {"id": f"d{i}", "outcome": outcome, "reason": "r"}


def test_a_rolled_back_batch_keeps_none_of_its_held_decisions(store, tmp_path):
    store.begin()
    store.add_decision("c1", 1, _rec(1), 10)
    store.add_decision("c1", 1, _rec(2), 11)
    store.rollback()
    store.begin()
    store.add_decision("c1", 1, _rec(3), 12)
    store.commit()
    assert [d["id"] for d in store.decisions()] == ["d3"]
    other = sqlite3.connect(str(tmp_path / "g.sqlite3"))     # another process sees the commit
    assert other.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 1
    other.close()


def test_a_commit_writes_the_held_decisions_in_order(store, tmp_path):
    store.begin()
    for i in range(5):
        store.add_decision(f"c{i % 2}", 1, _rec(i, "ask" if i % 2 else "accept"), i)
    other = sqlite3.connect(str(tmp_path / "g.sqlite3"))
    assert other.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0    # not committed yet
    store.commit()
    rows = other.execute("SELECT cart, session, outcome, t_ms FROM decisions ORDER BY id").fetchall()
    other.close()
    assert rows == [(f"c{i % 2}", 1, "ask" if i % 2 else "accept", i) for i in range(5)]
    assert [d["id"] for d in store.decisions("c1")] == ["d1", "d3"]


def test_a_failed_savepoint_drops_only_its_own_decisions(store):
    store.begin()
    store.add_decision("c1", 1, _rec(1), 1)           # the batch's, before the savepoint
    with pytest.raises(RuntimeError):
        with store.savepoint():
            store.add_decision("c1", 1, _rec(2), 2)
            raise RuntimeError("the message failed")
    with store.savepoint():
        store.add_decision("c1", 1, _rec(3), 3)
    store.add_decision("c1", 1, _rec(4), 4)
    store.commit()
    assert [d["id"] for d in store.decisions()] == ["d1", "d3", "d4"]


def test_a_reader_in_the_transaction_sees_the_held_decisions(store):
    """fleet.py counts a session's outcomes with its own query at checkout: the gateway
    flushes first (service/shopper_staff.py); decisions() and prune() flush themselves."""
    store.begin()
    store.add_decision("c1", 2, _rec(1), 1)
    store.flush_decisions()
    assert store.db.execute("SELECT COUNT(*) FROM decisions WHERE cart='c1' AND session=2").fetchone()[0] == 1
    store.add_decision("c1", 2, _rec(2), 2)
    assert len(store.decisions("c1")) == 2
    store.rollback()
    assert store.decisions() == []


def test_outbox_add_many_numbers_as_autoincrement_and_keeps_the_last_retained(store):
    store.begin()
    first = store.outbox_add("carts/c1/basket", b"a", 1, True)
    store.outbox_done([first])          # delivered: AUTOINCREMENT never hands its id out again
    ids = store.outbox_add_many([("carts/c1/screen/prompt", b"p", 1, False),
                                 ("carts/c1/basket", b"b", 1, True),
                                 ("carts/c2/basket", b"c", 1, True)])
    store.commit()
    assert ids == [first + 1, first + 2, first + 3]
    assert store.outbox() == [(first + 1, "carts/c1/screen/prompt", b"p", 1, False),
                              (first + 2, "carts/c1/basket", b"b", 1, True),
                              (first + 3, "carts/c2/basket", b"c", 1, True)]
    assert store.retained() == [("carts/c1/basket", b"b"), ("carts/c2/basket", b"c")]
    store.begin()
    store.outbox_done(ids)
    store.commit()
    store.begin()
    assert store.outbox_add("t", b"x", 1, False) == first + 4     # and the one-by-one path goes on above
    store.commit()
    assert store.outbox_add_many([]) == []


def test_a_rolled_back_outbox_batch_is_not_stored(store):
    store.begin()
    store.outbox_add_many([("carts/c1/basket", b"b", 1, True)])
    store.rollback()
    assert store.outbox() == [] and store.retained() == []


def _high_on_disk(tmp_path, cart="c1"):
    other = sqlite3.connect(str(tmp_path / "g.sqlite3"))
    try:
        row = other.execute("SELECT high FROM seqs WHERE cart=?", (cart,)).fetchone()
    finally:
        other.close()
    return row[0] if row else None


def test_a_streams_highest_seq_is_written_once_at_commit_and_not_after_a_rollback(store, tmp_path):
    store.begin()
    for seq in (1, 2, 3):
        assert store.add_event(f"c1/scale/1/{seq}", "c1", "scale", 1, seq, "weight", seq, b"{}")
        store.note_seq("c1", "scale", 1, seq, seq)
    store.commit()
    assert _high_on_disk(tmp_path) == 3
    store.begin()
    store.add_event("c1/scale/1/4", "c1", "scale", 1, 4, "weight", 4, b"{}")
    assert store.note_seq("c1", "scale", 1, 4, 4) == ("next", None)
    store.rollback()
    assert _high_on_disk(tmp_path) == 3
    store.begin()        # the event is new again after the rollback, and 4 follows 3
    assert store.add_event("c1/scale/1/4", "c1", "scale", 1, 4, "weight", 4, b"{}")
    assert store.note_seq("c1", "scale", 1, 4, 4) == ("next", None)
    store.commit()
    assert _high_on_disk(tmp_path) == 4


def test_a_failed_savepoint_drops_its_held_seq_and_keeps_the_one_before(store, tmp_path):
    store.begin()
    store.note_seq("c1", "scale", 1, 1, 1)
    with pytest.raises(RuntimeError):
        with store.savepoint():
            store.note_seq("c1", "scale", 1, 5, 5)      # a gap 2..4 and high 5: undone
            raise RuntimeError("the message failed")
    assert store.note_seq("c1", "scale", 1, 2, 2) == ("next", None)
    store.commit()
    assert _high_on_disk(tmp_path) == 2 and store.open_gaps() == []
