"""The walking skeleton, end to end through real parts: a virtual scale board
(the firmware in micropython) sees a load, publishes a weight event through
Mosquitto; the gateway process updates that cart's basket and publishes it,
retained, on carts/<cart>/basket."""

from cart_gateway.protocol import decode_output
from cart_testing.watch import Watcher


def test_weight_on_a_virtual_scale_reaches_the_retained_basket(mosquitto, gateway, virtual_boards):
    w = Watcher(mosquitto.port)
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", what="gateway online")
        vb = virtual_boards("sim-scale", "c001")
        vb.power_on()
        w.wait(lambda: (w.json("carts/c001/scale/status") or {}).get("state") == "online", what="board online")
        w.scale_settled("c001")  # the first settled level is the baseline
        vb.cell.set_load(1124.1)
        ev = w.wait(lambda: w.events("weight"), what="weight event")[0]
        assert abs(ev["delta_g"] - 1124.1) < 3
        basket = w.wait(lambda: (w.json("carts/c001/basket") or {}).get("lines"), what="basket line")
        assert abs(basket[0]["weight_g"] - ev["delta_g"]) < 0.01
    finally:
        w.close()
    late = Watcher(mosquitto.port, topics=("carts/c001/basket",))
    try:
        retained = late.wait(lambda: late.json("carts/c001/basket"), what="retained basket")
        assert retained["cart"] == "c001" and retained["lines"]
        basket = decode_output("basket", late.last["carts/c001/basket"])  # the screen's decoder accepts it
        assert basket.lines[0].weight_g == retained["lines"][0]["weight_g"]
    finally:
        late.close()
