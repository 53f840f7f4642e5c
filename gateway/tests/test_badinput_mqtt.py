"""Bad input through the real broker: counted, logged, the gateway keeps running, nothing counted twice."""
import urllib.request

from gwhelp import Watcher, publisher, start_gateway, stop, write_config

from cart_testing.broker import free_port
from cart_gateway.protocol import CHUNK_HEADER
from cart_bench.testkit import Board


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def test_garbage_unknown_carts_oversize_and_duplicates_through_mosquitto(mosquitto, tmp_path):
    mport = free_port()
    cfg = write_config(tmp_path, mosquitto.port, top={"metrics_port": mport})
    gw = start_gateway(cfg, log=tmp_path / "gw.log")
    w = Watcher(mosquitto.port)
    pub = publisher(mosquitto.port)
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", what="online")
        sc = Board("c001")
        u = sc.unsettled()
        wt = sc.weight(350.2, unsettled_seq=sc.seq)
        bad = [("carts/c001/scale/evt", b"\x00garbage"),
               ("carts/c001/scale/evt", b'{"v":1,"type":"weight"}'),
               ("carts/c999/scale/evt", Board("c999").unsettled()),
               ("carts/c001/cam/frame", CHUNK_HEADER.pack(b"CF", 1, 1, 1, 1, 0, 1, 9000, 0) + b"x" * 9000),
               ("carts/c001/checkout", b"[]")]
        for t, p in [bad[0], ("carts/c001/scale/evt", u), *bad[1:], ("carts/c001/scale/evt", wt),
                     ("carts/c001/scale/evt", wt), ("carts/c001/scale/evt", u)]:
            pub.publish(t, p, qos=1).wait_for_publish(5)
        basket = w.wait(lambda: w.json("carts/c001/basket"), what="basket")
        assert len(basket["lines"]) == 1 and basket["lines"][0]["weight_g"] == 350.2

        def counted():
            m = metrics(mport)
            return m if m.get("cart_gateway_duplicates_total") == 2 else None
        m = w.wait(counted, what="duplicates counted")
        assert m['cart_gateway_bad_messages_total{reason="malformed"}'] == 4
        assert m['cart_gateway_bad_messages_total{reason="unknown_cart"}'] == 1
        assert m['cart_gateway_events_total{type="weight"}'] == 1
        assert gw.poll() is None                         # still running
        log = (tmp_path / "gw.log").read_text()
        assert log.count("event=bad_input") == 5 and log.count("event=duplicate") == 2
    finally:
        pub.loop_stop()
        w.close()
        stop(gw)
