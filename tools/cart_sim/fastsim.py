"""Fast mode: a store's baskets in simulated time, real code on both sides.

Per basket (one cart): a LoadCellModel (cart_sim.physics) produces raw HX711
conversions at 80 SPS; the firmware's own ScaleLoop/ScalePipeline
(cartfw.apps.scale.build, run under CPython) turns them into §6 events,
encoded with cartfw.proto; a camera burst (§6.3) follows each `unsettled`.
Every message goes to a sink as (t_ms, topic, qos, retain, payload) and to
the real gateway: `cart_gateway.service.Gateway` (SQLite in memory, frames in
a temporary directory) driven by `cart_gateway.replay.Replayer`, the driver
`cart-gateway replay` uses, so a trace of the run replays to the same receipts.
The gateway's timer fires on its `tick_ms` grid whenever it waits on time
(Replayer.ticks_until), also while the shopper walks.

Frames: each burst frame is drawn from the ScenePool (real renderer + real
detector, cached). In fast mode its bytes are a stand-in JPEG naming the pool
scene (assembled, stored and handed to the detector stage by the gateway like
any frame); the detector stage (PoolDetector) returns the real detector's
cached output for that scene. In trace mode the frames are the real JPEGs.
What the simulator learns about the gateway comes from its publishes
(prompts, reviews, baskets, receipts) and its decision log.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cartfw import proto, framing
from cartfw.apps.scale import build as build_scale
from cart_gateway.catalogue import Catalogue
from cart_gateway.config import parse_config
from cart_gateway.detectors.api import Candidate
from cart_gateway.vision import StillFrame
from cart_gateway.replay import Replayer, ReplaySummary, collect_rejections
from cart_gateway.store import Store as GatewayStore

from .physics.hx711 import LoadCellModel
from .judge import judge_receipt
from .shoppers import Action, Did, Shopper, answer_for, intended_choice
from .reviewers import Review, Reviewer, ReviewPage, normalised, truth_verdict
from .world import EMPTY_CONDITIONS, NO_ITEM, ScenePool, pack_weight
from .wrong_causes import AskInfo, Charge, culprit, decision_how, missed_cause
from cart_gateway.reconcile.inputs import PERSONAL_PREFIX
from . import stills

GW = "sim"
ORACLES = ("vision", "scale", "shopper", "reviewer")   # `cart-sim bench --oracle`: measuring instruments, never the default
WALL0 = 1_790_000_000_000     # trace t_ms of the first basket (Unix ms)
BASKET_SPAN_MS = 10_000_000   # each basket starts this long after the one before (gateway time)
CPG = 86.0                    # counts per gram, as LoadCellModel's default (docs/scale.md)
FRAME_GAP_MS = (80, 200, 320, 440, 560, 680, 800, 920)  # burst frame times after `unsettled`
CMD_MS = 50                   # a command published -> the camera's first frame of its burst
STILL_MS = 800                # weight event -> still read at the gateway (docs/camera.md "Stills")
STANDIN = b"cart-sim scene "  # JPEG comment of a stand-in frame: the pool scene it shows


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
    # the same actions by the decision that charged the wrong thing (wrong_causes.py), in plan order
    decision_causes_wrong: list = field(default_factory=list)
    prompts_by: Counter = field(default_factory=Counter)   # "<action>: <prompt kind>"
    reviews_by: Counter = field(default_factory=Counter)   # "<action>: <reason>"
    # every ask and review the gateway decided, by why (the decision log's `cause`, else its reason):
    # "<action>: <outcome>: <cause>" (docs/simulation.md §6)
    decision_causes: Counter = field(default_factory=Counter)
    unattributed_effects: int = 0
    review_clear_ms: list = field(default_factory=list)      # review opened -> verdict (the reviewer model)
    reviewer_errors: int = 0      # verdicts that differ from what really happened in the movement
    reviewer_slips: int = 0       # of which taps on a wrong row
    reviews_at_cart: int = 0      # the page could not tell: staff looked in the cart
    prompts_on_earlier_action: int = 0   # prompts about a movement before the shopper's latest action
    camera_retakes: int = 0       # capture commands the gateway sent (reconcile/retake.py)
    unsettled_without_weight: int = 0   # windows the firmware opened and no weight event closed
    detail: dict = field(default_factory=dict)
    truth_units: dict = field(default_factory=dict)          # sku -> packed units really in the cart
    truth_produce_cents: dict = field(default_factory=dict)  # sku -> true price of the produce in the cart
    receipt: dict | None = None                              # the receipt the gateway published


def gateway_config(state_dir: str, wait_for_still: bool = False, overrides: dict | None = None):
    """The gateway's own defaults (tick_ms, reconcile), for the simulator's cart ids; `overrides`:
    sections of its config file to set for the run (`cart-sim bench --gateway`)."""
    cfg = parse_config({**(overrides or {}), "gateway_id": GW, "state_dir": state_dir,
                        "carts": {"pattern": "s[0-9]+"}}, where="--gateway" if overrides else "<config>")
    if wait_for_still and "wait_for_still" not in (overrides or {}).get("reconcile", {}):
        cfg = cfg.model_copy(update={"reconcile": cfg.reconcile.model_copy(update={"wait_for_still": True})})
    return cfg


def _scratch_dir() -> str | None:
    """Frame files of the gateway under test: on tmpfs when there is one (each is fsynced)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _tiny_jpeg(size: tuple[int, int]) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buf, "JPEG", quality=10)
    return buf.getvalue()


