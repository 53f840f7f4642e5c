"""Fast mode: a store's baskets in simulated time, real code on both sides.

Per basket (one cart): a LoadCellModel (cart_sim.physics) produces raw HX711
conversions at 80 SPS; the firmware's own ScaleLoop/ScalePipeline
(cartfw.apps.scale.build, run under CPython) turns them into §6 events,
encoded with cartfw.proto; a camera burst (§6.3) follows each `unsettled`,
its frames drawn from the ScenePool (real renderer + real detector, cached).
Every message goes to a sink as (t_ms, topic, qos, retain, payload) and to
GatewayFeed.handle, i.e. the real reconciliation engine. The shopper answers
prompts, a reviewer answers reviews (both as protocol messages), then the
shopper checks out; the receipt is compared with what is really in the cart.

Time between actions (walking the aisle) is skipped: the cell's clock jumps
and the pipeline resumes with 300 ms of samples before the next action.
"""
from __future__ import annotations

import heapq
import json
import re
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from cartfw import proto, framing
from cartfw.apps.scale import build as build_scale
from cart_gateway.catalogue import Catalogue

from .physics.hx711 import LoadCellModel
from .gwfeed import GatewayFeed
from .judge import judge_receipt
from .shoppers import Action, Shopper, answer_for, verdict_for
from .world import EMPTY_CONDITIONS, NO_ITEM, ScenePool, pack_weight
from cart_gateway.reconcile.inputs import PERSONAL_PREFIX
from . import stills

GW = "sim"
ORACLES = ("vision", "scale", "shopper")   # `cart-sim bench --oracle`: measuring instruments, never the default
WALL0 = 1_790_000_000_000     # trace t_ms of the first basket (Unix ms)
CPG = 86.0                    # counts per gram, as LoadCellModel's default (docs/scale.md)
FRAME_GAP_MS = (80, 200, 320, 440, 560, 680, 800, 920)  # burst frame times after `unsettled`
TICK_MS = 100                 # the gateway's timer while the cart is quiet
IDLE_TICKS_MS = (500, 1000, 1500, 2000, 3000, 4000, 5000)   # timer ticks kept while the shopper walks
STILL_MS = 800                # weight event -> still read at the gateway (docs/camera.md "Stills")


class _Driver:
    """HX711 driver stand-in holding at most one conversion (the sim feeds one per period)."""
    def __init__(self):
        self.raw = None

    def read(self):
        r, self.raw = self.raw, None
        return r


@dataclass
class BasketResult:
    cart: str
    dishonest: bool
    items: int
    prompts: int = 0
    reviews: int = 0
    receipt_ok: bool = False
    wrong: bool = False
    over_cents: int = 0
    under_cents: int = 0
    truth_cents: int = 0
    charged_cents: int = 0
    cheats: list = field(default_factory=list)
    latencies_ms: list = field(default_factory=list)
    move_latencies_ms: list = field(default_factory=list)
    refusals: int = 0
    multi_sku_moves: int = 0      # movements of two different products (two at once, swaps)
    causes: list = field(default_factory=list)        # actions the receipt got wrong, by cause
    prompts_by: Counter = field(default_factory=Counter)   # "<action>: <prompt kind>"
    reviews_by: Counter = field(default_factory=Counter)   # "<action>: <reason>"
    unattributed_effects: int = 0
    detail: dict = field(default_factory=dict)
    truth_units: dict = field(default_factory=dict)          # sku -> packed units really in the cart
    truth_produce_cents: dict = field(default_factory=dict)  # sku -> true price of the produce in the cart


