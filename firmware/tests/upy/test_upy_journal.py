# Runs inside micropython (collected by cart_testing.upy_runner).
# heapsize: 96k
# The flash journal as the board sees it: append, ack, replay, torn records.
import os
from cartfw import journal

J = "upy-journal-test"  # in the runner's private working directory (a fixed /tmp path is shared)


def _fresh():
    try:
        for f in os.listdir(J):
            os.remove(J + "/" + f)
    except OSError:
        os.mkdir(J)


def _drain(j):
    # Publish everything pending, as the outbox does, without acks.
    out = []
    while True:
        nxt = j.peek()
        if nxt is None:
            return out
        out.append(nxt[1])
        j.sent(nxt[0])


def _open(**kw):
    j = journal.Journal(J, **kw)
    j.open()
    return j


def test_append_peek_ack_in_order():
    _fresh()
    j = _open()
    for i in range(5):
        j.append(b"event-%d" % i)
    got = []
    while True:
        nxt = j.peek()
        if nxt is None:
            break
        pos, payload = nxt
        got.append(payload)
        j.sent(pos)
        j.ack(pos)
    assert got == [b"event-%d" % i for i in range(5)], got
    assert j.depth == 0


def test_unacked_events_replay_after_reopen():
    _fresh()
    j = _open()
    for i in range(4):
        j.append(b"e%d" % i)
    pos, p = j.peek()
    j.sent(pos)
    j.ack(pos)
    j.flush()
    j2 = _open()                      # a reboot: only what is on flash
    out = _drain(j2)
    assert out == [b"e1", b"e2", b"e3"], out


def test_torn_last_record_is_dropped_and_the_rest_kept():
    _fresh()
    j = _open()
    j.append(b"kept-1")
    j.append(b"kept-2")
    j.append(b"torn-record")
    names = [n for n in os.listdir(J) if not n.startswith("cur")]
    names.sort()
    path = J + "/" + names[-1]
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-3])              # the power died mid-write
    j2 = _open()
    out = _drain(j2)
    assert out == [b"kept-1", b"kept-2"], out


def test_scan_stops_at_a_bad_checksum():
    good = journal.frame(b"abc") + journal.frame(b"def")
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    recs, valid, damaged = journal.scan(bytes(bad))
    assert [p for _, p in recs] == [b"abc"] and damaged


def test_full_journal_refuses_and_counts():
    _fresh()
    j = _open(max_bytes=4096, segment_bytes=1024)
    n = 0
    try:
        while n < 1000:
            j.append(b"x" * 100)
            n += 1
    except journal.JournalFull:
        pass
    assert 0 < n < 1000 and j.dropped == 1


def test_record_size_limits_name_the_problem():
    try:
        journal.frame(b"")
    except ValueError as e:
        assert "size 0" in str(e)
    else:
        raise AssertionError("empty record accepted")