class PoolDetector:
    """The fast mode's detector stage, with BurstDetector.run's interface: a frame's detections
    are the real detector's on the pool scene it shows (ScenePool, cached), a still's codes the
    real reader's on its still scene (StillPool). Frames are recognised by their bytes: a
    stand-in names its scene in a JPEG comment; a real JPEG (trace mode) is looked up by hash."""

    def __init__(self, pool: ScenePool, still_pool=None, vision_oracle: bool = False):
        self.pool, self.stills, self.vision_oracle = pool, still_pool, vision_oracle
        self.real: dict[bytes, tuple[str, str | None]] = {}   # digest -> (kind, key), trace mode
        self._bases: dict[tuple, bytes] = {}
        self.s = 0.0                 # time in this stage (first-time renders included)

    def candidates(self, key: str | None) -> list:
        if key is None:
            return []
        return oracle_candidates(key) if self.vision_oracle else self.pool.candidates(key)

    def standin(self, kind: str, key: str | None, size: tuple[int, int] = (16, 16)) -> bytes:
        base = self._bases.get(size)
        if base is None:
            base = self._bases[size] = _tiny_jpeg(size)
        text = STANDIN + f"{kind} {key or NO_ITEM}".encode()
        return b"\xff\xd8\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]

    def real_jpeg(self, key: str) -> bytes:
        jpeg = self.pool.jpeg(key)
        self.real[hashlib.blake2b(jpeg, digest_size=16).digest()] = ("frame", key)
        return jpeg

    def _scene(self, jpeg: bytes) -> tuple[str, str | None] | None:
        if jpeg[4:6] and jpeg[6:6 + len(STANDIN)] == STANDIN:
            n = int.from_bytes(jpeg[4:6], "big")
            kind, key = jpeg[6 + len(STANDIN):4 + n].decode().split(" ", 1)
            return kind, None if key == NO_ITEM else key
        return self.real.get(hashlib.blake2b(jpeg, digest_size=16).digest())

    def _still_frame(self, key: str) -> StillFrame:
        """The still classifier's candidates for a still scene (the truth at 0.99 under the vision oracle)."""
        if self.vision_oracle:
            sku = key.split("|")[0]
            return StillFrame([Candidate(sku=None if sku == "-" else sku, score=0.99, cx=0.5, cy=0.5)])
        return StillFrame([Candidate(sku=s, score=sc, cx=x, cy=y) for s, sc, x, y in self.stills.classes(key)])

    def run(self, jpegs: list[bytes]) -> tuple[list[list], list[str]]:
        t0 = time.perf_counter()
        frames, codes = [], []
        for jpeg in jpegs:
            scene = self._scene(jpeg)
            if scene is not None and scene[0] == "still":
                for c in self.stills.codes(scene[1]):
                    if c not in codes:
                        codes.append(c)
                if self.stills.classifies and scene[1] is not None:
                    frames.append(self._still_frame(scene[1]))
                continue
            c = [] if scene is None else self.candidates(scene[1])
            frames.append([Candidate(sku=s, score=sc, cx=x, cy=y) for s, sc, x, y in c])
        self.s += time.perf_counter() - t0
        return frames, codes


def scene_pool(catalogue: Catalogue, scenario: dict, seed: int) -> ScenePool:
    """The camera's scene pool for a run (world.py; its views depend on the pool seed; cached on disk)."""
    return ScenePool(catalogue, scenario["camera"], seed=seed)


# --- the people (shoppers.py): each reached through one function -----------------

