"""What the gateway sends head office (docs/fleet.md): one ledger record per
receipt with its basket summary and nothing that names a frame, figures and
health on the timer, and the end-to-end acknowledgement that makes it send
again only what the link lost."""
import json

import pytest
from gwcore import JUICE, KETCHUP, Harness

from cart_bench.testkit import answer, checkout


def records(h, kind):
    return [json.loads(p.encoded()) for p in h.out if p.topic == f"gateway/gw1/fleet/out/{kind}"]


def paid_basket(h, req="r1"):
    h.move(JUICE[1], JUICE[0])                  # accepted
    h.move(KETCHUP[1])                          # weight only: a prompt
    h.tick(2000)
    p = h.last("carts/c001/screen/prompt")
    h.send("carts/c001/screen/answer", answer(p["prompt_id"], "a1", sku=KETCHUP[0]))
    h.send("carts/c001/checkout", checkout(req))


def test_a_receipt_makes_one_ledger_record_with_its_basket_and_no_frame(tmp_path):
    h = Harness(tmp_path)
    paid_basket(h)
    (rec,) = records(h, "receipt")
    receipt = h.last("carts/c001/receipt")
    assert rec["receipt"]["receipt_id"] == receipt["receipt_id"] and rec["cart"] == "c001"
    assert rec["receipt"]["total_cents"] == receipt["total_cents"]
    assert rec["basket"]["prompts"] == 1 and rec["basket"]["reviews"] == 0
    assert rec["basket"]["items"] == sum(ln["qty"] for ln in receipt["lines"])
    assert "frame" not in json.dumps(rec)
    # the same checkout again: the same receipt, no second record
    h.send("carts/c001/checkout", checkout("r1"))
    assert len(records(h, "receipt")) == 1


def test_figures_and_health_on_the_timer(tmp_path):
    h = Harness(tmp_path, fleet={"figures_interval_s": 10.0})
    paid_basket(h)
    h.tick(1000)
    assert not records(h, "figures")            # the first an interval after start
    h.tick(10_000)
    (fig,) = records(h, "figures")
    assert fig["baskets"] == 1 and fig["prompts"] == 1 and fig["reviews_per_1000_baskets"] == 0.0
    (health,) = records(h, "health")
    assert health["ledger_pending"] == 1 and health["carts"] >= 1


def test_only_what_the_ledger_did_not_acknowledge_is_sent_again_and_only_while_acks_arrive(tmp_path):
    h = Harness(tmp_path, fleet={"resend_s": 5.0})
    paid_basket(h, "r1")
    (first,) = records(h, "receipt")
    h.tick(60_000)
    assert len(records(h, "receipt")) == 1      # no ack ever: the link is down, the bridge queue holds it
    h.send("carts/c002/checkout", checkout("r2"))
    second = records(h, "receipt")[-1]
    # the ledger acknowledges the second one only (the first was lost on the way)
    h.send("gateway/gw1/fleet/in/ack", json.dumps({"v": 1, "receipts": [second["receipt"]["receipt_id"]]}).encode())
    h.tick(6000)
    again = records(h, "receipt")[2:]
    assert [r["receipt"]["receipt_id"] for r in again] == [first["receipt"]["receipt_id"]]
    assert again[0] == first                    # the same record: the ledger sees one receipt
    h.send("gateway/gw1/fleet/in/ack", json.dumps({"v": 1, "receipts": [first["receipt"]["receipt_id"]]}).encode())
    h.tick(60_000)
    assert len(records(h, "receipt")) == 3 and h.gw.fleet.pending() == 0


@pytest.mark.parametrize("payload", [b"nope", b"[]", b'{"v":1}', b'{"v":2,"receipts":[]}',
                                     b'{"v":1,"receipts":[1]}', b'{"v":1,"receipts":["' + b"x" * 300 + b'"]}',
                                     json.dumps({"v": 1, "receipts": ["a"] * 6000}).encode()])
def test_a_bad_ack_is_refused_and_forgets_nothing(tmp_path, payload):
    h = Harness(tmp_path)
    paid_basket(h)
    h.send("gateway/gw1/fleet/in/ack", payload)
    assert h.gw.fleet.pending() == 1
    assert h.gw.metrics.bad.labels("malformed")._value.get() >= 1
