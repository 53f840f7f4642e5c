"""The store as it runs behind the closed broker (issue 11 §3, §4): the
gateway, a board and a screen, each with its provisioned user and the ACL,
on Mosquitto with client ids bound to user names. Everyone still connects
with their ids; a weight on the scale reaches the screen's basket; and the
gateway's persistent session (client id = its user name) still queues the
board's events while the gateway is down."""
import time

from cart_testing.broker import SecureBroker
from cart_testing.gateway import GatewayProcess, write_config
from cart_testing.watch import Watcher


def test_gateway_board_and_screen_work_through_the_closed_broker(tmp_path):
    from cart_sim.virtual_board import VirtualBoard
    b = SecureBroker(tmp_path, carts=("c001",), gateway="gw1", bench=["t1"]).start()
    u = b.users
    cfg = write_config(tmp_path / "gateway.toml", b.port, tmp_path / "gw-state", carts=("c001",),
                       username="gateway-gw1", password=u["gateway-gw1"])
    gw = GatewayProcess(cfg, tmp_path / "gateway.log").start()
    screen = Watcher(b.port, topics=("carts/c001/basket",), user="screen-c001", password=u["screen-c001"])
    bench = Watcher(b.port, topics=("carts/+/+/status", "carts/+/+/evt"), user="bench-t1", password=u["bench-t1"])
    vb = VirtualBoard("sim-scale", "c001", ("127.0.0.1", b.port), tmp_path / "c001-scale")
    try:
        conf = vb.default_config()
        conf["broker"].update(user="cart-c001-scale", password=u["cart-c001-scale"])
        vb.flash(conf)
        vb.power_on()
        bench.wait(lambda: (bench.json("carts/c001/scale/status") or {}).get("state") == "online",
                   what="board online with its own user")
        bench.scale_settled("c001")  # baseline
        vb.cell.set_load(1124.1)
        # decided (a weight-only add is asked about): a settle while it is still undecided would
        # be merged into it as one action (reconciliation, merge_gap_ms)
        first = screen.wait(lambda: (screen.json("carts/c001/basket") or {}).get("open_prompts")
                            and screen.json("carts/c001/basket")["lines"], 30, what="the basket on the screen")
        assert len(first) == 1
        gw.stop()  # the board's next event waits in the gateway's session at the broker
        vb.cell.set_load(1124.1 + 480.0)
        bench.wait(lambda: len(bench.events("weight")) >= 2, 30, what="the second weight event")
        time.sleep(0.5)
        gw.start()
        screen.wait(lambda: len((screen.json("carts/c001/basket") or {}).get("lines") or []) >= 2, 30,
                    what="the event queued while the gateway was down, in the basket")
        lines = screen.json("carts/c001/basket")["lines"]
        assert abs(sum(line["weight_g"] for line in lines) - 1604.1) < 6
        log = (tmp_path / "gateway.log").read_text()
        assert u["gateway-gw1"] not in log  # no secret in the logs
    finally:
        vb.close()
        screen.close()
        bench.close()
        gw.stop()
        b.stop()