def shopper_for(scenario: dict, catalogue: Catalogue, rng: random.Random) -> Shopper:
    """The basket's shopper (plans what they do)."""
    return Shopper(scenario, catalogue, rng)


def shopper_answer(action: Action | None, prompt: dict, catalogue: Catalogue,
                   rng: random.Random, slip: float):
    """The shopper's answer to a prompt on the cart screen (§11): from the prompt as the screen
    shows it and the shopper's latest action (what they just did), nothing else."""
    return answer_for(action, prompt, catalogue, rng, slip)


def reviewer_verdict(reviewer: Reviewer, oracle: bool, action: Action | None, request: dict,
                     basket: dict | None, scene_of, charged: tuple[dict, dict]) -> Review:
    """The human reviewer's verdict for a review request (§13), from what the review page shows:
    the request, the §10 basket and the stored frames. `action` and `charged` are the judge's,
    used only when staff walk to the cart (or under `--oracle reviewer`)."""
    truth = truth_verdict(action, request["weight"]["delta_g"], *charged)
    if oracle:     # the reviewer is never wrong (and never walks to the cart)
        return Review(truth, reviewer.clear_ms(False))
    return reviewer.review(ReviewPage.build(request, basket, scene_of), lambda: truth)


class Store:
    """One store's gateway (the real service, fresh state) and its scene pool, for a run of baskets."""

    def __init__(self, scenario: dict, seed: int, catalogue: Catalogue | None = None,
                 frames: bool = False, sink=None, pool: ScenePool | None = None,
                 oracles: frozenset | set | tuple = (), still_pool=None):
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
        self.pool = pool or scene_pool(self.cat, scenario, seed)
        self.send_frames = frames            # trace mode: real JPEG chunks
        self.sink = sink
        if still_pool is not None and scenario["camera"]["still"]:
            self.stills = still_pool                # a run's shared pool (run_baskets)
        else:
            self.stills = stills.attach(self, scenario["camera"])   # None unless camera.still
        self.detector = PoolDetector(self.pool, self.stills, "vision" in self.oracles)
        self._tmp = tempfile.TemporaryDirectory(prefix="cart-sim-gw-", dir=_scratch_dir())
        cfg = gateway_config(self._tmp.name, wait_for_still=self.stills is not None,
                             overrides=scenario.get("gateway"))
        self.gateway = Replayer(cfg, Path(self._tmp.name), detector=self.detector,
                                store=GatewayStore(":memory:", "OFF"), catalogue=self.cat)
        self.gateway.keep_outputs = True
        self.tick_ms = cfg.tick_ms
        self.next_tick: int | None = None    # the gateway timer's next grid point (None: no message yet)
        self.gateway_s = 0.0                 # time in the gateway's handlers, the detector stage excluded
        self.receipts: dict[str, dict] = {}  # cart -> the receipt the gateway published
        self.refused = ReplaySummary()       # messages the gateway refused (bad_input), by reason

    def run(self, n: int, progress=None, first: int = 0) -> list[BasketResult]:
        """Baskets first .. first + n - 1, one after another on this store's gateway."""
        out = []
        try:
            with collect_rejections(self.refused):    # the service's bad_input warnings, counted
                for i in range(first, first + n):
                    out.append(BasketRun(self, i).run())
                    if progress:
                        progress(i - first + 1, n)
        finally:
            self.close()
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self.gateway.gw.store.close()
            self._tmp.cleanup()
            self._tmp = None

    def save_pools(self) -> None:
        self.pool.save()
        if self.stills is not None:
            self.stills.save()


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
        self.wall0 = WALL0 + index * BASKET_SPAN_MS
        self.now = 0                      # mono ms, both boards
        self.queue: list = []             # (t, n, kind, data): scheduled camera / answers / verdicts
        self.qn = 0
        self.frame_no = 0
        self.action: Action | None = None
        self.by_useq: dict[int, Action] = {}
        self.closed_useqs: set[int] = set()   # windows a weight event closed
        self.shopper = shopper_for(self.sc, self.cat, self.rng)
        self.res = BasketResult(self.cart, self.shopper.dishonest, 0)
        self.receipt: dict | None = None
        self.basket: dict | None = None   # the last retained §10 basket the gateway published
        self.first_decision: dict[str, float] = {}
        self.move_latency: dict = {}     # movement start (unsettled) -> decision
        self.move_action: dict = {}      # gateway move id -> (action, delta_g), for diagnosis
        self.action_got: dict = {}       # id(action) -> summed basket effect of its movements
        self.action_how: dict = {}       # id(action) -> outcomes that changed the basket
        self.wrong_actions: list = []    # (cause, action), for diagnosis scripts
        self.action_charges: dict = {}   # id(action) -> [Charge]: the decisions that changed the basket for it
        self.asked: dict[str, AskInfo] = {}   # prompt / review id -> what the shopper / reviewer did with it
        self.action_io: dict = {}        # id(action) -> ({sku: in}, {sku: out}) charged / credited so far
        self.prompt_move: dict[str, dict] = {}   # prompt / review id -> the decision's movement
        self.log: list = []
        self.reviewer = Reviewer(self.sc["reviewer"], self.cat, random.Random(f"{store.seed}|{index}|reviewer"))
        self.shown: dict[str, str] = {}   # frame id -> the scene it was taken of (what the review page shows)
        self.retake_rng = random.Random(f"{store.seed}|{index}|retake")
        self.still_cam = store.stills and stills.StillCamera(store.stills, self.sc["camera"],
                                                              f"{store.seed}|{index}|still",
                                                              scenes=store.send_frames or store.stills.classifies)

    # --- message plumbing -------------------------------------------------------
    def _clock(self):
        return (self.now, None, False)

    def _gateway(self, fn, *args):
        """One call into the gateway; its time, less the detector stage's, is the gateway's."""
        st = self.st
        d0, t0 = st.detector.s, time.perf_counter()
        outs = fn(*args)
        st.gateway_s += time.perf_counter() - t0 - (st.detector.s - d0)
        return outs

    def _timer(self, upto_ms: int, stop_on_publish: bool = False) -> bool:
        """The gateway's timer up to gateway time upto_ms, on the grid live and replay fire it
        (every tick_ms from the first message; a stretch in which nothing waits on time is
        skipped to its last grid point, as Replayer.ticks_until does). stop_on_publish: return
        True after the first tick that published, with self.now at its time."""
        st = self.st
        while st.next_tick is not None and st.next_tick <= upto_ms:
            t = st.next_tick
            if not st.gateway.gw.timer_pending():
                t += (upto_ms - t) // st.tick_ms * st.tick_ms
            self._gateway(st.gateway.tick, t)
            st.next_tick = t + st.tick_ms
            outs = self._take_outputs()
            if outs is not None:
                self._outputs(outs, t)
                if stop_on_publish:
                    self.now = max(self.now, t - self.wall0)
                    return True
        return False

    def _send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, t: int | None = None):
        st = self.st
        t_ms = self.wall0 + (self.now if t is None else t)
        if st.sink is not None:
            st.sink(t_ms, topic, qos, retain, payload)
        if st.next_tick is None:
            st.next_tick = t_ms + st.tick_ms
        self._timer(t_ms)                # the timer fires before the message, as in replay
        self._gateway(st.gateway.feed, topic, payload, t_ms)
        outs = self._take_outputs()
        if outs is not None:
            self._outputs(outs, t_ms)
        return outs

    def _take_outputs(self):
        """What the gateway published and decided since the last call (None: nothing)."""
        gw = self.st.gateway
        pubs, gw.outputs = gw.outputs, []
        decs, times = gw.gw.decision_log, gw.gw.decision_times
        gw.gw.decision_log, gw.gw.decision_times = [], []
        if not pubs and not decs:
            return None
        return pubs, list(zip(decs, times))

    def _emit_scale(self, typ, fields):
        self.seq["scale"] += 1
        s = self.seq["scale"]
        payload = proto.encode_event(self.cart, "scale", 1, s, typ, fields, self._clock())
        if typ == "unsettled":
            self.by_useq[s] = self.action
            self._burst(s)
        elif typ == "weight":
            self.closed_useqs.add(fields["window"]["unsettled_seq"])
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

    def _command(self, cmd: dict, now: int) -> None:
        """A §9 command the gateway sent the camera: a `capture` burst (the gateway's retake) is
        taken CMD_MS later of the movement's action, the items it put in still in view (_scene);
        its capture event carries the command's ref. Its draws come from their own RNG, so a
        retake changes nothing else the basket draws."""
        args = cmd.get("args") or {}
        if cmd.get("cmd") != "capture" or "frames" not in args:
            return
        ref = args.get("ref")
        useq = int(ref.rsplit("/", 1)[1]) if ref else None
        a = self.by_useq.get(useq) if useq is not None else self.action
        t0 = now + CMD_MS
        frames = []
        for j in range(args["frames"]):
            self.frame_no += 1
            frames.append((self.frame_no, t0 + FRAME_GAP_MS[j], self._scene(a, j, retake=True)))
        self.res.camera_retakes += 1
        self._push(frames[-1][1] + 20, "capture", (useq, frames, "command", ref))

    def _scene(self, a: Action | None, j: int, retake: bool = False) -> str | None:
        """Pool key of what frame j of a burst shows; None: the frame is missed. A retake's frames
        (after the action) show only what it put in: what it took out is no longer in view."""
        rng = self.retake_rng if retake else self.rng
        if rng.random() < self.sc["camera"]["p_missed_frame"]:
            return None
        i = rng.randrange(1 << 20)
        if a is None or a.kind == "lean":
            return self.st.pool.key(None, "hand", i)
        if a.personal_class and a.view == "hand" and a.cheat is None:
            # a personal item held in view: the pool draws it (cart_model.personal); the vision oracle
            # names it, the real detector says what its personal:<kind> classes make of it
            return self.st.pool.key(None, "hand", i) + "|" + a.personal_class
        items = (a.adds if retake else a.removes + a.adds if a.kind in ("swap", "put_back")
                 else a.adds + a.removes)
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

    def _capture(self, useq, frames, trigger="unsettled", ref=None):
        nos, mss = [], []
        for no, t, key in frames:
            nos.append(no)
            mss.append(t)
            if key is None:
                continue
            self.shown[f"{self.cart}/1/{no}"] = key
            jpeg = self.st.detector.real_jpeg(key) if self.st.send_frames else self.st.detector.standin("frame", key)
            for ch in framing.encode(jpeg, 1, no):
                self._send(f"carts/{self.cart}/cam/frame", ch, t=t)
        self.seq["cam"] += 1
        if trigger == "unsettled":
            ref = f"{self.cart}/scale/1/{useq}"
        fields = {"trigger": trigger, "ref": ref, "frames": nos, "frame_ms": mss}
        self._send(f"carts/{self.cart}/cam/evt",
                   proto.encode_event(self.cart, "cam", 1, self.seq["cam"], "capture", fields, self._clock()))

    def send_still_frame(self, key: str | None, res: str) -> int:
        """A still's chunks (§7.1; a stand-in JPEG of the still's size, trace mode the rendered still): its
        frame number."""
        self.frame_no += 1
        code = framing.RES_NAMES[res]
        if self.st.send_frames:
            jpeg, chunk = stills.real_still(self.st.detector, self.st.stills, key), stills.STILL_CHUNK
        else:
            jpeg, chunk = self.st.detector.standin("still", key, framing.RESOLUTIONS[code]), framing.CHUNK_DEFAULT
        for ch in framing.encode(jpeg, 1, self.frame_no, chunk, still_res=code):
            self._send(f"carts/{self.cart}/cam/frame", ch)
        return self.frame_no

    # --- the gateway's outputs, answered by the shopper and the reviewer --------
    def _outputs(self, outs, t_ms: int):
        """Publishes and decisions of one gateway call at gateway time t_ms."""
        pubs, decisions = outs
        for d, timing in decisions:
            self._decision(d, timing.get("processing_ms", 0.0))
        shop = self.sc["shopper"]
        slip = 0.0 if "shopper" in self.st.oracles else shop["answer_error_rate"]
        now = t_ms - self.wall0
        mine = (f"carts/{self.cart}/basket", f"carts/{self.cart}/receipt", f"carts/{self.cart}/screen/prompt",
                f"gateway/{GW}/review/new")     # exact topics: e.g. the fleet's out/receipt is not the cart's
        for pub in pubs:
            topic = pub.topic
            if topic == f"carts/{self.cart}/cam/cmd":
                self._command(json.loads(pub.payload), now)
                continue
            if topic not in mine:
                continue
            obj = json.loads(pub.payload)
            if topic == mine[0]:
                self.basket = obj          # the retained §10 basket, as the review page shows it
            elif topic == mine[1]:
                self.receipt = obj
                if obj.get("ok"):
                    self.st.receipts[self.cart] = obj
            elif topic == mine[2]:
                p = obj
                self.res.prompts += 1
                mv = self.prompt_move.get(p["prompt_id"], {})
                a = self.by_useq.get(mv.get("unsettled_seq"))
                delta = mv.get("delta_g", 0.0)
                self.res.prompts_by.update([_kind(a, delta) + ": " + p["kind"]])
                choice = shopper_answer(self.action, p, self.cat, self.rng, slip)
                self.res.prompts_on_earlier_action += a is not self.action
                meant = intended_choice(None if self.action is None else Did.of(self.action), p, self.cat)
                self.asked[p["prompt_id"]] = AskInfo(error=choice != meant, about_other=a is not self.action)
                body = {"v": 1, "prompt_id": p["prompt_id"], "answer_id": "a-" + p["prompt_id"], "choice": choice}
                t = now + int(1000 * self.rng.uniform(shop["answer_s_min"], shop["answer_s_max"]))
                self._push(t, "send", (f"carts/{self.cart}/screen/answer", _j(body), 1, False))
            elif topic == f"gateway/{GW}/review/new":
                r = obj
                self.res.reviews += 1
                w = r["weight"]
                a = self.by_useq.get(w["unsettled_seq"])
                self.res.reviews_by.update([_kind(a, w["delta_g"]) + ": " + _reason(r["reason"])])
                verdict, clear_ms = self._reviewer_verdict(r, a)
                body = {"v": 1, "review_id": r["review_id"], "verdict_id": "v-" + r["review_id"], **verdict}
                self._push(now + clear_ms, "send", (f"gateway/{GW}/review/verdict", _j(body), 1, False))

    def _reviewer_verdict(self, request: dict, action: Action | None) -> tuple[dict, int]:
        """The reviewer's §13 verdict fields and the time to clear, from what the review page
        shows (request, basket, stored frames); `action` is the judge's, for a cart visit and
        to count reviewer errors."""
        d = request["weight"]["delta_g"]
        io = self.action_io.get(id(action), ({}, {})) if action is not None else ({}, {})
        rv = reviewer_verdict(self.reviewer, "reviewer" in self.st.oracles, action, request,
                              self.basket, self.shown.get, io)
        truth = truth_verdict(action, d, *io)
        self.res.review_clear_ms.append(rv.clear_ms)
        erred = normalised(rv.verdict, d) != normalised(truth, d)
        self.res.reviewer_errors += erred
        self.asked[request["review_id"]] = AskInfo(error=erred)
        self.res.reviewer_slips += rv.slip
        self.res.reviews_at_cart += rv.at_cart
        return rv.verdict, rv.clear_ms

    def _decision(self, d: dict, processing_ms: float) -> None:
        m, mv = d.get("move_id"), d.get("movement")
        if not m or mv is None:
            return
        for k in ("prompt_id", "review_id"):
            if k in d:
                self.prompt_move[d[k]] = mv
        if m not in self.first_decision and d["outcome"] in ("accept", "ask", "review"):
            # settle -> decision: gateway time waited for evidence plus the handler's compute time
            self.first_decision[m] = d["mono_ms"] - mv["settled_ms"] + processing_ms
            self.move_latency[m] = d["mono_ms"] - mv["start_ms"] + processing_ms
            self.move_action[m] = (self.by_useq.get(mv["unsettled_seq"]), mv["delta_g"])
        self.log.append(d)
        if d["outcome"] in ("ask", "review"):
            a = self.by_useq.get(mv["unsettled_seq"])
            self.res.decision_causes.update([f"{_action_kind(a)}: {d['outcome']}: "
                                             f"{_reason(d.get('cause') or d['reason'])}"])
        ma = self.move_action.get(m)
        if ma and ma[0] is not None and "effect" in d:
            # what the gateway charged / credited for this action (diagnosis, issue 6)
            got = self.action_got.setdefault(id(ma[0]), {})
            for k, v in d["effect"].items():
                got[k] = round(got.get(k, 0) + v, 1)
            self.action_how.setdefault(id(ma[0]), []).append(d["outcome"])
            asked = self.asked.get(d.get("prompt_id") or d.get("review_id"))
            self.action_charges.setdefault(id(ma[0]), []).append(Charge(decision_how(d, asked), dict(d["effect"])))
            io = self.action_io.setdefault(id(ma[0]), ({}, {}))
            for k, v in d["effect"].items():     # what went in and what came out, kept apart
                side = io[0] if v > 0 else io[1]
                side[k] = round(side.get(k, 0) + abs(v), 1)
        elif ma and ma[0] is None and d.get("effect"):
            self.res.unattributed_effects += 1

    # --- physics ---------------------------------------------------------------
    def _samples(self, ms: float):
        """Run the cell and the firmware for `ms` of simulated time (the gateway's timer with them)."""
        end = self.cell.t_ms + ms
        while self.cell.t_ms < end:
            self.now = int(self.cell.t_ms)
            self.drv.raw = self.cell.next_raw()
            self.loop.step(self.now)
            if self.queue and self.queue[0][0] <= self.now:
                self._run_queued(self.now)
            self._timer(self.wall0 + self.now)

    def _idle(self, ms: int):
        """Walking the aisle: no samples; the gateway's timer runs, queued answers and verdicts go out."""
        target = self.now + ms
        while True:
            nxt = min(self.queue[0][0], target) if self.queue else target
            if not self._timer(self.wall0 + nxt, stop_on_publish=True):
                if not (self.queue and self.queue[0][0] <= target):
                    break
                self.now = max(self.now, self.queue[0][0])
                self.cell.t_ms = max(self.cell.t_ms, float(self.now))
                self._run_queued(self.now)
            self.cell.t_ms = max(self.cell.t_ms, float(self.now))
        self.now = target
        self.cell.t_ms = float(target)

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
            self.receipt = None
            self._send(f"carts/{self.cart}/checkout", _j({"v": 1, "req_id": f"{self.cart}-q{attempt}"}))
            receipt = self.receipt
            if receipt is not None and receipt["ok"]:
                break
            self.res.refusals += 1
            self._idle(2000)
        self.res.receipt = receipt
        self.res.unsettled_without_weight = len(set(self.by_useq) - self.closed_useqs)
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
            grams = dict(truth)       # produce in grams, for the decision attribution
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
            useqs = [u for u, x in self.by_useq.items() if x is a]
            missed = missed_cause(len(useqs), sum(u in self.closed_useqs for u in useqs),
                                  sum(1 for x, _ in self.move_action.values() if x is a))
            self.res.decision_causes_wrong.append(
                culprit(grams, self.action_charges.get(id(a), []), lambda k: cat[k].sold_by_weight, missed))


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


