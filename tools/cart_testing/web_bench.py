"""Benchmarks of the staff web service (docs/web.md, Benchmarks).

    python -m cart_testing.web_bench [--reviews 5] [--loads 20] [--carts 200] [--json]

Real processes: a private Mosquitto, the gateway (with its detector, so reviews carry
frames) and `cart-gateway web` over HTTPS. Measures
- verdict → basket: from sending a verdict form (what a click does) to the cart's new
  basket arriving at an MQTT subscriber (what the cart screen sees), and to the response
  that shows the next review;
- review page: the HTML and every frame it shows, fetched one after another (a browser
  fetches the frames in parallel: this is an upper bound);
- store view: the page with `--carts` carts, each with a basket.
Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import ssl
import tempfile
import time
from pathlib import Path

import httpx

from cart_testing.broker import Broker, free_port
from cart_testing.gateway import GatewayProcess, write_config
from cart_testing.watch import Watcher
from cart_testing.web import StoreFeed, WebProcess, cli, make_tls, write_web_config

PW = "bench password 1"


def _pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else None


def _stats(xs):
    return {"n": len(xs), "p50_ms": _pct(xs, 0.5), "p95_ms": _pct(xs, 0.95), "max_ms": round(max(xs), 1) if xs else None}


def run(reviews: int, loads: int, carts: int) -> dict:
    from cart_gateway.catalogue import Catalogue
    from cart_model.render import encode_jpeg, render_scene
    cat = Catalogue.load()
    tmp = Path(tempfile.mkdtemp(prefix="web-bench-"))
    names = [f"c{n:03d}" for n in range(1, carts + 1)]
    broker = Broker(tmp).start()
    gwc = write_config(tmp / "gateway.toml", broker.port, tmp / "gw-state", carts=names, detector=True)
    gw = GatewayProcess(gwc, tmp / "gateway.log").start()
    ca, cert, key = make_tls(tmp / "tls")
    port = free_port()
    wc = write_web_config(tmp / "web.toml", gwc, port, tmp / "web-state", cert, key)
    w = Watcher(broker.port, topics=("carts/+/basket", "carts/+/screen/state", "gateway/#"))
    arrivals: list[tuple[float, dict]] = []     # (perf_counter, basket) of c001 as a screen receives them
    orig = w.c.on_message

    def on_message(c, u, m):
        if m.topic == "carts/c001/basket":
            arrivals.append((time.perf_counter(), json.loads(m.payload)))
        orig(c, u, m)
    w.c.on_message = on_message
    feed = StoreFeed(broker.port, "c001")
    web = None
    out: dict = {"carts": carts}
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", 60, "gateway online")
        feed.online()
        web = WebProcess(wc, tmp / "web.log", ca, port).start()
        cli("web-user", "add", "bench", "--password-stdin", "--config", str(wc), stdin=PW + "\n")
        screen = cli("web-screen-url", "c001", "--config", str(wc)).stdout.strip()
        http = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), base_url=web.base, timeout=30)
        tok = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text).group(1)
        http.post("/login", data={"csrf": tok, "user": "bench", "password": PW, "next": "/queue"})
        # ------------------------------------------------ reviews with frames: prompt, "none" on the screen
        click_to_basket, click_to_page, page_loads, frame_bytes = [], [], [], 0
        for i in range(reviews):
            before = (w.json("carts/c001/screen/state") or {}).get("prompts", [])
            feed.movement(2000.0, [encode_jpeg(render_scene(cat, "SKU0001", 100 + 2 * i + k)[0]) for k in range(2)])
            p = w.wait(lambda: [x for x in (w.json("carts/c001/screen/state") or {}).get("prompts", [])
                                if x not in before], 20, "a prompt")[0]
            key = screen.split("key=")[1]
            http.post("/screen/c001/answer", data={"key": key, "prompt_id": p["prompt_id"], "choice": "none"})
            q = w.wait(lambda: (w.json("gateway/gw1/review/queue") or {}).get("reviews"), 10, "a review")
            rid = q[0]["review_id"]
            for _ in range(max(1, loads // reviews)):
                t0 = time.perf_counter()
                html = http.get(f"/review/{rid}").text
                srcs = re.findall(r'src="(/frames/[^"]+)"', html)
                for s in srcs:
                    frame_bytes += len(http.get(s).content)
                page_loads.append((time.perf_counter() - t0) * 1000)
            assert srcs, "the review page shows no frames"
            csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
            v0 = (w.json("carts/c001/basket") or {}).get("version", 0)
            t0 = time.perf_counter()
            r = http.post(f"/review/{rid}/verdict", data={"csrf": csrf, "kind": "one", "sku": "SKU0060", "qty": "1"})
            click_to_page.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 303 and "applied=1" in r.headers["location"], (r.status_code, r.headers)
            got = w.wait(lambda: [t for t, b in list(arrivals) if t > t0 and b["version"] > v0
                                  and not b["open_reviews"] and any(ln["sku"] == "SKU0060" for ln in b["lines"])],
                         10, "the new basket")
            click_to_basket.append((got[0] - t0) * 1000)
            w.wait(lambda: not (w.json("gateway/gw1/review/queue") or {}).get("reviews"), 10, "queue empty")
        out["verdict_to_basket"] = _stats(click_to_basket)
        out["verdict_to_next_page"] = _stats(click_to_page)
        out["review_page_with_frames"] = dict(_stats(page_loads), frames_per_page=len(srcs),
                                              frame_kb=round(frame_bytes / max(1, len(page_loads)) / len(srcs) / 1024, 1))
        # ------------------------------------------------ the store view with `carts` baskets
        skus = [s.sku for s in cat if not s.sold_by_weight][:50]
        feeds = []
        for n, c in enumerate(names[1:], 1):
            f = StoreFeed(broker.port, c)
            f.online()
            for k in range(3):
                f.movement(cat[skus[(n + 7 * k) % len(skus)]].weight_mean_g, settle_s=0)
            feeds.append(f)
        w.wait(lambda: sum(1 for c in names if w.json(f"carts/{c}/basket")) >= carts, 120, "every cart's basket")
        time.sleep(2)
        store = []
        for _ in range(loads):
            t0 = time.perf_counter()
            r = http.get("/store")
            store.append((time.perf_counter() - t0) * 1000)
        out["store_view"] = dict(_stats(store), kb=round(len(r.content) / 1024, 1),
                                 cart_cards=r.text.count('class="card cart"'))
        for f in feeds:
            f.close()
    finally:
        w.close()
        feed.close()
        if web:
            web.stop()
        gw.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cart_testing.web_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--reviews", type=int, default=5)
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--carts", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    a = ap.parse_args(argv)
    res = run(a.reviews, a.loads, a.carts)
    if not a.json:
        for k, v in res.items():
            print(f"{k}: {v}")
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
