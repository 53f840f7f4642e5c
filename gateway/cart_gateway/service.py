"""The gateway's message handlers: one function for the live service and replay.

`Gateway.handle(topic, payload, t_ms)` decodes one MQTT message, updates the
durable state (SQLite, in the caller's transaction) and returns the
publishes it causes. `tick(t_ms)` lets time pass (the reconciler's vision
wait, frame expiry, retention). `apply_vision(...)` applies a burst's
detections. The MQTT adapter (mqtt_client.py) and replay (replay.py) call
exactly these; neither holds any logic of its own.

Time: each cart's reconciler runs on the gateway's receive clock (Unix ms).
A board's `mono_ms` is mapped onto it with a per-(board, epoch) offset, the
largest `mono_ms - t_ms` seen (the least-delayed message), so the scale's
and the camera's events share one timeline as docs/reconciliation.md asks.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol as P
from .catalogue import Catalogue
from .config import GatewayConfig
from .fleet import FleetOut, out_topic
from .frames import Assemblies, FrameFiles, FrameTooLarge, frame_id
from .logs import event
from .metrics import Metrics
from .reconcile.produce import produce_book_for
from .rollout import catalogue_path
from .reconcile import (CartReconciler, CatalogueIndex, ReconcileError, Unsettled, Vision, WeightBook,
                        answer_of, verdict_of)
from .reconcile.provisional import weight_change
from .store import Store
from .vision import check_still, is_still_result

VERSION = "0.1.0"
FRAME_SWEEP_MS = 1000    # how often the timer looks for frames past retention (retention_s is minutes)
INFO, WARN = logging.INFO, logging.WARNING


class BatchFailed(RuntimeError):
    """A message in a batch failed beyond a decoding error: redo the batch one message at a time."""


@dataclass
class Publish:
    topic: str
    payload: bytes | None      # None until serialised (a batch serialises only the last retained state)
    qos: int = 1
    retain: bool = False
    outbox_id: int | None = None
    obj: dict | None = None
    build: Callable[[], dict] | None = None   # makes obj when first serialised (a batch: only the last one)

    def encoded(self) -> bytes:
        if self.payload is None:
            if self.obj is None and self.build is not None:
                made = self.build()
                if isinstance(made, bytes):     # a builder that serialises itself (the basket)
                    self.payload = made
                    return made
                self.obj = made
            self.payload = dumps(self.obj)
        return self.payload


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)   # json.dumps makes one per call


def dumps(obj) -> bytes:
    return _ENCODER.encode(obj).encode()


@dataclass
class CartRt:
    cart: str
    session: int
    version_base: int
    engine: CartReconciler
    clock: dict = field(default_factory=dict)   # "<board>/<epoch>" -> offset ms
    line_json: dict = field(default_factory=dict)   # line id -> (its payload object, its JSON): basket_json
    lines_json: tuple = (None, b"")     # (the engine's basket lines list, their joined JSON)

    def basket_json(self) -> bytes:
        """The §10 basket payload as dumps() would write it, each unchanged line's JSON reused:
        a basket of 60 lines was ~0.15 ms of JSON per cart per batch, most of it lines that did
        not change (the engine hands out the same payload object while a line is unchanged)."""
        head, lines, pending = self.engine.basket_pieces()
        head["version"] = self.version()
        cache = self.line_json

        def frags(payloads):
            out = []
            for ln in payloads:
                hit = cache.get(ln["line_id"])
                if hit is None or hit[0] is not ln:
                    hit = cache[ln["line_id"]] = (ln, dumps(ln))
                out.append(hit[1])
            return out
        if self.lines_json[0] is not lines:      # a line changed since the last basket
            self.lines_json = (lines, b",".join(frags(lines)))
            if len(cache) > 2 * len(lines) + 16:     # lines gone: forget them
                keep = {ln["line_id"] for ln in lines}
                self.line_json = cache = {k: v for k, v in cache.items() if k in keep}
        body = [self.lines_json[1]] if lines else []
        body += frags(pending)
        # keys are sorted, "cart" first: its value is a JSON string, in which `"lines":[]` cannot
        # appear unescaped, so the first match is the lines key
        return dumps(head).replace(b'"lines":[]', b'"lines":[' + b",".join(body) + b"]", 1)

    def time_of(self, board: str, epoch: int, mono_ms: int, t_ms: int) -> int:
        key = f"{board}/{epoch}"
        off = max(self.clock.get(key, mono_ms - t_ms), mono_ms - t_ms)
        self.clock[key] = off
        return max(0, mono_ms - off)

    def version(self) -> int:
        return self.version_base + self.engine.s["version"]


@dataclass
class CatalogueSwap:
    """A catalogue rollout's new catalogue with its index and weight book (priors), built off the core thread."""
    catalogue: Catalogue
    index: CatalogueIndex
    book: WeightBook