def _action_kind(a: Action | None) -> str:
    """_kind, and whether a personal item was part of the action."""
    personal = a is not None and any(sku is None for sku, _, _ in a.adds + a.removes)
    return _kind(a, 0.0) + ("+personal" if personal else "")


def _reason(r: str) -> str:
    """A review reason (or a decision's cause) without its numbers and SKUs (for counting)."""
    r = r.split(" (z=")[0]
    r = re.sub(r"\(\d[\d.]* < [\d.]+\)", "(< threshold)", r)
    r = re.sub(r"\S+ and \S+ are look-alikes", "A and B are look-alikes", r)
    r = re.sub(r"(shopper's choice|tap on|weight says) \S+", r"\1 X", r)
    r = re.sub(r"shopper's choice .* (does not fit|is unlikely)", r"shopper's choice \1", r)
    r = re.sub(r"(unknown sku|scanned barcode) \S+", r"\1 X", r)
    return r


def _j(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --- a run in gateway-sized chunks, on several cores ----------------------------

GATEWAY_BASKETS = 100   # baskets per fresh gateway: chunk k is baskets [100 k, 100 k + 100)


@dataclass
class ChunkResult:
    """One chunk's baskets and what it measured and rendered (merged in chunk order)."""
    first: int
    results: list
    gateway_s: float = 0.0
    detector_s: float = 0.0
    pool_new: dict = field(default_factory=dict)     # scene pool entries this chunk rendered
    pool_render_s: float = 0.0
    pool_draw_s: float = 0.0                          # of which drawing the scenes
    stills_new: dict = field(default_factory=dict)
    stills_stats: Counter = field(default_factory=Counter)
    stills_rendered: int = 0
    stills_render_s: float = 0.0
    stills_read_ms: list = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)   # messages the gateway refused, by reason
    cpu_s: float = 0.0                                    # CPU time of the process that ran it


