"""Rollout timings on the real parts: a Mosquitto, the gateway service as a process (real
LiteRT detector), `cart-fleet publish` of the committed model and of the catalogue.

Measures the time from publish to the gateway's `installed` status, the swap's pause on
the gateway's core thread (its status figure `swap_ms`), and what a shopper would see:
checkout requests sent every 20 ms throughout, their receipt latency before and during
the rollout (p50/p99/max).

    PYTHONPATH=gateway:tools python -m cart_fleet.rollout_bench --json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from cart_gateway.rollout import Kind

from . import rollout as R

# enough carts that no two checkouts of one cart share a gateway batch (a batch publishes
# only the last retained receipt of a cart; a real exit gate waits for its receipt)
PROBE_CARTS = tuple(f"c{i:03d}" for i in range(1, 11))
DATA = Path(__file__).resolve().parents[2] / "gateway" / "cart_gateway" / "data"


@contextlib.contextmanager
def store_with_rollout(tmp: Path, detector: bool = True):
    """A broker, a signing key, and a gateway process that trusts it: (broker, key path, gateway)."""
    from cart_testing.broker import Broker
    from cart_testing.gateway import GatewayProcess, write_config
    priv, pub = R.keygen(tmp / "keys")
    broker = Broker(tmp).start()
    cfg = write_config(tmp / "gateway.toml", broker.port, tmp / "gw-state", carts=PROBE_CARTS, detector=detector)
    cfg.write_text(cfg.read_text() + f'[rollout]\npublic_keys = ["{pub}"]\n')
    gw = GatewayProcess(cfg, tmp / "gateway.log")
    try:
        gw.start()
        wait_online(broker.port)
        yield broker, priv, gw
    finally:
        gw.stop()
        broker.stop()


def wait_online(port: int, timeout_s: float = 60) -> None:
    import paho.mqtt.subscribe as sub
    msg = sub.simple("gateway/gw1/status", hostname="127.0.0.1", port=port, retained=True, keepalive=10)
    deadline = time.monotonic() + timeout_s
    while b'"online"' not in msg.payload:
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not come online")
        msg = sub.simple("gateway/gw1/status", hostname="127.0.0.1", port=port, keepalive=10)


def _probe_main(port: int, carts, period_s: float, stop, out) -> None:
    """The probe's own process: the bench's signing and chunking must not starve it of the GIL."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    sent: dict[str, float] = {}
    lat: list[tuple[float, float]] = []     # (sent at, latency s); time.monotonic is system-wide

    def on_message(c, u, msg):
        try:
            req = json.loads(msg.payload).get("req_id")
        except ValueError:
            return
        t0 = sent.pop(req, None)
        if t0 is not None:
            lat.append((t0, time.monotonic() - t0))
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rollout-probe", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe("carts/+/receipt", qos=1)
    c.loop_start()
    time.sleep(0.5)       # retained receipts of earlier runs arrive first
    out.put("ready")
    n = 0
    busy: dict[str, str] = {}
    while not stop.is_set():          # like exit gates: a cart's next checkout only after its receipt
        cart = carts[n % len(carts)]
        n += 1
        if busy.get(cart) in sent:
            continue
        req = f"probe-{n}"
        busy[cart] = req
        sent[req] = time.monotonic()
        c.publish(f"carts/{cart}/checkout", json.dumps({"v": 1, "req_id": req}), qos=1)
        stop.wait(period_s)
    deadline = time.monotonic() + 3.0
    while sent and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    out.put((lat, sorted(sent)))


class CheckoutProbe:
    """Checkout requests every `period_s`, round-robin over carts, from a separate process;
    receipt latency per request."""

    def __init__(self, port: int, carts=PROBE_CARTS, period_s: float = 0.02):
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._out = ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(target=_probe_main, args=(port, tuple(carts), period_s, self._stop, self._out),
                                 daemon=True)
        self.lat: list[tuple[float, float]] = []
        self.sent: list[str] = []      # unanswered request ids (after stop)

    def start(self):
        self._proc.start()
        self._out.get(timeout=60)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.lat, self.sent = self._out.get(timeout=60)
        self._proc.join(10)

    def figures(self, t_from: float, t_to: float) -> dict:
        xs = sorted(lat * 1000 for t, lat in self.lat if t_from <= t < t_to)
        if not xs:
            return {"n": 0}
        return {"n": len(xs), "p50_ms": round(statistics.median(xs), 1),
                "p99_ms": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 1), "max_ms": round(xs[-1], 1)}


