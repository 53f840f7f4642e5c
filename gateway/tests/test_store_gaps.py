"""The gaps table (issue 11.8): indexed lookups, bounded per board, pruned with the event log."""
from gwcore import Harness

from cart_gateway.store import Store
from cart_bench.testkit import Board


def _statements(store, fn):
    seen = []
    store.db.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        store.db.set_trace_callback(None)
    return seen


def test_the_duplicate_and_gap_lookups_use_an_index_not_a_scan(tmp_path):
    s = Store(tmp_path / "g.sqlite3")
    s.begin()
    for seq in range(2, 400, 2):                     # seq 2, 4, 6 ...: one gap per message
        s.note_seq("c1", "scale", 1, seq, seq)
    s.commit()

    def work():
        s.add_event("c1/scale/1/10", "c1", "scale", 1, 10, "weight", 0, b"{}")   # received: a duplicate
        s.add_event("c1/scale/1/11", "c1", "scale", 1, 11, "weight", 0, b"{}")   # in a gap: accepted
        s.note_seq("c1", "scale", 1, 11, 0)                                    # closes it
    sql = [q for q in _statements(s, work) if "gaps" in q and q.lstrip().upper().startswith(("SELECT", "DELETE"))]
    assert sql
    for q in sql:
        plan = " ".join(r[3] for r in s.db.execute("EXPLAIN QUERY PLAN " + q))
        assert "SCAN gaps" not in plan and ("gaps_at" in plan or "INTEGER PRIMARY KEY" in plan), (q, plan)
    s.close()


def test_open_gaps_are_bounded_per_board_and_a_late_event_still_counts_once(tmp_path):
    h = Harness(tmp_path, retention={"gaps_per_board": 8})
    b = Board("c001", "scale")
    sent = {}
    for _ in range(40):                               # seq 2, 4, ... 80: 40 gaps
        b.seq += 1
        p = b.unsettled()
        sent[b.seq] = p
        h.send(b.topic, p)
    gaps = h.gw.store.open_gaps()
    assert len(gaps) <= 8 and h.count("gaps_trimmed") == 40 - 8
    # a missing seq inside a merged gap is still accepted once; a received one stays a duplicate
    late = gaps[0]["lo"]
    assert late % 2 == 1
    payload = sent[late + 1].replace(b'"seq":%d' % (late + 1), b'"seq":%d' % late)
    h.send(b.topic, payload)
    h.send(b.topic, payload)
    h.send(b.topic, sent[late + 1])
    assert h.count("duplicates") == 2
    assert h.gw.store.event_count() == 41


def test_retention_prunes_old_gaps(tmp_path):
    day = 86_400_000
    h = Harness(tmp_path, retention={"events_days": 1.0, "prune_interval_s": 1.0})
    b = Board("c001", "scale")
    for _ in range(5):
        b.seq += 1
        h.send(b.topic, b.unsettled())
    assert len(h.gw.store.open_gaps()) == 5
    h.tick(day // 2)
    assert len(h.gw.store.open_gaps()) == 5          # younger than the event log's retention
    h.tick(day)
    assert h.gw.store.open_gaps() == [] and h.count("pruned", "gaps") == 5