def run_chunk(scenario: dict, seed: int, first: int, n: int, oracles=(), catalogue: Catalogue | None = None,
              pool: ScenePool | None = None, still_pool=None, sink=None, frames: bool = False,
              progress=None) -> ChunkResult:
    """Baskets first .. first + n - 1 on one fresh gateway. A basket's shopper, sensor and camera
    draws depend only on (seed, its index), so a run's figures do not depend on how its chunks
    are spread over processes."""
    cpu0 = time.process_time()
    pool_before = set(pool.cache) if pool is not None else None
    st = Store(scenario, seed, catalogue=catalogue, pool=pool, oracles=oracles, sink=sink, frames=frames,
               still_pool=still_pool)
    pool_before = set(st.pool.cache) if pool_before is None else pool_before
    sp = st.stills
    s0 = (Counter(sp.stats), sp.rendered, sp.render_s, len(sp.read_ms), set(sp.cache)) if sp else None
    r0, d0 = st.pool.render_s, st.pool.draw_s
    res = st.run(n, progress=progress, first=first)
    out = ChunkResult(first, res, gateway_s=st.gateway_s, detector_s=st.detector.s,
                      pool_new={k: v for k, v in st.pool.cache.items() if k not in pool_before},
                      pool_render_s=st.pool.render_s - r0, pool_draw_s=st.pool.draw_s - d0, refused=Counter(st.refused.refused_by_reason))
    if sp is not None:
        out.stills_stats = Counter(sp.stats) - s0[0]
        out.stills_rendered, out.stills_render_s = sp.rendered - s0[1], sp.render_s - s0[2]
        out.stills_read_ms = sp.read_ms[s0[3]:]
        out.stills_new = {k: v for k, v in sp.cache.items() if k not in s0[4]}
    out.cpu_s = time.process_time() - cpu0
    return out


