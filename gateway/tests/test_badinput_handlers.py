"""Bad input through the handler: each is logged and counted, none crashes, none counts twice."""
import json
import logging

import pytest
from gwcore import JPEG, JUICE, KETCHUP, Harness

from cart_gateway.protocol import CHUNK_HEADER
from cart_bench.testkit import Board, frame_chunks


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path)


def state(h):
    rt = h.gw.carts.get("c001")
    return rt.engine.to_json() if rt else None


@pytest.mark.parametrize("payload, reason", [
    (b"not json", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'{"v": 1, "type": "weight"}', "malformed"),
    (b'{"v": 2, "cart": "c001"}', "malformed"),
    (b"\xff\xfe\x00", "malformed"),
    (b"{" + b" " * 2000 + b"}", "malformed"),     # over the 1024-byte event limit
])
def test_malformed_event_is_counted_and_changes_nothing(h, payload, reason, caplog):
    h.move(JUICE[1], JUICE[0])
    before, events = state(h), h.gw.store.event_count()
    with caplog.at_level(logging.WARNING, logger="cart_gateway"):
        out = h.send("carts/c001/scale/evt", payload)
    assert out == [] and state(h) == before and h.gw.store.event_count() == events
    assert h.count("bad", reason) == 1
    assert any(getattr(r, "cg_event", "") == "bad_input" for r in caplog.records)


def test_event_whose_cart_differs_from_topic_is_rejected(h):
    other = Board("c002")
    h.send("carts/c001/scale/evt", other.unsettled())
    assert h.count("bad", "malformed") == 1 and h.gw.store.event_count() == 0


def test_unknown_cart_is_rejected_and_counted(h):
    stranger = Board("c999")
    for t, p in stranger.movement(JUICE[1]):
        h.send(t, p)
    assert h.count("bad", "unknown_cart") == 2
    assert "c999" not in h.gw.carts and h.gw.store.event_count() == 0


def test_topic_outside_the_tree_is_rejected(h):
    h.send("carts/C001/scale/evt", b"{}")
    h.send("carts/c001/oven/evt", b"{}")
    assert h.count("bad", "malformed") == 2


def test_duplicate_event_is_dropped_and_not_counted_twice(h):
    sc = h.scale
    u = sc.unsettled()
    w = sc.weight(KETCHUP[1], unsettled_seq=sc.seq)
    for p in (u, w, u, w, w):
        h.send(sc.topic, p)
    h.tick(2000)
    assert h.count("duplicates") == 3 and h.gw.store.event_count() == 2
    lines = h.gw.carts["c001"].engine.basket()["lines"]
    assert len(lines) == 1 and lines[0]["weight_g"] == KETCHUP[1]


def test_gap_is_recorded_and_closed_when_the_events_come_late(h):
    sc = h.scale
    msgs = [sc.unsettled(), sc.weight(JUICE[1], unsettled_seq=1), sc.unsettled(), sc.weight(KETCHUP[1], unsettled_seq=3)]
    h.send(sc.topic, msgs[0])
    h.send(sc.topic, msgs[3])            # seq 4 after seq 1: 2..3 missing
    assert h.gw.store.open_gaps() == [{"cart": "c001", "board": "scale", "epoch": 1, "lo": 2, "hi": 3}]
    assert h.count("gaps") == 1 and h.count("gap_events") == 2
    h.send(sc.topic, msgs[2])            # seq 3 arrives late
    assert h.gw.store.open_gaps() == [{"cart": "c001", "board": "scale", "epoch": 1, "lo": 2, "hi": 2}]
    h.send(sc.topic, msgs[1])
    assert h.gw.store.open_gaps() == [] and h.count("late") == 2
    h.tick(2500)
    ws = sorted(ln["weight_g"] for ln in h.gw.carts["c001"].engine.basket()["lines"])
    assert ws == [KETCHUP[1], JUICE[1]]  # both movements counted once, out of order or not


def test_older_epoch_events_after_a_reboot_are_accepted(h):
    old = Board("c001", epoch=3)
    new = Board("c001", epoch=4)
    for t, p in new.movement(JUICE[1]):
        h.send(t, p)
    for t, p in old.movement(KETCHUP[1]):
        h.send(t, p)
    assert h.gw.store.event_count() == 4 and h.gw.store.open_gaps() == []


def test_oversized_and_corrupt_frames_are_rejected(h):
    big = CHUNK_HEADER.pack(b"CF", 1, 1, 1, 1, 0, 1, 5000, 0) + b"x" * 5000
    h.send("carts/c001/cam/frame", big)
    assert h.count("bad", "malformed") == 1 and h.count("frames", "oversized") == 1
    chunks = frame_chunks(1, 2, JPEG)
    bad = bytearray(chunks[-1])
    bad[-1] ^= 0xFF                       # CRC no longer matches
    for c in chunks[:-1] + [bytes(bad)]:
        h.send("carts/c001/cam/frame", c)
    assert h.count("bad", "malformed") == 2 and h.gw.store.frames() == []
    huge_size = CHUNK_HEADER.pack(b"CF", 1, 1, 1, 3, 0, 64, 200_000, 0) + b"x"
    h.send("carts/c001/cam/frame", huge_size)
    assert h.count("bad", "malformed") == 3