class Gateway:
    def __init__(self, cfg: GatewayConfig, store: Store | None = None, metrics: Metrics | None = None,
                 catalogue: Catalogue | None = None, submit_burst=None):
        self.cfg = cfg
        self.gw = cfg.gateway_id
        state = Path(cfg.state_dir)
        self.store = store or Store(state / "gateway.sqlite3", cfg.sqlite_synchronous)
        self.metrics = metrics or Metrics()
        self.catalogue = catalogue or Catalogue.load(catalogue_path(cfg))   # rolled out, else configured
        self.index = CatalogueIndex(self.catalogue)
        rc = cfg.reconcile
        self.book = WeightBook.for_catalogue(self.catalogue, rc.learn_prior_strength, rc.min_sd_g)
        saved = self.store.load_book()
        if saved:
            self.book.load_dict(saved)
        self._book_seen = self.book.version
        self.files = FrameFiles(state / "frames")
        self.asm = Assemblies(cfg.frames.max_in_progress, int(cfg.frames.assembly_timeout_s * 1000),
                              cfg.frames.max_per_cart, cfg.frames.still_max_bytes)
        # submit_burst(burst_id, jpegs) -> bool; None = no detector (bursts carry barcodes only if any)
        self.submit_burst = submit_burst
        self.carts: dict[str, CartRt] = {}
        for cart, session, vbase, st, clock in self.store.load_carts():
            eng = CartReconciler.from_dict(st, self.catalogue, rc, self.book, index=self.index)
            self.carts[cart] = CartRt(cart, session, vbase, eng, clock)
        # carts that may wait on time (a superset): every engine step adds its cart, a tick that
        # finds it waiting on nothing drops it, so a tick costs the waiting carts, not all of them
        self._timed: set[str] = set(self.carts)
        self._next_frame_sweep_ms = 0
        # bursts queued for inference when we stopped: the queue is gone, run them again
        for b in self.store.bursts("queued"):
            self.store.set_burst_state(b["burst_id"], "waiting")
        self._out: list[Publish] = []
        self._children: dict = {}               # (metric, label value) -> child (_label)
        self._dirty: set[str] = set()
        self._counted: list[str] = []           # event types stored by the current message / batch
        self._insts: dict[tuple[str, str], str] = {}   # (cart, board) -> instance written to `boards`
        self.keep_decisions = False             # replay: keep every decision (all sessions) and its time
        self.decision_times: list[dict] = []
        self.decision_log: list[dict] = []
        self._t0 = 0.0
        self._batch = False
        self._next_prune_ms = 0
        self.fleet = FleetOut(self.store.db, self.gw, cfg.fleet.timezone, cfg.fleet.figures_interval_s,
                              cfg.fleet.resend_s)
        self._repair_outputs()

    # ================================================================ entry points
    def handle_batch(self, items: list[tuple]) -> list[Publish]:
        """The live adapter's fast path: the same handlers for many messages in one transaction.

        Items: ("msg", topic, payload, t_ms) | ("vision", burst_id, frames, codes, t_ms) | ("tick", t_ms).
        Cart states are written and retained topics coalesced once per batch (group commit).
        A message rejected by its decoder is dropped as in handle(); any other failure raises
        BatchFailed: the caller rolls the transaction back, calls reload(), then handles the
        items one by one with handle() / apply_vision() / tick(), which isolate the bad one.
        """
        self._batch = True
        outs: list[Publish] = []
        try:
            for it in items:
                if it[0] == "msg":
                    outs += self.handle(it[1], it[2], it[3])
                elif it[0] == "vision":
                    outs += self.apply_vision(it[1], it[2], it[3], it[4])
                else:
                    outs += self.tick(it[1])
        except BaseException:
            self._counted = []        # rolled back by the caller: not stored
            raise
        finally:
            self._batch = False
        self._persist()
        self._count_events()
        last = {p.topic: i for i, p in enumerate(outs) if p.retain}
        outs = [p for i, p in enumerate(outs) if not p.retain or last[p.topic] == i]
        for p in outs:
            p.outbox_id = self.store.outbox_add(p.topic, p.encoded(), p.qos, p.retain)
        return outs

    def reload(self) -> None:
        """Forget in-memory state and load it again from the database (after a rolled-back batch)."""
        self._out, self._dirty, self._counted, self._insts = [], set(), [], {}
        self.carts = {}
        for cart, session, vbase, st, clock in self.store.load_carts():
            eng = CartReconciler.from_dict(st, self.catalogue, self.cfg.reconcile, self.book, index=self.index)
            self.carts[cart] = CartRt(cart, session, vbase, eng, clock)
        self._timed = set(self.carts)
        saved = self.store.load_book()
        self.book.load_dict(saved or {"v": 1, "stats": {}})
        self._book_seen = self.book.version

    def prepare_catalogue(self, catalogue: Catalogue) -> "CatalogueSwap":
        """Rollout, off the core thread: what grows with the catalogue is built here, not in the swap."""
        rc = self.cfg.reconcile
        index = CatalogueIndex(catalogue)
        produce_book_for(index, rc)     # cached per index
        return CatalogueSwap(catalogue, index, WeightBook.for_catalogue(catalogue, rc.learn_prior_strength, rc.min_sd_g))

    def swap_catalogue(self, new: "CatalogueSwap") -> str | None:
        """Rollout's hot reload, between batches (state committed): every cart resumes on the
        new catalogue. None when swapped; else why it must wait (an open basket holds a SKU
        the new one drops: its receipt would name an unknown SKU), and nothing changed."""
        catalogue, index, book, rc = new.catalogue, new.index, new.book, self.cfg.reconcile
        for cart, rt in self.carts.items():
            gone = sorted({ln["sku"] for ln in rt.engine.s["lines"] if ln["sku"] and ln["sku"] not in catalogue})
            if gone:
                return f"the open basket of cart {cart} holds {gone[:3]}, which the new catalogue drops"
        book.load_dict(self.book.to_dict())          # what it learned goes on (SKUs by name)
        carts = {cart: CartRt(cart, rt.session, rt.version_base,
                              CartReconciler.from_dict(rt.engine.s, catalogue, rc, book, index=index), rt.clock)
                 for cart, rt in self.carts.items()}
        self.catalogue, self.index, self.book, self.carts = catalogue, index, book, carts
        self._book_seen = self.book.version
        return None

    def handle(self, topic: str, payload: bytes, t_ms: int) -> list[Publish]:
        """One MQTT message. Runs inside the caller's transaction; returns publishes (already in the outbox)."""
        self._t0 = time.perf_counter()
        kind = "unknown"
        # A batch needs no savepoint per message: decoders raise before any write, and any
        # other failure aborts the whole batch (BatchFailed), which is then redone one
        # message per savepoint. SAVEPOINT + RELEASE cost ~7 % of a batch's time.
        guard = contextlib.nullcontext() if self._batch else self.store.savepoint()
        try:
            with guard:
                kind = self._dispatch(topic, payload, t_ms)
                self._persist()
        except P.ProtocolError as e:
            # decoders and the frame assembler run before any state changes
            self._reject("malformed", topic, str(e))
            self._out = []
            if not self._batch:
                self._reset()
        except ReconcileError as e:
            if self._batch:
                raise BatchFailed(str(e)) from e
            self._reject("rejected_by_engine", topic, str(e))
            self._reset()
        except Exception as e:   # a bug must not turn one message into a crash loop (it would be redelivered)
            if self._batch:
                raise BatchFailed(str(e)) from e
            logging.getLogger("cart_gateway").exception("handler failed")
            self._reject("internal_error", topic, f"{type(e).__name__}: {e}")
            self._reset()
        else:
            if not self._batch:
                self._count_events()
        self._label(self.metrics.messages, kind).inc()
        self._label(self.metrics.handle_latency, kind).observe(time.perf_counter() - self._t0)
        return self._flush_out()

    def tick(self, t_ms: int) -> list[Publish]:
        """Time passes: decide movements whose vision wait expired, expire frames, enforce retention."""
        self._t0 = time.perf_counter()
        with self.store.savepoint():
            for cart, epoch, frame in self.asm.expire(t_ms):
                self.metrics.frames.labels("incomplete").inc()
                self.metrics.frames_dropped.labels(cart, "incomplete").inc()
                event(WARN, "frame_incomplete", "frame dropped: incomplete after the §7 timeout",
                      cart=cart, epoch=epoch, frame=frame)
            self._burst_timeouts(t_ms)
            for cart, rt in self.carts.items():    # in cart order, as every other pass
                if cart not in self._timed:
                    continue
                if not self._timer_waits(rt):
                    self._timed.discard(cart)
                elif t_ms > rt.engine.s["now_ms"]:
                    self._advance(rt, t_ms, t_ms)
            self._retention(t_ms)
            again = self.fleet.resends(t_ms)      # lost on the way to the ledger: again
            for rec in again:
                self._emit(out_topic(self.gw, "receipt"), rec)
            if again:
                event(INFO, "fleet_resend", f"{len(again)} receipt records sent again: the ledger has not "
                      "acknowledged them", records=len(again))
            if self.fleet.due(t_ms):   # docs/fleet.md: bridged out to head office
                self._emit(out_topic(self.gw, "figures"), self.fleet.figures(t_ms))
                self._emit(out_topic(self.gw, "health"), self.fleet.health(
                    t_ms, VERSION, len(self.carts), len(self.store.open_reviews())))
            self._persist()
        self.metrics.frames_in_progress.set(len(self.asm))
        return self._flush_out()

    def timer_pending(self) -> bool:
        """Whether a tick now could change anything but retention: a cart waiting on time (an
        open window, a vision wait), a frame being assembled or a burst waiting for its frames.
        Replay and the fast simulator skip the ticks in between when it is False (same result)."""
        return bool(len(self.asm) or self.store.bursts()
                    or any(self._timer_waits(self.carts[c]) for c in self._timed if c in self.carts))

    @staticmethod
    def _timer_waits(rt: CartRt) -> bool:
        s = rt.engine.s
        return bool(s["unsettled"] or s["visions"] or any(m["state"] == "waiting" for m in s["moves"].values()))

    def apply_vision(self, burst_id: str, frames: list[list], barcodes: list[str], t_ms: int) -> list[Publish]:
        """A burst's detections are ready: feed them to the cart's reconciler."""
        self._t0 = time.perf_counter()
        try:
            with self.store.savepoint():
                b = next((x for x in self.store.bursts() if x["burst_id"] == burst_id), None)
                if b is None:
                    return []
                self.store.delete_burst(burst_id)
                rt = self._cart(b["cart"])
                ids = [frame_id(b["cart"], b["epoch"], n) for n in b["frames"]]
                present = [i for i in ids if self.store.frame_path(i)]
                v = Vision(mono_ms=b["engine_ms"], frames=frames, barcodes=barcodes, ref=b["ref"],
                           frame_ids=present, still=is_still_result(frames))
                self._step(rt, v, t_ms)
                self._persist()
        except ReconcileError as e:
            if self._batch:
                raise BatchFailed(str(e)) from e
            self._reject("rejected_by_engine", f"burst {burst_id}", str(e))
            self._reset()
        return self._flush_out()

    def _repair_outputs(self) -> None:
        """At start: a cart whose engine holds a prompt or review the screen or the review
        queue never got (an effect an older version dropped, issue 11.1) gets them now, so its
        checkout is not refused for ever. Costs one pass over the carts at start only."""
        retained = dict(self.store.retained())
        stored = {r["review_id"] for r in self.store.open_reviews()}
        queued = False
        for cart, rt in self.carts.items():
            state = {"v": 1, "prompts": rt.engine.open_prompts()}
            topic = f"carts/{cart}/screen/state"
            if state["prompts"] and retained.get(topic) != dumps(state):
                for p in state["prompts"]:
                    self._emit(f"carts/{cart}/screen/prompt", p)
                self._emit(topic, state, retain=True)
            for r in rt.engine.open_reviews():
                if r["review_id"] not in stored:
                    self.store.add_review(r, r["created_ms"])
                    self._emit(f"gateway/{self.gw}/review/new", r)
                    queued = True
        if queued:
            self._emit_queue()
        if self._out:
            self.store.begin()
            self._flush_out()
            self.store.commit()

    def republish(self) -> list[Publish]:
        """On every (re)connect: retained state (the broker may have lost it) and undelivered publishes."""
        out = [Publish(t, p, 1, True) for t, p in self.store.retained()]
        out += [Publish(t, p, q, r, i) for i, t, p, q, r in self.store.outbox() if not r]
        return out

    # ================================================================ dispatch
    def _dispatch(self, topic: str, payload: bytes, t_ms: int) -> str:
        if topic == self.fleet.ack_topic:       # the ledger stored these receipts (docs/fleet.md)
            self.fleet.on_ack(payload, t_ms)
            return "fleet_ack"
        tp = P.parse_topic(topic)
        if tp.cart is not None and not self.cfg.carts.accepts(tp.cart):
            self._reject("unknown_cart", topic, f"cart {tp.cart!r} is not in carts.known / carts.pattern")
            return "unknown_cart"
        if tp.kind == "evt":
            self._on_event(tp, payload, t_ms)
        elif tp.kind == "frame":
            self._on_chunk(tp, payload, t_ms)
        elif tp.kind == "screen/answer":
            self._on_answer(tp, payload, t_ms)
        elif tp.kind == "checkout":
            self._on_checkout(tp, payload, t_ms)
        elif tp.kind == "review/verdict":
            if tp.gw != self.gw:
                self._reject("other_gateway", topic, f"verdict for gateway {tp.gw!r}")
            else:
                self._on_verdict(payload, t_ms)
        elif tp.kind == "status" and tp.cart:
            st = P.decode_status(tp, payload)
            if st.state == "online":     # a birth names the instance now in the slot (a late will may not)
                self._note_board(tp.cart, tp.board, st.inst or "")
                self.store.stream(tp.cart, tp.board, st.inst or "", st.epoch)   # its frames come next
            event(INFO, "board_status", f"{tp.cart}/{tp.board} is {st.state}", cart=tp.cart, board=tp.board,
                  state=st.state, mode=st.mode, epoch=st.epoch, reason=st.reason or "")
        elif tp.kind == "tele":
            P.decode_telemetry(tp, payload)
        else:
            return "ignored"   # our own outputs, commands, results: not ours to handle
        return tp.kind

    # ---------------------------------------------------------------- events §5, §6
    def _on_event(self, tp: P.Topic, payload: bytes, t_ms: int) -> None:
        ev = P.decode_event(tp, payload)
        eid = ev.event_id
        inst = ev.inst or ""
        if not self.store.add_event(eid, ev.cart, ev.board, ev.epoch, ev.seq, ev.type, t_ms, payload, inst):
            self.metrics.duplicates.inc()
            event(INFO, "duplicate", "event already stored: dropped", id=eid)
            return
        self._note_board(ev.cart, ev.board, inst)
        status, rng = self.store.note_seq(ev.cart, ev.board, ev.epoch, ev.seq, t_ms, inst)
        if status == "gap":
            self.metrics.gaps.inc()
            self.metrics.gap_events.inc(rng[1] - rng[0] + 1)
            event(WARN, "gap", f"events {rng[0]}..{rng[1]} missing", cart=ev.cart, board=ev.board,
                  inst=inst, epoch=ev.epoch, lo=rng[0], hi=rng[1])
            trimmed = self.store.bound_gaps(ev.cart, ev.board, self.cfg.retention.gaps_per_board)
            if trimmed:
                self.metrics.gaps_trimmed.inc(trimmed)
                event(WARN, "gaps_trimmed", f"over {self.cfg.retention.gaps_per_board} open gaps: the oldest "
                      "merged with the next", cart=ev.cart, board=ev.board, n=trimmed)
        elif status == "late":
            self.metrics.late.inc()
            event(INFO, "late_event", "event below the highest seq (fills a gap or out of order)", id=eid)
        # the reconciler sees one epoch number per stream (protocol §5, store.stream)
        epoch = self.store.stream(ev.cart, ev.board, inst, ev.epoch)
        rt = self._cart(ev.cart)
        now = rt.time_of(ev.board, epoch, ev.mono_ms, t_ms)
        self._dirty.add(ev.cart)
        self._counted.append(ev.type)
        if ev.type == "weight":
            self._step(rt, weight_change(epoch, ev, now), t_ms)
        elif ev.type == "unsettled":
            self._step(rt, Unsettled(epoch, ev.seq, now, ev.total_g), t_ms)
        elif ev.type == "capture":
            self.store.add_burst(eid, ev.cart, epoch, list(ev.frames), self._scale_ref(ev.cart, ev.ref), now, t_ms)
            # The camera publishes a burst's frames before its capture event (§6.3, firmware
            # apps/camera.py), in order on one connection: a frame still missing now was lost
            # (e.g. chunks in memory when we restarted). Run with what arrived; wait only if
            # nothing did (burst_timeout_s), in case a camera sends the event first.
            have = any(self.store.frame_path(frame_id(ev.cart, epoch, n)) for n in ev.frames)
            self._maybe_run_burst(eid, t_ms, timed_out=have)
        else:
            event(WARN, "board_error", f"{ev.cart}/{ev.board}: {ev.code}", id=eid, code=ev.code, detail=ev.detail)

    def _note_board(self, cart: str, board: str, inst: str) -> None:
        """Remember the instance in this board slot: frame chunks carry none (§7)."""
        if self._insts.get((cart, board)) != inst:
            self.store.note_board(cart, board, inst)
            self._insts[(cart, board)] = inst

    def _scale_ref(self, cart: str, ref: str | None) -> str | None:
        """A capture's ref names the scale event that triggered it, `<cart>/scale/[<inst>/]<epoch>/<seq>`
        (§6.3); the reconciler matches it as `<cart>/scale/<stream>/<seq>`. A ref without an
        instance (older camera firmware) means the scale instance the gateway last heard."""
        parts = (ref or "").split("/")
        if len(parts) == 5:
            inst, rest = parts[2], parts[3:]
        elif len(parts) == 4:
            inst, rest = self.store.board_inst(cart, "scale"), parts[2:]
        else:
            return ref
        if parts[0] != cart or parts[1] != "scale" or not P.INST_RE.match(inst or "0" * 16) \
                or not all(x.isascii() and x.isdigit() and 1 <= int(x) < 2**32 for x in rest):
            return ref
        stream = self.store.stream(cart, "scale", inst, int(rest[0]), create=False)
        return ref if stream is None else f"{cart}/scale/{stream}/{rest[1]}"

    # ---------------------------------------------------------------- frames §7
    def _on_chunk(self, tp: P.Topic, payload: bytes, t_ms: int) -> None:
        if len(payload) > P.CHUNK_HEADER.size + P.MAX_CHUNK_PAYLOAD:
            self.metrics.frames.labels("oversized").inc()
        chunk = P.decode_frame_chunk(payload)
        # frames are named by the camera's stream (the instance last heard in this slot, whose
        # birth opened the stream), so a re-flashed camera's epoch 1 frame 1 is not the old one's
        epoch = self.store.stream(tp.cart, "cam", self.store.board_inst(tp.cart, "cam"), chunk.epoch,
                                  create=False) or chunk.epoch
        fid = frame_id(tp.cart, epoch, chunk.frame)
        if self.store.frame_path(fid):
            return   # redelivered chunk of a frame we already stored
        try:
            state, frame, evicted = self.asm.add(tp.cart, chunk, t_ms)
            if frame is not None and chunk.still:
                check_still(frame, chunk.width, chunk.height)   # §7.1: a JPEG of its declared resolution
        except FrameTooLarge as e:
            self.metrics.frames.labels(f"oversized_{e.kind}").inc()
            self.metrics.frames_dropped.labels(tp.cart, "oversized").inc()
            raise
        except P.ProtocolError:
            if chunk.still:
                self.metrics.frames.labels("still_refused").inc()
            self.metrics.frames_dropped.labels(tp.cart, "malformed").inc()
            raise
        for cart, ep, n in evicted:
            self.metrics.frames.labels("evicted").inc()
            self.metrics.frames_dropped.labels(cart, "evicted").inc()
            event(WARN, "frame_evicted", "frame dropped unfinished: a newer frame needed its slot "
                  "(frames.max_per_cart / max_in_progress)", cart=cart, epoch=ep, frame=n)
        if frame is None:
            return
        rt = self._cart(tp.cart)
        path = self.files.write(tp.cart, epoch, chunk.frame, frame)
        self.store.add_frame(fid, tp.cart, rt.session, path, t_ms)
        self.metrics.frames.labels("complete").inc()
        for b in self.store.bursts("waiting"):
            if b["cart"] == tp.cart and b["epoch"] == epoch and chunk.frame in b["frames"]:
                self._maybe_run_burst(b["burst_id"], t_ms)

    def _maybe_run_burst(self, burst_id: str, t_ms: int, timed_out: bool = False) -> None:
        b = next((x for x in self.store.bursts("waiting") if x["burst_id"] == burst_id), None)
        if b is None:
            return
        paths = [self.store.frame_path(frame_id(b["cart"], b["epoch"], n)) for n in b["frames"]]
        have = [p for p in paths if p]
        if len(have) < len(paths) and not timed_out:
            return
        if not have:
            self.store.delete_burst(burst_id)
            event(WARN, "burst_no_frames", "capture burst: no frame arrived in time", burst=burst_id)
            return
        jpegs = [j for j in (self.files.read(p) for p in have) if j is not None]
        if self.submit_burst is None:
            self.store.delete_burst(burst_id)   # no detector configured: the movement is decided by weight
            return
        if self.submit_burst(burst_id, jpegs):
            self.store.set_burst_state(burst_id, "queued")
        else:
            self.store.delete_burst(burst_id)
            self.metrics.detector_dropped.inc()
            event(WARN, "detector_full", "detector queue full: burst not run", burst=burst_id)

    def _burst_timeouts(self, t_ms: int) -> None:
        limit = int(self.cfg.frames.burst_timeout_s * 1000)
        for b in self.store.bursts("waiting"):
            if t_ms - b["t_ms"] > limit:
                self._maybe_run_burst(b["burst_id"], t_ms, timed_out=True)

    def _retention(self, t_ms: int) -> None:
        self._prune_logs(t_ms)
        if t_ms < self._next_frame_sweep_ms:
            return          # frame retention is in seconds: sweeping every tick only cost CPU
        self._next_frame_sweep_ms = t_ms + FRAME_SWEEP_MS
        old = self.store.frames(before_ms=t_ms - int(self.cfg.frames.retention_s * 1000))
        keep = self._review_frames() if old else set()
        for fid, cart, session, path, ft in old:
            if fid not in keep:
                self._delete_frame(fid, path, "retention")

    def _prune_logs(self, t_ms: int) -> None:
        """Event and decision log retention, at most every prune_interval_s (config `retention`)."""
        r = self.cfg.retention
        if t_ms < self._next_prune_ms:
            return
        self._next_prune_ms = t_ms + int(r.prune_interval_s * 1000)
        day = 86_400_000
        ev, de = self.store.prune(t_ms - int(r.events_days * day), t_ms - int(r.decisions_days * day),
                                  r.prune_batch)
        gp = self.store.prune_gaps(t_ms - int(r.events_days * day), r.prune_batch)
        if gp:
            self.metrics.pruned.labels("gaps").inc(gp)
            event(INFO, "pruned", f"retention: {gp} sequence gaps older than the event log deleted", gaps=gp)
            if gp >= r.prune_batch:
                self._next_prune_ms = t_ms
        if ev or de:
            self.metrics.pruned.labels("events").inc(ev)
            self.metrics.pruned.labels("decisions").inc(de)
            event(INFO, "pruned", f"retention: {ev} events, {de} decisions of closed sessions deleted",
                  events=ev, decisions=de)
            if max(ev, de) >= r.prune_batch:
                self._next_prune_ms = t_ms     # more to delete: go on at the next tick

    def _review_frames(self) -> set[str]:
        return {f for r in self.store.open_reviews() for f in r.get("frames", [])}

    def _delete_frame(self, fid: str, path: str, why: str) -> None:
        self.store.delete_frame(fid)
        self.files.delete(path)
        self.metrics.frames.labels(f"deleted_{why}").inc()

    # ---------------------------------------------------------------- answers §11, verdicts §13
    def _on_answer(self, tp: P.Topic, payload: bytes, t_ms: int) -> None:
        a = P.decode_answer(payload)
        rt = self._cart(tp.cart)
        ans = answer_of(a, self._now(rt, t_ms))
        self._step(rt, ans, t_ms)

    def _on_verdict(self, payload: bytes, t_ms: int) -> None:
        v = P.decode_verdict(payload)
        cart = self.store.review_cart(v.review_id)
        if cart is None or cart not in self.carts:
            self._reject("unknown_review", f"gateway/{self.gw}/review/verdict",
                         f"verdict {v.verdict_id!r} for review {v.review_id!r}, which this gateway never opened")
            return
        rt = self.carts[cart]
        fx = self._step(rt, verdict_of(v, self._now(rt, t_ms)), t_ms)
        if v.review_id in fx["reviews_closed"]:
            self.store.close_review(v.review_id, {"verdict_id": v.verdict_id, "sku": v.sku, "qty": v.qty})

    # ---------------------------------------------------------------- checkout §12
    def _on_checkout(self, tp: P.Topic, payload: bytes, t_ms: int) -> None:
        req = P.decode_checkout(payload)
        cart = tp.cart
        topic = f"carts/{cart}/receipt"
        done = self.store.get_receipt(cart, req.req_id)
        if done is not None:   # the same request again: the same receipt
            self._emit(topic, done, retain=True)
            return
        rt = self._cart(cart)
        self._dirty.add(cart)
        # Time first, through _advance: it can decide an item whose vision wait ran out and
        # open a prompt or a review, which must reach the screen / the review queue (issue 11.1)
        self._advance(rt, self._now(rt, t_ms), t_ms)
        res = rt.engine.checkout(req.req_id)
        if not res["ok"]:
            event(INFO, "checkout_refused", f"checkout refused: {res['reason']}", cart=cart, req=req.req_id,
                  reason=res["reason"])
            self._emit(topic, res, retain=True)
            return
        res = dict(res, receipt_id=f"{cart}-{rt.session}-{rt.engine.s['version']}")
        self.store.add_receipt(cart, req.req_id, res, t_ms)
        self._emit(topic, res, retain=True)
        self._emit(out_topic(self.gw, "receipt"), self.fleet.receipt_record(cart, rt.session, res, t_ms))
        event(INFO, "receipt", "receipt issued", cart=cart, req=req.req_id, receipt=res["receipt_id"],
              total_cents=res["total_cents"])
        # a fresh basket for the next shopper; this session's frames are no longer needed
        keep = self._review_frames()
        for fid, fcart, session, path, _ in self.store.frames():
            if fcart == cart and fid not in keep:
                self._delete_frame(fid, path, "checkout")
        old = rt
        eng = CartReconciler(cart, self.catalogue, self.cfg.reconcile, self.book, index=self.index)
        new = CartRt(cart, old.session + 1, old.version() + 1, eng, dict(old.clock))
        eng.s["now_ms"] = old.engine.s["now_ms"]
        # prompt and review ids go on counting: unique per cart across sessions, so a late
        # answer or verdict for the last shopper's prompt / review names nothing open now (issue 11.9)
        for k in ("prompt", "review"):
            eng.s["n"][k] = old.engine.s["n"][k]
        self.carts[cart] = new
        self._publish_basket(new)
        self._emit(f"carts/{cart}/screen/state", {"v": 1, "prompts": []}, retain=True)

    # ================================================================ effects
    # Every engine call goes through _step or _advance, so every effect it returns (decisions,
    # prompts, reviews, basket changes) is stored and published: none may be dropped (issue 11.1).
    def _step(self, rt: CartRt, item, t_ms: int) -> dict:
        self._timed.add(rt.cart)
        fx = rt.engine.step(item)
        self._after(rt, fx, t_ms)
        return fx

    def _advance(self, rt: CartRt, mono_ms: int, t_ms: int) -> dict:
        """Let the cart's event time reach mono_ms. When only the clock moved (and what follows
        from time alone, e.g. a stale unsettled window closing) nothing is written: the cart's
        next real change writes it, after a crash the timer moves it again; writing it meant an
        fsync every tick_ms while any cart was waiting."""
        fx = rt.engine.advance(mono_ms)
        if any(fx.values()):
            self._after(rt, fx, t_ms)
        return fx

    def _after(self, rt: CartRt, fx: dict, t_ms: int) -> None:
        """Turn the reconciler's effects into stored reviews and publishes."""
        self._dirty.add(rt.cart)
        elapsed_ms = (time.perf_counter() - self._t0) * 1000.0
        for d in fx["decisions"]:
            self.store.add_decision(rt.cart, rt.session, d, t_ms)
            self._label(self.metrics.decisions, d["outcome"]).inc()
            event(INFO, "decision", d["reason"], cart=rt.cart, outcome=d["outcome"], id=d["id"],
                  move=d.get("move_id") or "", posterior=round(d.get("posterior", 0.0) or 0.0, 4))
            if self.keep_decisions:
                self.decision_log.append(dict(d, cart=rt.cart, session=rt.session))
                self.decision_times.append({"cart": rt.cart, "session": rt.session, "decision": d["id"],
                                            "outcome": d["outcome"], "processing_ms": round(elapsed_ms, 3)})
        cart = rt.cart
        for p in fx["prompts_opened"]:
            self._emit(f"carts/{cart}/screen/prompt", p)
        if fx["prompts_opened"] or fx["prompts_closed"]:    # built when serialised: a batch's last one only
            self._emit(f"carts/{cart}/screen/state", None, retain=True,
                       build=lambda: {"v": 1, "prompts": rt.engine.open_prompts()})
        for r in fx["reviews_opened"]:
            self.store.add_review(r, t_ms)
            self._emit(f"gateway/{self.gw}/review/new", r)
        for rid in fx["reviews_closed"]:
            self.store.close_review(rid, None)
            keep = self._review_frames()
            req = self.store.get_review(rid)
            for fid in (req or {}).get("frames", []):
                path = self.store.frame_path(fid)
                if path and fid not in keep:
                    self._delete_frame(fid, path, "review")
        if fx["reviews_opened"] or fx["reviews_closed"]:
            self._emit_queue()
        if fx["basket_changed"] or fx["prompts_opened"] or fx["prompts_closed"] or fx["reviews_opened"] \
                or fx["reviews_closed"]:
            self._publish_basket(rt)

    def _emit_queue(self) -> None:
        q = [{"review_id": r["review_id"], "cart": r["cart"], "created_ms": r["created_ms"]}
             for r in self.store.open_reviews()]
        self._emit(f"gateway/{self.gw}/review/queue", {"v": 1, "reviews": q}, retain=True)
        self.metrics.open_reviews.set(len(q))

    def _publish_basket(self, rt: CartRt) -> None:
        # built when serialised: in a batch only a cart's last basket is, once, from its final state
        self._emit(f"carts/{rt.cart}/basket", None, retain=True, build=rt.basket_json)

    def _emit(self, topic: str, obj: dict | None, retain: bool = False, build=None) -> None:
        if retain:   # only the last state of a retained topic matters
            self._out = [p for p in self._out if not (p.retain and p.topic == topic)]
        self._out.append(Publish(topic, None, 1, retain, obj=obj, build=build))

    def _flush_out(self) -> list[Publish]:
        out, self._out = self._out, []
        if self._batch:
            return out    # handle_batch() coalesces and stores them at the end
        for p in out:
            p.outbox_id = self.store.outbox_add(p.topic, p.encoded(), p.qos, p.retain)
        return out

    def _count_events(self) -> None:
        """events_total counts only events whose write stands (not a rolled-back message or batch)."""
        for typ in self._counted:
            self._label(self.metrics.events, typ).inc()
        self._counted = []

    def _reset(self) -> None:
        """A message failed: its savepoint was rolled back, so drop its effects and reload touched
        carts and the WeightBook (the message may have taught it before failing)."""
        self._out = []
        self._counted = []
        self._insts = {}
        rows = {r[0]: r for r in self.store.load_carts()} if self._dirty else {}
        for cart in self._dirty:
            row = rows.get(cart)
            if row is None:
                self.carts.pop(cart, None)
            else:
                _, session, vbase, st, clock = row
                eng = CartReconciler.from_dict(st, self.catalogue, self.cfg.reconcile, self.book, index=self.index)
                self.carts[cart] = CartRt(cart, session, vbase, eng, clock)
                self._timed.add(cart)
        self._dirty.clear()
        if self.book.version != self._book_seen:   # changed since it was last stored
            saved = self.store.load_book()
            self.book.load_dict(saved or {"v": 1, "stats": {}})
            self._book_seen = self.book.version

    def _persist(self) -> None:
        if self._batch:
            return        # once at the end of handle_batch()
        for cart in sorted(self._dirty):
            rt = self.carts.get(cart)
            if rt is not None:
                self.store.save_cart(cart, rt.session, rt.version_base, rt.engine.s, rt.clock, rt.engine.dirty)
                rt.engine.dirty.stored()
        seen = self.book.version    # bumped by every change: JSON only when it changed
        if seen != self._book_seen:
            self.store.save_book(self.book.to_dict())
            self._book_seen = seen
        # only now: if a write above fails, the savepoint undoes the saved carts and
        # _reset() must still know which carts to reload
        self._dirty.clear()

    def _reject(self, reason: str, what: str, detail: str) -> None:
        self.metrics.bad.labels(reason).inc()
        event(WARN, "bad_input", detail, reason=reason, topic=what)

    # ================================================================ helpers
    def _label(self, metric, value: str):
        """A metric's child for one label value, looked up once (labels() costs ~5 us a call;
        the values are the bounded sets of message kinds, event types and outcomes)."""
        child = self._children.get((metric, value))
        if child is None:
            child = self._children[(metric, value)] = metric.labels(value)
        return child

    def _cart(self, cart: str) -> CartRt:
        rt = self.carts.get(cart)
        if rt is None:
            eng = CartReconciler(cart, self.catalogue, self.cfg.reconcile, self.book, index=self.index)
            rt = self.carts[cart] = CartRt(cart, 1, 0, eng)
            self._dirty.add(cart)
        return rt

    @staticmethod
    def _now(rt: CartRt, t_ms: int) -> int:
        """Gateway-side inputs (answers, verdicts, checkout) happen at receive time."""
        return max(t_ms, rt.engine.s["now_ms"])

    # ================================================================ results (replay, tests)
    def snapshot(self) -> dict:
        baskets = {}
        for cart, rt in sorted(self.carts.items()):
            b = rt.engine.basket()
            b["version"] = rt.version()
            baskets[cart] = b
        return {"baskets": baskets, "receipts": self.store.receipts(),
                "prompts": {c: rt.engine.open_prompts() for c, rt in sorted(self.carts.items())},
                "reviews": self.store.all_reviews(), "gaps": self.store.open_gaps()}