_WORK: dict = {}   # what forked workers inherit: scenario, catalogue, pools


def _chunk_job(job: tuple) -> ChunkResult:
    first, n = job
    w = _WORK
    return run_chunk(w["scenario"], w["seed"], first, n, w["oracles"], w["catalogue"], w["pool"], w["stills"])


@dataclass
class RunTotals:
    """A whole run's store-side figures (summed over its chunks)."""
    gateway_s: float = 0.0
    detector_s: float = 0.0
    pool_rendered: int = 0
    pool_render_s: float = 0.0
    workers: int = 1
    chunks: int = 0
    refused: Counter = field(default_factory=Counter)
    cpu_s: float = 0.0         # summed over the workers (wall_s ~ cpu_s / workers on idle cores)
    stills: "stills.StillPool | None" = None


def run_baskets(scenario: dict, seed: int, n: int, oracles=(), workers: int | None = None,
                catalogue: Catalogue | None = None, progress=None, chunk: int = GATEWAY_BASKETS,
                pool: ScenePool | None = None) -> tuple[list[BasketResult], RunTotals]:
    """n baskets in chunks of `chunk` (one fresh gateway each) on `workers` processes (default:
    one per core), merged in basket order; the pools' new renders are saved once, here."""
    bad = sorted(set(oracles) - set(ORACLES))
    if bad:
        raise ValueError(f"unknown oracle {bad[0]!r} (choose from {', '.join(ORACLES)})")
    cat = catalogue or Catalogue.load()
    pool = pool or scene_pool(cat, scenario, seed)
    sp = stills.StillPool(cat, scenario["camera"], seed=0) if scenario["camera"]["still"] else None
    jobs = [(i, min(chunk, n - i)) for i in range(0, n, chunk)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    tot = RunTotals(workers=workers, chunks=len(jobs), stills=sp)
    results: list[BasketResult] = []

    def merge(c: ChunkResult) -> None:
        results.extend(c.results)
        tot.gateway_s += c.gateway_s
        tot.detector_s += c.detector_s
        tot.pool_rendered += len(c.pool_new)
        tot.pool_render_s += c.pool_render_s
        tot.refused.update(c.refused)
        tot.cpu_s += c.cpu_s
        if c.pool_new:   # a worker's renders: saved with the run's own
            pool.add(c.pool_new)
        if sp is not None and c.stills_new:
            sp.cache.update(c.stills_new)
            sp._dirty = True
        if progress:
            progress(len(results), n)

    if workers == 1:
        for first, k in jobs:
            merge(run_chunk(scenario, seed, first, k, oracles, cat, pool, sp))
    else:
        import multiprocessing as mp
        _WORK.update(scenario=scenario, seed=seed, oracles=tuple(oracles), catalogue=cat, pool=pool, stills=sp)
        try:
            with mp.get_context("fork").Pool(workers) as procs:
                for c in procs.imap(_chunk_job, jobs):    # in chunk order, whoever ran it
                    merge(c)
                    # the workers' pools counted their renders: the run's pool reports them
                    pool.rendered += len(c.pool_new)
                    pool.render_s += c.pool_render_s
                    pool.draw_s += c.pool_draw_s
                    if sp is not None:        # a worker's still counts (one process counts them in place)
                        for k, v in c.stills_stats.items():
                            sp.stats[k] = sp.stats.get(k, 0) + v
                        sp.rendered += c.stills_rendered
                        sp.render_s += c.stills_render_s
                        sp.read_ms += c.stills_read_ms
        finally:
            _WORK.clear()
    pool.save()
    if sp is not None:
        sp.save()
    return results, tot
