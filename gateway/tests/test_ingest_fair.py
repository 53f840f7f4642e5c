"""The ingest queue (issue 11.11): round-robin between carts, each cart's order kept, QoS 0
bounded per cart in count and rate with drops counted, QoS 1 never dropped."""
from collections import Counter

from cart_gateway.ingest import FairQueue, source_of


def test_round_robin_between_carts_keeps_each_carts_order():
    q = FairQueue(10_000)
    for i in range(500):
        q.put("c001", 1, ("c001", i))
    q.put("c002", 1, ("c002", 0))
    q.put("c002", 1, ("c002", 1))
    q.put_internal("puback")
    first = q.take(0, 8)
    assert first[:2] == ["puback", ("c001", 0)] and ("c002", 0) in first and ("c002", 1) in first
    rest = first + [x for _ in range(100) for x in q.take(0, 64)]
    assert [i for c, i in rest[1:] if c == "c001"] == list(range(500)) and q.qsize() == 0


def test_qos0_is_bounded_and_rate_limited_per_cart_and_drops_are_counted_qos1_never():
    drops = Counter()
    q = FairQueue(100, lambda cart: drops.update([cart]), qos0_rate=1e-9)   # no refill within the test
    kept = sum(q.put("c001", 0, i) for i in range(5000))
    assert kept == 100 and drops["c001"] == 4900
    assert all(q.put("c001", 1, i) for i in range(2000))     # QoS 1: the broker's Receive Maximum bounds it
    assert q.put("c002", 0, "tele") and drops["c002"] == 0
    assert q.qsize() == 100 + 2000 + 1
    while q.take(0, 1000):
        pass
    assert not q.put("c001", 0, "more") and drops["c001"] == 4901   # queue empty, but over its rate


def test_sources_are_known_carts_only():
    accepts = {"c001", "c002"}.__contains__
    assert source_of("carts/c001/scale/evt", accepts) == "c001"
    assert source_of("carts/zz999/scale/evt", accepts) == "unknown"
    assert source_of("carts/", accepts) == "unknown"
    assert source_of("gateway/gw1/review/verdict", accepts) == "gateway"
