"""`cart-sim demo` (`make demo`): the live virtual store.

Real processes: a private Mosquitto, the gateway service (with the committed
detector), and for each cart a scale board and a camera board running the
firmware in micropython. Simulated shoppers put rendered products in the
baskets (the load cell gets the pack's weight, the camera the rendered frame),
answer the cart screen's prompts truthfully, and a simulated reviewer settles
reviews. A rich view shows each cart live; at the end every cart checks out,
the receipts and figures are printed, and every process is stopped.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from cart_gateway.catalogue import Catalogue
from cart_model.render import encode_jpeg, render_scene, render_still
from cart_sim.virtual_board import VirtualBoard
from cart_testing.broker import Broker
from cart_testing.gateway import GatewayProcess, write_config
from cart_testing.watch import Watcher


class Shopper:
    """One cart: its two boards, what really went in, and its screen."""

    def __init__(self, cart: str, port: int, root: Path, seed: int, catalogue: Catalogue):
        self.cart, self.cat = cart, catalogue
        self.rng = random.Random(seed)
        self.scale = VirtualBoard("sim-scale", cart, ("127.0.0.1", port), root / f"{cart}-scale", seed=seed)
        self.cam = VirtualBoard("sim-cam", cart, ("127.0.0.1", port), root / f"{cart}-cam", seed=seed)
        self.truth: list[str] = []
        self.total_g = 0.0
        self.log: list[str] = []
        self.packaged = [s.sku for s in catalogue if not s.sold_by_weight]

    def boards(self):
        return (self.scale, self.cam)

    def add_item(self) -> None:
        sku = self.rng.choice(self.packaged)
        s = self.cat[sku]
        seed = self.rng.randrange(1 << 30)
        img, _ = render_scene(self.cat, sku, seed, basket_skus=self.truth[-3:])
        self.cam.push_frame(encode_jpeg(img))
        # the still the camera takes once the placement settles (§7.1)
        self.cam.push_still(encode_jpeg(render_still(self.cat, sku, seed, "UXGA", basket_skus=self.truth[-3:])[0]))
        weight = max(1.0, self.rng.gauss(s.weight_mean_g, s.weight_sd_g))
        self.total_g += weight
        self.truth.append(sku)
        self.scale.cell.ramp_to(self.total_g, 300)
        self.log.append(f"+ {s.name} ({weight:.0f} g)")

    def answer(self, prompt: dict) -> dict:
        """A truthful shopper: picks the item if offered, otherwise scans it."""
        sku = self.truth[-1] if self.truth else None
        if sku and any(o.get("sku") == sku for o in prompt.get("options", [])):
            choice = {"sku": sku}
        elif sku:
            choice = {"barcode": self.cat[sku].ean13}
        else:
            choice = {"none": True}
        self.log.append(f"screen: answered {prompt['kind']} with {choice}")
        return {"v": 1, "prompt_id": prompt["prompt_id"], "answer_id": f"a-{prompt['prompt_id']}", "choice": choice}


def _view(shoppers, w: Watcher, remaining: float) -> Group:
    tables = []
    for sh in shoppers:
        basket = w.json(f"carts/{sh.cart}/basket") or {}
        t = Table(title=f"cart {sh.cart} — basket v{basket.get('version', 0)}, "
                        f"{basket.get('open_prompts', 0)} prompt(s), {basket.get('open_reviews', 0)} review(s)",
                  expand=True)
        t.add_column("item")
        t.add_column("qty", justify="right")
        t.add_column("g", justify="right")
        t.add_column("price", justify="right")
        t.add_column("status")
        for ln in basket.get("lines", []):
            t.add_row(ln["name"], str(ln["qty"]), f"{ln['weight_g']:.0f}", f"{ln['price_cents'] / 100:.2f}", ln["status"])
        t.caption = " | ".join(sh.log[-2:])
        tables.append(t)
    return Group(*tables, f"[dim]{remaining:.0f} s left — truth so far: "
                          + ", ".join(f"{sh.cart}: {len(sh.truth)} items" for sh in shoppers) + "[/dim]")


def run(carts: int, seconds: float, seed: int, out: Path | None) -> dict:
    console = Console()
    cat = Catalogue.load()
    root = Path(tempfile.mkdtemp(prefix="cart-demo-"))
    broker = Broker(root).start()
    gw = GatewayProcess(write_config(root / "gateway.toml", broker.port, root / "gw-state",
                                     carts=[f"c{n:03d}" for n in range(1, carts + 1)], detector=True),
                        root / "gateway.log").start()
    w = Watcher(broker.port)
    shoppers = [Shopper(f"c{n:03d}", broker.port, root, seed + n, cat) for n in range(1, carts + 1)]
    answered: set[str] = set()
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", 30, "gateway online")
        for sh in shoppers:
            for b in sh.boards():
                b.power_on()
        for sh in shoppers:
            w.wait(lambda: all((w.json(f"carts/{sh.cart}/{b}/status") or {}).get("state") == "online"
                               for b in ("scale", "cam")), 30, f"{sh.cart} boards online")
        time.sleep(1.5)
        t_end = time.monotonic() + seconds
        next_add = {sh.cart: time.monotonic() + 1 + i for i, sh in enumerate(shoppers)}
        with Live(_view(shoppers, w, seconds), console=console, refresh_per_second=4) as live:
            while time.monotonic() < t_end:
                now = time.monotonic()
                for sh in shoppers:
                    if now >= next_add[sh.cart] and now < t_end - 8:
                        sh.add_item()
                        next_add[sh.cart] = now + sh.rng.uniform(5, 8)
                    state = w.json(f"carts/{sh.cart}/screen/state") or {}
                    for p in state.get("prompts", []):
                        if p["prompt_id"] not in answered:
                            answered.add(p["prompt_id"])
                            w.c.publish(f"carts/{sh.cart}/screen/answer", json.dumps(sh.answer(p)), qos=1)
                for r in (w.json("gateway/gw1/review/queue") or {}).get("reviews", []):
                    if r["review_id"] not in answered:
                        answered.add(r["review_id"])
                        sh = next(s for s in shoppers if s.cart == r["cart"])
                        sku = sh.truth[-1] if sh.truth else None
                        w.c.publish("gateway/gw1/review/verdict", json.dumps(
                            {"v": 1, "review_id": r["review_id"], "verdict_id": f"v-{r['review_id']}",
                             "sku": sku, "qty": 1}), qos=1)
                        sh.log.append(f"reviewer: {sku}")
                live.update(_view(shoppers, w, t_end - now))
                time.sleep(0.25)
        receipts = {}
        for sh in shoppers:
            t0 = time.monotonic()
            w.c.publish(f"carts/{sh.cart}/checkout", json.dumps({"v": 1, "req_id": f"exit-{sh.cart}"}), qos=1)
            rec = w.wait(lambda: (w.json(f"carts/{sh.cart}/receipt") or {}).get("req_id") == f"exit-{sh.cart}"
                         and w.json(f"carts/{sh.cart}/receipt"), 10, f"{sh.cart} receipt")
            receipts[sh.cart] = (rec, (time.monotonic() - t0) * 1000)
        return _report(console, shoppers, receipts, w, cat, out)
    finally:
        w.close()
        for sh in shoppers:
            for b in sh.boards():
                b.close()
        gw.stop()
        broker.stop()


def _report(console, shoppers, receipts, w: Watcher, cat, out) -> dict:
    wrong, items, prompts, reviews = 0, 0, 0, 0
    for topic, payload in w.all:
        prompts += topic.endswith("/screen/prompt")
        reviews += topic == "gateway/gw1/review/new"
    for sh in shoppers:
        rec, ms = receipts[sh.cart]
        items += len(sh.truth)
        console.rule(f"receipt {sh.cart} ({ms:.0f} ms after the exit command)")
        if not rec.get("ok"):
            console.print(f"[red]refused: {rec.get('reason')}[/red]")
            wrong += 1
            continue
        for ln in rec["lines"]:
            console.print(f"{ln['qty']:>3} × {ln['name']:<40} {ln['price_cents'] / 100:>8.2f}")
        console.print(f"{'total':>46} {rec['total_cents'] / 100:>8.2f}")
        truth_cents = sum(cat[s].price_cents for s in sh.truth)
        if truth_cents != rec["total_cents"]:
            wrong += 1
            console.print(f"[red]truth was {truth_cents / 100:.2f}[/red]")
    figures = {"baskets": len(shoppers), "items": items, "shopper_prompts": prompts, "human_reviews": reviews,
               "wrong_baskets": wrong,
               "max_receipt_ms": round(max(ms for _, ms in receipts.values()), 1)}
    console.print_json(json.dumps(figures))
    if out:
        out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    return figures


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--carts", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")


def main(args: argparse.Namespace) -> int:
    figures = run(args.carts, args.seconds, args.seed, args.out)
    return 0 if figures["baskets"] else 1
