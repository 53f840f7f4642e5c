"""The gateway process against a real Mosquitto: events in, retained basket out."""
from gwhelp import Watcher, publisher, start_gateway, stop, write_config

from cart_bench.testkit import Board, checkout

ORANGE_JUICE = 1124.1   # SKU0212 and a few look-alikes weigh about this


def test_weight_event_through_mosquitto_publishes_retained_basket(mosquitto, tmp_path):
    cfg = write_config(tmp_path, mosquitto.port)
    gw = start_gateway(cfg, log=tmp_path / "gw.log")
    w = Watcher(mosquitto.port)
    pub = publisher(mosquitto.port)
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", what="gateway online")
        b = Board("c001")
        for t, p in b.movement(ORANGE_JUICE):
            pub.publish(t, p, qos=1).wait_for_publish(5)
        basket = w.wait(lambda: w.json("carts/c001/basket"), what="basket")
        assert basket["cart"] == "c001" and basket["v"] == 1
        assert basket["lines"][0]["weight_g"] == ORANGE_JUICE
        # retained: a late subscriber gets it too
        late = Watcher(mosquitto.port, topics=("carts/c001/basket",))
        got = late.wait(lambda: late.json("carts/c001/basket"), what="retained basket")
        assert got["version"] == basket["version"] or got["version"] >= 1
        late.close()
        # the checkout is refused while the shopper has a prompt open, with the reason
        pub.publish("carts/c001/checkout", checkout("r1"), qos=1).wait_for_publish(5)
        rec = w.wait(lambda: w.json("carts/c001/receipt"), what="receipt")
        assert rec["ok"] is False and rec["reason"] in ("open_prompts", "unsettled")
    finally:
        pub.loop_stop()
        w.close()
        stop(gw)
    assert gw.returncode == 0
    assert (tmp_path / "state" / "gateway.sqlite3").exists()


def test_answer_then_checkout_gives_receipt_within_a_second_and_a_fresh_basket(mosquitto, tmp_path):
    import time

    from cart_bench.testkit import answer
    cfg = write_config(tmp_path, mosquitto.port)
    gw = start_gateway(cfg, log=tmp_path / "gw.log")
    w = Watcher(mosquitto.port)
    pub = publisher(mosquitto.port)
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", what="gateway online")
        b = Board("c002")
        for t, p in b.movement(ORANGE_JUICE):
            pub.publish(t, p, qos=1).wait_for_publish(5)
        prompt = w.wait(lambda: w.json("carts/c002/screen/prompt"), what="prompt after the vision wait")
        state = w.wait(lambda: w.json("carts/c002/screen/state"), what="screen state")   # published right after
        assert state["prompts"][0]["prompt_id"] == prompt["prompt_id"]
        pub.publish("carts/c002/screen/answer", answer(prompt["prompt_id"], "a1", sku="SKU0212"), qos=1)
        w.wait(lambda: [ln for ln in (w.json("carts/c002/basket") or {"lines": []})["lines"]
                        if ln["status"] == "accepted"], what="accepted line")
        w.wait(lambda: w.json("carts/c002/screen/state") == {"v": 1, "prompts": []}, what="prompt closed")
        t0 = time.monotonic()
        pub.publish("carts/c002/checkout", checkout("r1"), qos=1)
        rec = w.wait(lambda: w.json("carts/c002/receipt"), what="receipt")
        elapsed = time.monotonic() - t0
        assert rec["ok"] and rec["total_cents"] == 279 and [ln["sku"] for ln in rec["lines"]] == ["SKU0212"]
        assert elapsed < 1.0, elapsed
        fresh = w.wait(lambda: (w.json("carts/c002/basket") or {}).get("lines") == [] and w.json("carts/c002/basket"),
                       what="fresh basket")
        assert fresh["version"] > 0
    finally:
        pub.loop_stop()
        w.close()
        stop(gw)
