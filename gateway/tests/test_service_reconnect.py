"""Availability and reconnects: last will on kill -9, online again on restart, reconnect after a broker restart."""
import signal

from gwhelp import Watcher, publisher, start_gateway, stop, write_config

from cart_testing.broker import Broker
from cart_bench.testkit import Board


def status(w):
    return (w.json("gateway/gw1/status") or {}).get("state")


def test_last_will_on_kill9_and_online_again_after_restart(mosquitto, tmp_path):
    cfg = write_config(tmp_path, mosquitto.port)
    gw = start_gateway(cfg, log=tmp_path / "gw.log")
    w = Watcher(mosquitto.port)
    try:
        w.wait(lambda: status(w) == "online", what="online")
        gw.send_signal(signal.SIGKILL)
        gw.wait()
        w.wait(lambda: status(w) == "offline", what="last will: offline")
        gw = start_gateway(cfg, log=tmp_path / "gw.log")
        w.wait(lambda: status(w) == "online", what="online again")
        stop(gw)
        w.wait(lambda: status(w) == "offline", what="offline on a clean stop")
    finally:
        w.close()
        stop(gw)


def test_gateway_reconnects_after_a_broker_restart_and_keeps_processing(tmp_path):
    broker = Broker(tmp_path, persistence=True).start()
    cfg = write_config(tmp_path, broker.port)
    gw = start_gateway(cfg, log=tmp_path / "gw.log")
    try:
        w = Watcher(broker.port)
        w.wait(lambda: status(w) == "online", what="online")
        w.close()
        broker.stop()
        broker = Broker(tmp_path, port=broker.port, persistence=True).start()
        b = Board("c001")
        pub = publisher(broker.port)
        for t, p in b.movement(350.2):
            pub.publish(t, p, qos=1).wait_for_publish(5)
        w = Watcher(broker.port)
        basket = w.wait(lambda: w.json("carts/c001/basket"), timeout=20, what="basket after the broker restart")
        assert basket["lines"][0]["weight_g"] == 350.2
        assert status(w) == "online"
        pub.loop_stop()
        w.close()
    finally:
        stop(gw)
        broker.stop()
