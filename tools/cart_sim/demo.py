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
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from cart_gateway.catalogue import Catalogue
from cart_model.render import encode_jpeg, render_scene, render_still
from cart_sim.bench import figure_lines
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
        self.log.append(describe_answer(prompt.get("kind", "?"), choice, self.cat))
        return {"v": 1, "prompt_id": prompt["prompt_id"], "answer_id": f"a-{prompt['prompt_id']}", "choice": choice}


def product_name(cat: Catalogue, sku: str | None) -> str:
    return cat[sku].name if sku in cat else (sku or "nothing")


def describe_answer(kind: str, choice: dict, cat: Catalogue) -> str:
    """The caption for a shopper's answer on the cart screen, in products' names."""
    if "sku" in choice:
        what = f"picked {product_name(cat, choice['sku'])}"
    elif "barcode" in choice:
        s = cat.by_ean(choice["barcode"])
        what = f"scanned {s.name if s else 'barcode ' + choice['barcode']}"
    else:
        what = "said nothing was added"
    return f"screen ({kind}): {what}"


@dataclass
class CartView:
    """What the live view shows of one cart."""
    cart: str
    basket: dict
    log: list[str] = field(default_factory=list)
    truth_items: int = 0


def view(carts: list[CartView], remaining: float, width: int = 80) -> Group:
    """One compact table (two rows per cart) that fits an 80x24 terminal for a few carts."""
    t = Table(expand=True, pad_edge=False, show_edge=False, box=None, header_style="bold")
    t.add_column("cart", no_wrap=True, width=5)
    t.add_column("basket", no_wrap=True, overflow="ellipsis", ratio=1)
    t.add_column("open", no_wrap=True, width=9)
    for c in carts:
        lines = c.basket.get("lines", [])
        total = sum(ln.get("price_cents", 0) for ln in lines) / 100
        names = ", ".join(ln["name"] for ln in reversed(lines[-3:]))   # the latest first: the end is cut
        t.add_row(c.cart, f"{len(lines)} lines, {total:.2f}, latest: {names}" if lines else "empty",
                  f"{c.basket.get('open_prompts', 0)}p {c.basket.get('open_reviews', 0)}r")
        t.add_row("", f"[dim]{c.log[-1] if c.log else 'waiting for the shopper'}[/dim]", "")
    footer = (f"[dim]{remaining:.0f} s to the exit · items really in: "
              + ", ".join(f"{c.cart} {c.truth_items}" for c in carts) + " · p prompts, r reviews[/dim]")
    return Group(t, footer)


def _views(shoppers, w: Watcher) -> list[CartView]:
    return [CartView(sh.cart, w.json(f"carts/{sh.cart}/basket") or {}, sh.log, len(sh.truth)) for sh in shoppers]