class Store:
    """One store: a shared gateway feed (shared weight book) and the scene pool."""

    def __init__(self, scenario: dict, seed: int, catalogue: Catalogue | None = None,
                 frames: bool = False, sink=None, pool: ScenePool | None = None,
                 oracles: frozenset | set | tuple = ()):
        bad = sorted(set(oracles) - set(ORACLES))
        if bad:
            raise ValueError(f"unknown oracle {bad[0]!r} (choose from {', '.join(ORACLES)})")
        # Oracles replace one source of error with the truth, to measure the decision logic's own floor:
        # vision: the detector returns what the frame shows at 0.99; scale: no noise, spikes, drift,
        # pushes, bumps or resting hands; shopper: no slips. The world (plans, packs) stays the same.
        self.oracles = frozenset(oracles)
        self.sc = scenario
        self.seed = seed
        self.cat = catalogue or Catalogue.load()
        self.pool = pool or ScenePool(self.cat, scenario["camera"], seed=seed)
        self.send_frames = frames            # trace mode: real JPEG chunks
        self.sink = sink
        self._frame_keys: dict[tuple, str | None] = {}
        self.feed = GatewayFeed(self.cat, frame_source=None if frames else self._pool_frame)
        self.engine_s = 0.0
        self.stills = stills.attach(self, scenario["camera"])   # None unless camera.still

    def _pool_frame(self, cart, epoch, frame):
        k = self._frame_keys.pop((cart, epoch, frame), None)
        if k is None:
            return None
        if "vision" in self.oracles:
            return oracle_candidates(k)
        return self.pool.candidates(k)

    def run(self, n: int, progress=None) -> list[BasketResult]:
        out = []
        for i in range(n):
            out.append(BasketRun(self, i).run())
            if progress:
                progress(i + 1, n)
        self.pool.save()
        if self.stills is not None:
            self.stills.save()
        return out


