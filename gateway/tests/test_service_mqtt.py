"""The gateway process against a real Mosquitto: events in, retained basket out."""
from gwhelp import Watcher, publisher, start_gateway, stop, write_config

from cart_gateway.testkit import Board, checkout

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