def run(carts: int, seconds: float, seed: int, out: Path | None, console: Console | None = None) -> dict:
    console = console or Console()
    cat = Catalogue.load()
    root = Path(tempfile.mkdtemp(prefix="cart-demo-"))
    broker = gw = w = web = None
    shoppers: list[Shopper] = []
    answered: set[str] = set()
    try:
        console.print(f"[bold]virtual store[/bold]: {carts} carts, {seconds:.0f} s of shopping, then the exit")
        with console.status("starting Mosquitto (the store's MQTT broker)"):
            broker = Broker(root)      # assigned before start(): a Ctrl-C during start still stops it
            broker.start()
        console.print(f"  broker on 127.0.0.1:{broker.port}")
        with console.status("starting the gateway service and loading the product detector (about 10 s)"):
            gw = GatewayProcess(write_config(root / "gateway.toml", broker.port, root / "gw-state",
                                             carts=[f"c{n:03d}" for n in range(1, carts + 1)], detector=True),
                                root / "gateway.log")
            gw.start()
            w = Watcher(broker.port)
            w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", 60, "gateway online")
        console.print("  gateway online")
        with console.status("starting the staff web service (docs/web.md)"):
            from cart_testing.web import start_demo_web     # the staff web service and a cart's screen
            web, urls = start_demo_web(root, root / "gateway.toml", f"c{1:03d}")
        for line in urls:
            console.print(line, soft_wrap=True)
        for n in range(1, carts + 1):   # one by one: each made is closed below, even after a Ctrl-C here
            shoppers.append(Shopper(f"c{n:03d}", broker.port, root, seed + n, cat))
        with console.status(f"booting {2 * carts} boards (scale and camera per cart) in micropython"):
            for sh in shoppers:
                for b in sh.boards():
                    b.power_on()
            for sh in shoppers:
                w.wait(lambda: all((w.json(f"carts/{sh.cart}/{b}/status") or {}).get("state") == "online"
                                   for b in ("scale", "cam")), 30, f"{sh.cart} boards online")
            time.sleep(1.5)
        console.print(f"  {2 * carts} boards online; shoppers start (Ctrl-C stops the demo)")
        t_end = time.monotonic() + seconds
        next_add = {sh.cart: time.monotonic() + 1 + i for i, sh in enumerate(shoppers)}
        with Live(view(_views(shoppers, w), seconds), console=console, refresh_per_second=4,
                  vertical_overflow="crop") as live:
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
                        sh.log.append(f"reviewer: {product_name(cat, sku)}")
                live.update(view(_views(shoppers, w), t_end - now))
                time.sleep(0.25)
        if not console.is_terminal:
            console.line()   # a terminal's Live ends its last frame with a new line; a pipe's does not
        receipts = {}
        console.print("exit: every cart checks out")
        for sh in shoppers:
            t0 = time.monotonic()
            w.c.publish(f"carts/{sh.cart}/checkout", json.dumps({"v": 1, "req_id": f"exit-{sh.cart}"}), qos=1)
            rec = w.wait(lambda: (w.json(f"carts/{sh.cart}/receipt") or {}).get("req_id") == f"exit-{sh.cart}"
                         and w.json(f"carts/{sh.cart}/receipt"), 10, f"{sh.cart} receipt")
            receipts[sh.cart] = (rec, (time.monotonic() - t0) * 1000)
        return _report(console, shoppers, receipts, w, cat, out)
    except Exception:
        log = root / "gateway.log"
        if log.exists():   # the folder goes below: show why the gateway may have failed
            console.print("[red]demo failed; the gateway's last log lines:[/red]")
            for line in log.read_text(errors="replace").splitlines()[-10:]:
                console.print(f"  {line}", markup=False, highlight=False)
        raise
    finally:
        # a second Ctrl-C must not leave processes or the folder behind
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if w is not None:
                w.close()
            for sh in shoppers:
                for b in sh.boards():
                    b.close()
            if web is not None:
                web.stop()
            if gw is not None:
                gw.stop()
            if broker is not None:
                broker.stop()
            shutil.rmtree(root, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)


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
            console.print(f"{ln['qty']:>3} × {ln['name'][:52]:<52} {ln['price_cents'] / 100:>8.2f}")
        console.print(f"{'total':>58} {rec['total_cents'] / 100:>8.2f}")
        truth_cents = sum(cat[s].price_cents for s in sh.truth)
        if truth_cents != rec["total_cents"]:
            wrong += 1
            console.print(f"[red]truth was {truth_cents / 100:.2f}[/red]")
    n = len(shoppers)
    figures = {"baskets": n, "items": items, "shopper_prompts": prompts, "human_reviews": reviews,
               "wrong_baskets": wrong,
               "human_reviews_per_1000_baskets": round(1000 * reviews / n, 1) if n else 0.0,
               "shopper_prompts_per_100_items": round(100 * prompts / items, 1) if items else 0.0,
               "wrong_baskets_per_1000": round(1000 * wrong / n, 1) if n else 0.0,
               "max_receipt_ms": round(max(ms for _, ms in receipts.values()), 1)}
    console.rule("figures (a few baskets: the goals are for thousands, see cart-sim bench)")
    for line in figure_lines(figures, ["baskets", "items", "human_reviews_per_1000_baskets",
                                       "shopper_prompts_per_100_items", "wrong_baskets_per_1000", "max_receipt_ms"]):
        console.print(line, markup=False, highlight=False)
    if out:
        out.write_text(json.dumps(figures, indent=1))
    return figures


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--carts", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")


def main(args: argparse.Namespace) -> int:
    console = Console()
    try:
        figures = run(args.carts, args.seconds, args.seed, args.out, console)
    except KeyboardInterrupt:
        console.print("demo stopped (Ctrl-C): every process stopped, nothing left behind")
        return 130
    return 0 if figures["baskets"] else 1