def test_too_many_frames_in_progress_is_bounded(tmp_path):
    h = Harness(tmp_path, frames={"max_in_progress": 2})
    for n in (1, 2, 3):
        h.send("carts/c001/cam/frame", frame_chunks(1, n, JPEG)[0])
    # bounded: the oldest unfinished frame gives its slot to the newest (counted per cart)
    assert len(h.gw.asm) == 2 and h.count("frames_dropped", "c001", "evicted") == 1
    h.tick(6000)                          # §7: incomplete 5 s after the first chunk
    assert len(h.gw.asm) == 0 and h.count("frames", "incomplete") == 2


def test_bad_answers_checkouts_and_verdicts(h):
    h.send("carts/c001/screen/answer", b'{"v":1,"prompt_id":"p","answer_id":"a","choice":{"sku":"x","none":true}}')
    h.send("carts/c001/checkout", b'{"v":1}')
    h.send("gateway/gw1/review/verdict", b'{"v":1,"review_id":"r","verdict_id":"v","sku":null,"qty":-1}')
    assert h.count("bad", "malformed") == 3
    h.send("gateway/gw1/review/verdict", b'{"v":1,"review_id":"nope","verdict_id":"v","sku":null,"qty":1}')
    h.send("gateway/gw2/review/verdict", b'{"v":1,"review_id":"r","verdict_id":"v","sku":null,"qty":1}')
    assert h.count("bad", "other_gateway") == 1


def test_verdict_naming_a_sku_outside_the_catalogue_is_rejected_and_review_stays_open(h):
    from cart_bench.testkit import verdict
    h.move(7000.0, KETCHUP[0])
    rid = h.last("gateway/gw1/review/new")["review_id"]
    h.send("gateway/gw1/review/verdict", verdict(rid, "v1", "NOPE", 1))
    assert h.count("bad", "rejected_by_engine") == 1
    assert [r["review_id"] for r in h.gw.store.open_reviews()] == [rid]
    h.send("gateway/gw1/review/verdict", verdict(rid, "v2", KETCHUP[0], 1))
    assert h.gw.store.open_reviews() == []


@pytest.mark.parametrize("lists", [b'"adds":[]', b'"adds":[],"removes":[]', b'"adds":[{"sku":"","qty":1}]'])
def test_verdict_whose_item_lists_name_nothing_leaves_the_review_open(h, lists):
    """Empty lists would close the review with no basket change whatever sku/qty say: an undercharge."""
    h.move(7000.0, KETCHUP[0])
    rid = h.last("gateway/gw1/review/new")["review_id"]
    before = state(h)
    h.send("gateway/gw1/review/verdict", b'{"v":1,"review_id":"' + rid.encode() + b'","verdict_id":"v1",'
           b'"sku":"' + KETCHUP[0].encode() + b'","qty":1,' + lists + b'}')
    assert h.count("bad", "malformed") == 1
    assert [r["review_id"] for r in h.gw.store.open_reviews()] == [rid] and state(h) == before


def test_a_write_failing_after_the_carts_were_saved_loses_nothing_and_corrupts_nothing(h, monkeypatch):
    """The WeightBook write fails after the cart parts were written: the message's savepoint
    is rolled back, so memory, the part cache and the database must all go back with it."""
    import itertools

    from cart_gateway.service import Gateway
    from cart_gateway.store import Store
    h.move(JUICE[1])
    before, events = state(h), h.gw.store.event_count()
    sc = h.scale
    msgs = [(sc.topic, sc.unsettled())]
    msgs.append((sc.topic, sc.weight(KETCHUP[1], unsettled_seq=sc.seq)))

    def disk_full(_state, only=None):
        raise OSError("disk full")
    # every book comparison differs (each read of its version is new), so every message writes
    # the book, which fails
    ticks = itertools.count(10**9)
    monkeypatch.setattr(type(h.gw.book), "version", property(lambda self: next(ticks), lambda self, v: None),
                        raising=False)
    monkeypatch.setattr(h.gw.store, "save_book", disk_full)
    for t, p in msgs:
        assert h.send(t, p) == []
    assert h.count("bad", "internal_error") == 2
    assert state(h) == before and h.gw.store.event_count() == events
    monkeypatch.undo()
    for t, p in msgs:             # not acknowledged, so the broker delivers them again
        h.send(t, p)
    assert len(h.basket()["lines"]) == 2
    h.send(sc.topic, sc.unsettled())          # a further change is written as a diff of what is stored
    mine = h.gw.carts["c001"].engine.to_json()
    stored = Store(h.gw.store.path).load_carts()
    assert [r[0] for r in stored] == ["c001"]
    again = Gateway(h.cfg)                    # starts (no KeyError on a missing part) with the same cart
    assert again.carts["c001"].engine.to_json() == mine