class BasketRun:
    def __init__(self, store: Store, index: int):
        self.st = store
        self.sc = store.sc
        self.cat = store.cat
        self.cart = f"s{index:05d}"
        self.rng = random.Random(f"{store.seed}|{index}")
        sen = self.sc["sensor"]
        self.perfect_scale = "scale" in store.oracles
        k = 0.0 if self.perfect_scale else 1.0
        self.cell = LoadCellModel(self.rng.randrange(1 << 30), noise_g=k * sen["noise_g"],
                                  spike_rate=k * sen["spike_rate"], drift_g_per_h=k * sen["drift_g_per_h"])
        self.drv = _Driver()
        self.seq = {"scale": 0, "cam": 0}
        self.loop = build_scale({"calibration": {"scale": CPG, "offset": 0}}, self.drv, self._emit_scale)
        self.wall0 = WALL0 + index * 10_000_000
        self.now = 0                      # mono ms, both boards
        self.queue: list = []             # (t, n, kind, data): scheduled camera / answers / verdicts
        self.qn = 0
        self.frame_no = 0
        self.action: Action | None = None
        self.by_useq: dict[int, Action] = {}
        self.shopper = Shopper(self.sc, self.cat, self.rng)
        self.res = BasketResult(self.cart, self.shopper.dishonest, 0)
        self.first_decision: dict[str, int] = {}
        self.move_latency: dict = {}     # movement start (unsettled) -> decision
        self.move_action: dict = {}      # engine move id -> (action, delta_g), for diagnosis
        self.action_got: dict = {}       # id(action) -> summed basket effect of its movements
        self.action_how: dict = {}       # id(action) -> outcomes that changed the basket
        self.wrong_actions: list = []    # (cause, action), for diagnosis scripts
        self.action_io: dict = {}        # id(action) -> ({sku: in}, {sku: out}) charged / credited so far
        self.log: list = []
        self.still_cam = store.stills and stills.StillCamera(store.stills, self.sc["camera"],
                                                              f"{store.seed}|{index}|still")

    # --- message plumbing -------------------------------------------------------
    def _clock(self):
        return (self.now, None, False)

    def _send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, t: int | None = None):
        t_ms = self.wall0 + (self.now if t is None else t)
        if self.st.sink is not None:
            self.st.sink(t_ms, topic, qos, retain, payload)
        r0 = self.st.pool.render_s
        t0 = time.perf_counter()
        fx = self.st.feed.handle(topic, payload, t_ms)
        dt = time.perf_counter() - t0 - (self.st.pool.render_s - r0)   # first-time scene renders are not the gateway's
        self.st.engine_s += dt
        if fx:
            self._effects(fx, dt * 1000.0)
        return fx

    def _emit_scale(self, typ, fields):
        self.seq["scale"] += 1
        s = self.seq["scale"]
        payload = proto.encode_event(self.cart, "scale", 1, s, typ, fields, self._clock())
        if typ == "unsettled":
            self.by_useq[s] = self.action
            self._burst(s)
        self._send(f"carts/{self.cart}/scale/evt", payload)
        if typ == "weight" and self.still_cam:
            k = self.still_cam.still_key(self.action, fields["delta_g"])
            if k is not False:
                self._push(self.now + STILL_MS, "still", (fields["window"]["unsettled_seq"], k))
        return s

    def _burst(self, useq: int):
        cam = self.sc["camera"]
        a = self.action
        frames = []
        for j in range(cam["frames_per_burst"]):
            self.frame_no += 1
            t = self.now + FRAME_GAP_MS[j]
            frames.append((self.frame_no, t, self._scene(a, j)))
        self._push(frames[-1][1] + 20, "capture", (useq, frames))

    def _scene(self, a: Action | None, j: int) -> str | None:
        """Pool key of what frame j of a burst shows; None: the frame is missed."""
        if self.rng.random() < self.sc["camera"]["p_missed_frame"]:
            return None
        i = self.rng.randrange(1 << 20)
        if a is None or a.kind == "lean":
            return self.st.pool.key(None, "hand", i)
        if a.personal_class and a.view == "hand" and a.cheat is None:
            # a personal item: the pool has no scenes of one yet (the detector's personal classes are
            # issue 13's); the vision oracle names it, the real detector sees "no product"
            return self.st.pool.key(None, "hand", i) + "|" + a.personal_class
        items = [x for x in (a.removes + a.adds if a.kind in ("swap", "put_back") else a.adds + a.removes)]
        sku = items[j % len(items)][0] if items else None
        if sku is None or a.view in ("hand", "covered"):
            return self.st.pool.key(None, "covered" if a.view == "covered" else "hand", i)
        return self.st.pool.key(sku, a.view, i)

    def _push(self, t, kind, data):
        self.qn += 1
        heapq.heappush(self.queue, (t, self.qn, kind, data))

    def _run_queued(self, upto: int):
        while self.queue and self.queue[0][0] <= upto:
            t, _, kind, data = heapq.heappop(self.queue)
            saved, self.now = self.now, max(self.now, t)
            if kind == "capture":
                self._capture(*data)
            elif kind == "still":
                stills.send_still(self, *data)
            else:
                self._send(*data)
            self.now = max(saved, self.now)

    def _capture(self, useq, frames):
        nos, mss = [], []
        for no, t, key in frames:
            nos.append(no)
            mss.append(t)
            if key is None:
                continue
            if self.st.send_frames:
                for ch in framing.encode(self.st.pool.jpeg(key), 1, no):
                    self._send(f"carts/{self.cart}/cam/frame", ch, t=t)
            else:
                self.st._frame_keys[(self.cart, 1, no)] = key
        self.seq["cam"] += 1
        fields = {"trigger": "unsettled", "ref": f"{self.cart}/scale/1/{useq}", "frames": nos, "frame_ms": mss}
        self._send(f"carts/{self.cart}/cam/evt",
                   proto.encode_event(self.cart, "cam", 1, self.seq["cam"], "capture", fields, self._clock()))

    # --- the gateway's outputs, answered by the shopper and the reviewer --------
    def _effects(self, fx: dict, step_ms: float = 0.0):
        if "receipt" in fx:
            return
        eng = self.st.feed.engine(self.cart)
        for d in fx.get("decisions", []):
            m = d.get("move_id")
            if m and m not in self.first_decision and d["outcome"] in ("accept", "ask", "review"):
                mv = eng.s["moves"].get(m)
                if mv:
                    # settle -> decision: event time waited for evidence plus the engine's compute time
                    self.first_decision[m] = d["mono_ms"] - mv["mono_ms"] + step_ms
                    self.move_latency[m] = d["mono_ms"] - mv["start_ms"] + step_ms
                    self.move_action[m] = (self.by_useq.get(mv["unsettled_seq"]), round(mv["delta_g"], 1))
            if m:
                self.log.append(d)
                ma = self.move_action.get(m)
                if ma and ma[0] is not None and "effect" in d:
                    # what the gateway charged / credited for this action (diagnosis, issue 6)
                    self.action_got.setdefault(id(ma[0]), {}).update(
                        {k: round(self.action_got.get(id(ma[0]), {}).get(k, 0) + v, 1) for k, v in d["effect"].items()})
                    self.action_how.setdefault(id(ma[0]), []).append(d["outcome"])
                    io = self.action_io.setdefault(id(ma[0]), ({}, {}))
                    for k, v in d["effect"].items():     # what went in and what came out, kept apart
                        side = io[0] if v > 0 else io[1]
                        side[k] = round(side.get(k, 0) + abs(v), 1)
                elif ma and ma[0] is None and d.get("effect"):
                    self.res.unattributed_effects += 1
        shop = self.sc["shopper"]
        slip = 0.0 if "shopper" in self.st.oracles else shop["answer_error_rate"]
        for p in fx.get("prompts_opened", []):
            self.res.prompts += 1
            mv = eng.s["moves"][eng.s["prompts"][p["prompt_id"]]["move_id"]]
            a = self.by_useq.get(mv["unsettled_seq"])
            self.res.prompts_by.update([_kind(a, mv["delta_g"]) + ": " + p["kind"]])
            choice = answer_for(a, p, mv["delta_g"], self.cat, self.rng, slip)
            body = {"v": 1, "prompt_id": p["prompt_id"], "answer_id": "a-" + p["prompt_id"], "choice": choice}
            t = self.now + int(1000 * self.rng.uniform(shop["answer_s_min"], shop["answer_s_max"]))
            self._push(t, "send", (f"carts/{self.cart}/screen/answer", _j(body), 1, False))
        for r in fx.get("reviews_opened", []):
            self.res.reviews += 1
            mv = eng.s["moves"][eng.s["reviews"][r["review_id"]]["move_id"]]
            a = self.by_useq.get(mv["unsettled_seq"])
            self.res.reviews_by.update([_kind(a, mv["delta_g"]) + ": " + _reason(r["reason"])])
            body = {"v": 1, "review_id": r["review_id"], "verdict_id": "v-" + r["review_id"],
                    **verdict_for(a, mv["delta_g"], *(self.action_io.get(id(a), ({}, {})) if a is not None else ({}, {})))}
            t = self.now + int(1000 * self.rng.uniform(shop["review_s_min"], shop["review_s_max"]))
            self._push(t, "send", (f"gateway/{GW}/review/verdict", _j(body), 1, False))

    # --- physics ---------------------------------------------------------------
    def _samples(self, ms: float):
        """Run the cell and the firmware for `ms` of simulated time."""
        end = self.cell.t_ms + ms
        next_tick = self.now + TICK_MS
        while self.cell.t_ms < end:
            self.now = int(self.cell.t_ms)
            self.drv.raw = self.cell.next_raw()
            self.loop.step(self.now)
            if self.queue and self.queue[0][0] <= self.now:
                self._run_queued(self.now)
            if self.now >= next_tick:
                next_tick = self.now + TICK_MS
                self._tick()

    def _tick(self):
        t0 = time.perf_counter()
        fx = self.st.feed.tick(self.cart, self.wall0 + self.now)
        dt = time.perf_counter() - t0
        self.st.engine_s += dt
        self._effects(fx, dt * 1000.0)

    def _idle(self, ms: int):
        """Walking the aisle: no samples, but queued answers and verdicts go out."""
        target = self.now + ms
        # the gateway's timer keeps running while the shopper walks: its first IDLE_TICKS_MS
        # are ticked (a decision held for the action to settle again is released then, as live)
        ticks = [self.now + t for t in IDLE_TICKS_MS if self.now + t < target]
        while (self.queue and self.queue[0][0] <= target) or ticks:
            if ticks and (not self.queue or ticks[0] < self.queue[0][0]):
                self.now = max(self.now, ticks.pop(0))
                self.cell.t_ms = max(self.cell.t_ms, float(self.now))
                self._tick()
                continue
            self.now = max(self.now, self.queue[0][0])
            self.cell.t_ms = max(self.cell.t_ms, float(self.now))
            self._run_queued(self.now)
        self.now = target
        self.cell.t_ms = float(target)
        self._tick()

    def _do(self, a: Action):
        rng, cell, beh = self.rng, self.cell, self.sc["behaviour"]
        self.action = a
        self._samples(300)
        base = cell.base_g
        if a.kind == "lean":
            cell.hand(rng.uniform(2000, 8000), rng.uniform(800, 4000))
            self._samples(5000)
            return
        if a.kind == "put_back":    # lift out, hold a moment, put it back
            g = a.removes[0][2]
            cell.ramp_to(base - g, rng.uniform(200, 500))
            self._samples(rng.uniform(300, 2500))
            cell.ramp_to(base, rng.uniform(200, 500))
        else:
            target = base + sum(g for _, _, g in a.adds) - sum(g for _, _, g in a.removes)
            if a.kind == "swap":    # out, then the other in, without settling between
                mid = base - a.removes[0][2]
                cell.ramp_to(mid, rng.uniform(200, 400))
                self._samples(rng.uniform(150, 250))
            cell.ramp_to(target, rng.uniform(250, 700))
        self._samples(rng.uniform(300, 700))
        if self.perfect_scale:        # the draws above and in the plan stay the same; only the disturbances go
            self._samples(4500)
            return
        if a.hand_rest:
            cell.hand(rng.uniform(100, 1500), rng.uniform(500, 2500))
        if a.push:
            cell.vibration(beh["push_amplitude_g"] * rng.uniform(0.5, 1.0), rng.uniform(2, 6),
                           rng.uniform(1000, 4000))
        if a.bump:
            cell.bump(rng.uniform(200, 1500), rng.uniform(40, 120))
        self._samples(4500)

    # --- a whole basket ---------------------------------------------------------
    def run(self) -> BasketResult:
        for board in ("scale", "cam"):
            self._send(f"carts/{self.cart}/{board}/status",
                       proto.encode_status(self.cart, board, 1, self._clock(), True), retain=True)
        self.cell.set_load(0.0)
        self._samples(1500)               # power-up, tare settles
        plan = self.shopper.plan(lambda s: pack_weight(self.rng, s))
        self.plan = plan
        for a in plan:
            self._idle(a.think_ms)
            self._do(a)
            if a.cheat:
                self.res.cheats.append(a.cheat)
            if sum(1 for sku, _, _ in a.adds if sku) > 1 and a.kind == "add":
                self.res.multi_sku_moves += 1      # two different products in one movement
            if a.kind == "swap":
                self.res.multi_sku_moves += 1
        self._samples(2000)
        receipt = None
        for attempt in range(40):        # the shopper waits for answers and reviews
            if self.queue:
                self._idle(max(0, self.queue[0][0] - self.now) + 1)
                continue
            fx = self._send(f"carts/{self.cart}/checkout", _j({"v": 1, "req_id": f"{self.cart}-q{attempt}"}))
            receipt = fx["receipt"]
            if receipt["ok"]:
                break
            self.res.refusals += 1
            self._idle(2000)
        self._score(receipt)
        self._diagnose()
        self.res.latencies_ms = sorted(self.first_decision.values())
        self.res.move_latencies_ms = sorted(self.move_latency.values())
        return self.res

    def _score(self, receipt):
        res, cat = self.res, self.cat
        truth = Counter()
        produce = Counter()
        for sku, g in self.shopper.in_cart:
            if cat[sku].sold_by_weight:
                produce[sku] += round(g * cat[sku].price_cents / 1000)
            else:
                truth[sku] += 1
        res.items = len(self.shopper.in_cart)     # units (a produce bag is one)
        res.truth_cents = sum(cat[s].price_cents * q for s, q in truth.items()) + sum(produce.values())
        res.truth_units, res.truth_produce_cents = dict(truth), dict(produce)
        j = judge_receipt(cat, truth, produce, res.truth_cents, receipt)
        res.receipt_ok, res.wrong, res.detail = j.receipt_ok, j.wrong, j.detail
        if j.receipt_ok:
            res.charged_cents, res.over_cents, res.under_cents = j.charged_cents, j.over_cents, j.under_cents

    def _diagnose(self):
        """Each action whose basket effect differs from what physically happened, by cause:
        `<action kind>/<how it was settled>/<what went wrong>`."""
        cat = self.cat
        for a in self.plan:
            truth: dict = {}
            for sign, items in ((1, a.adds), (-1, a.removes)):
                for sku, units, g in items:
                    key = "personal" if sku is None else sku
                    n = 1 if sku is None else g if cat[sku].sold_by_weight else units
                    truth[key] = truth.get(key, 0) + sign * n
            got = dict(self.action_got.get(id(a), {}))
            # produce is compared in grams within the scale's accuracy (bench: 2 % or 5 cents)
            for k in set(truth) | set(got):
                if k != "personal" and cat[k].sold_by_weight:
                    t, g = truth.get(k, 0), got.get(k, 0)
                    ok = abs(t - g) <= max(10.0, 0.03 * abs(t))
                    truth[k] = 0 if abs(t) <= 10.0 else (1 if t > 0 else -1)
                    got[k] = truth[k] if ok else (0 if abs(g) <= 10.0 else 1 if g > 0 else -1) or 2
            truth = {k: v for k, v in truth.items() if v}
            norm = {k: v for k, v in got.items() if v}
            if a.cheat and a.cheat != "label_swap":
                continue             # loss prevention, counted separately
            if norm == truth:
                continue
            how = self.action_how.get(id(a))
            settled = ("no_decision" if not how else "reviewed" if "verdict" in how
                       else "answered" if "answer" in how else "accepted")
            prod_t = {k for k in truth if k != "personal"}
            prod_g = {k for k in norm if k != "personal"}
            if not norm:
                what = "missed"
            elif prod_t and prod_g and prod_t != prod_g:
                what = "wrong_sku"
            elif prod_t == prod_g and prod_t:
                what = "wrong_qty"
            elif not prod_t and prod_g:
                what = "charged_nothing_moved" if not truth else "personal_as_product"
            elif prod_t and not prod_g:
                what = "product_as_personal" if "personal" in norm else "missed"
            else:
                what = "personal_miscount"
            two = len({x[0] for x in a.adds + a.removes if x[0]}) > 1
            self.res.causes.append(f"{a.kind}{'(2 skus)' if two and a.kind != 'swap' else ''}/{settled}/{what}")
            self.wrong_actions.append((self.res.causes[-1], a))


def oracle_candidates(key: str) -> list:
    """What a pool scene shows, as a detector that is never wrong would say it (0.99)."""
    parts = key.split("|")
    sku, cond = parts[0], parts[1]
    if len(parts) > 3:                          # a personal item in view
        return [[PERSONAL_PREFIX + parts[3], 0.99, 0.5, 0.5]]
    if sku == NO_ITEM or cond in EMPTY_CONDITIONS:
        return [[None, 0.99, 0.5, 0.5]]
    return [[sku, 0.99, 0.5, 0.5]]


def _kind(a: Action | None, delta_g: float) -> str:
    if a is None:
        return "none"
    two = len({x[0] for x in a.adds if x[0]}) > 1
    return ("add2" if two and a.kind == "add" else a.kind) + ("" if a.cheat is None else f"[{a.cheat}]")


def _reason(r: str) -> str:
    """A review reason without its numbers (for counting)."""
    r = r.split(" (z=")[0]
    r = re.sub(r"shopper's choice .* (does not fit|is unlikely)", r"shopper's choice \1", r)
    r = re.sub(r"(unknown sku|scanned barcode) \S+", r"\1 X", r)
    return r


def _j(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