def roll(port: int, key: Path, kind: Kind, path: Path, timeout_s: float = 300) -> dict:
    """Publish one update to gw1 and wait for its end state; the status plus timings."""
    central = R.Central("127.0.0.1", port)
    data = R.artefact(kind, path)
    u = R.make_update(kind, data, "gw1", R.load_private_key(key))
    got: dict = {}
    done = threading.Event()

    def watch():
        got.update(R.watch_status(central, kind, ["gw1"], u.serial, timeout_s))
        done.set()
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    time.sleep(0.3)      # the watcher is subscribed
    t0 = time.perf_counter()
    sent_s = R.send(central, [u])
    done.wait(timeout_s + 5)
    st = got.get("gw1") or {"state": "no answer", "received_at": float("nan")}
    total_s = st["received_at"] - t0
    return {"kind": kind.value, "bytes": len(data), "chunks": len(u.chunks), "state": st["state"],
            "check": st.get("check"), "reason": st.get("reason"), "publish_acked_s": round(sent_s, 3),
            "publish_to_installed_s": round(total_s, 3), "figures": st.get("figures", {})}


def big_catalogue(path: Path, skus: int) -> Path:
    """The packaged catalogue grown to `skus` records (copies with new ids and EANs): a store-sized
    file for the timing of check and swap; the detector's SKUs stay in it."""
    from cart_gateway.catalogue import ean13_check_digit
    doc = json.loads((DATA / "catalogue.json").read_text())
    base = doc["items"]
    items = list(base)
    for i in range(len(base), skus):
        rec = dict(base[i % len(base)], sku=f"SKX{i:06d}", name=f"{base[i % len(base)]['name']} #{i}")
        first12 = f"29{i:010d}"
        rec["ean13"] = first12 + str(ean13_check_digit(first12))
        items.append(rec)
    doc["items"] = items
    path.write_text(json.dumps(doc))
    return path


def bench(tmp: Path, skus: int = 0) -> dict:
    with store_with_rollout(tmp) as (broker, key, gw):
        probe = CheckoutProbe(broker.port).start()
        time.sleep(3)
        t_model = time.monotonic()
        model = roll(broker.port, key, Kind.MODEL, DATA)
        t_cat = time.monotonic()
        cat_file = big_catalogue(tmp / "catalogue-big.json", skus) if skus else DATA / "catalogue.json"
        cat = roll(broker.port, key, Kind.CATALOGUE, cat_file)
        t_end = time.monotonic()
        time.sleep(1)
        probe.stop()
        lost = len(probe.sent)
        return {"model": model, "catalogue": cat,
                "checkout_latency": {"before": probe.figures(0, t_model),
                                     "during_model_rollout": probe.figures(t_model, t_cat),
                                     "during_catalogue_rollout": probe.figures(t_cat, t_end)},
                "checkouts_unanswered": lost, "unanswered_ids": sorted(probe.sent)[:20]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="cart-fleet rollout-bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON line last")
    ap.add_argument("--catalogue-skus", type=int, default=0,
                    help="roll a catalogue of this many SKUs (default: the packaged one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = bench(Path(d), args.catalogue_skus)
    for k in ("model", "catalogue"):
        r = out[k]
        f = r["figures"]
        print(f"{k}: {r['bytes']} bytes, {r['chunks']} chunks: {r['state']} {r['publish_to_installed_s']} s after "
              f"publish (broker acked {r['publish_acked_s']} s; check {f.get('check_ms')} ms, swap {f.get('swap_ms')} ms)")
    for k, v in out["checkout_latency"].items():
        print(f"checkout -> receipt {k}: {v}")
    print(f"checkouts unanswered: {out['checkouts_unanswered']}")
    if args.json:
        print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
