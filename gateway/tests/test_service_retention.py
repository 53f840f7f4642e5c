"""Event log and decision log retention: only closed sessions are pruned, and a pruned
event redelivered later is still recognised as a duplicate."""
from gwcore import JUICE, KETCHUP, Harness

from cart_bench.testkit import Board, checkout

SHORT = {"events_days": 10 / 86400, "decisions_days": 10 / 86400, "prune_interval_s": 1}   # 10 s


def _events(h, cart):
    return [r[0] for r in h.gw.store.db.execute("SELECT event_id FROM events WHERE cart=? ORDER BY rowid", (cart,))]


def _sessions(h, cart):
    return sorted({r[0] for r in h.gw.store.db.execute("SELECT session FROM decisions WHERE cart=?", (cart,))})


def test_retention_prunes_closed_sessions_only_and_keeps_duplicate_detection(tmp_path):
    h = Harness(tmp_path, retention=SHORT)
    h.move(JUICE[1], JUICE[0])                                   # c001 session 1, accepted on vision
    h.move(JUICE[1], JUICE[0])                                   # two decisions: the count below is exact
    h.send("carts/c001/checkout", checkout("r1"))
    assert h.last("carts/c001/receipt")["ok"]
    closed = _events(h, "c001")
    juice_weight = h.gw.store.db.execute(
        "SELECT payload FROM events WHERE cart='c001' AND type='weight'").fetchone()[0]
    other = Board("c002")                                        # c002: an open basket, never checked out
    h.send(other.topic, other.unsettled())
    h.send(other.topic, other.weight(KETCHUP[1], unsettled_seq=other.seq))
    h.tick(1600)                                                 # no vision: decided (asks) on the timer
    h.move(KETCHUP[1], KETCHUP[0])                               # c001 session 2 (open)
    open_c001 = [e for e in _events(h, "c001") if e not in closed]
    open_c002 = _events(h, "c002")
    assert _sessions(h, "c001") == [1, 2] and _sessions(h, "c002") == [1]
    closed_decisions = h.gw.store.db.execute(
        "SELECT COUNT(*) FROM decisions WHERE cart='c001' AND session=1").fetchone()[0]
    assert closed_decisions == 2                                 # one per movement
    basket = h.basket()

    h.tick(1000)                     # younger than the cut-off: nothing goes
    assert _events(h, "c001") == closed + open_c001
    h.tick(12000)                    # now every row is older than 10 s
    assert _events(h, "c001") == open_c001                       # session 1's events are gone
    assert _events(h, "c002") == open_c002                       # the open basket keeps its old events
    assert _sessions(h, "c001") == [2] and _sessions(h, "c002") == [1]
    assert h.count("pruned", "events") == len(closed)
    assert h.count("pruned", "decisions") == closed_decisions

    # the broker or the board's journal sends a pruned event again: still a duplicate
    dups = h.count("duplicates")
    h.send(Board("c001").topic, bytes(juice_weight))
    assert h.count("duplicates") == dups + 1
    assert _events(h, "c001") == open_c001
    assert h.gw.carts["c001"].engine.s["lines"][0]["sku"] == KETCHUP[0] and len(h.gw.carts["c001"].engine.s["lines"]) == 1
    assert h.basket()["lines"] == basket["lines"]


def test_retention_config_is_validated(tmp_path):
    import pytest
    from cart_gateway.config import ConfigError, parse_config
    with pytest.raises(ConfigError, match="retention.events_days"):
        parse_config({"retention": {"events_days": 0}})
    with pytest.raises(ConfigError, match="retention.keep: unknown key"):
        parse_config({"retention": {"keep": 1}})
