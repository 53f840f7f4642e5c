"""The gateway side of the fast simulator: protocol messages in, engine out.

`GatewayFeed.handle(topic, payload, t_ms)` takes exactly what a trace line
holds (protocol §14), decodes it with cart_gateway.protocol, maps it onto the
reconciliation engine's inputs and returns the engine's effects. The
in-process bench and a replay of the trace written by `cart-sim trace` thus
go through the same messages. Engine time: the scale board's mono_ms (both
virtual boards boot together, so the camera's mono_ms is on the same
timeline); answers, verdicts and checkouts carry no board clock and are
mapped from the trace's t_ms minus the cart's first status t_ms.
"""
from __future__ import annotations

import hashlib

from cart_gateway import protocol as P
from cart_gateway.detectors.api import Candidate
from cart_gateway.reconcile import CartReconciler, ReconcileConfig, Unsettled, Vision, answer_of, verdict_of
from cart_gateway.reconcile.provisional import weight_change


class GatewayFeed:
    def __init__(self, catalogue, config: ReconcileConfig | None = None, detector=None,
                 detect_cache: dict | None = None, frame_source=None):
        self.cat = catalogue
        self.cfg = config or ReconcileConfig()
        self.book = None      # store-wide learned weights: shared by every cart
        self.index = None
        self.engines: dict[str, CartReconciler] = {}
        self.base: dict[str, int] = {}           # cart -> t_ms of its mono 0
        self.frames: dict[tuple, list] = {}      # (cart, epoch, frame) -> candidates
        self.asm: dict[tuple, P.FrameAssembler] = {}
        self.detector = detector
        self.detect_cache = detect_cache if detect_cache is not None else {}
        self.frame_source = frame_source         # fast mode: (cart, epoch, frame) -> candidates|None
        self.still_source = None                 # fast mode: (cart, epoch, frame) -> codes read|None
        self.receipts: dict[str, dict] = {}
        self.errors: list[str] = []

    def engine(self, cart: str) -> CartReconciler:
        e = self.engines.get(cart)
        if e is None:
            e = self.engines[cart] = CartReconciler(cart, self.cat, self.cfg, self.book, index=self.index)
            self.book, self.index = e.book, e.cat
        return e

    def _mono(self, cart: str, t_ms: int) -> int:
        return max(0, int(t_ms) - self.base.get(cart, int(t_ms)))

    def tick(self, cart: str, t_ms: int) -> dict:
        """The service's timer: event time passes without a message."""
        return self.engine(cart).advance(self._mono(cart, t_ms))

    @property
    def stale_unsettled_dropped(self) -> int:
        # Counted by the engine, which closes such windows (unsettled_expire_ms).
        return sum(e.s.get("stale_unsettled", 0) for e in self.engines.values())

    def handle(self, topic: str, payload: bytes, t_ms: int) -> dict | None:
        tp = P.parse_topic(topic)
        cart = tp.cart
        if tp.kind == "status" and cart:
            st = P.decode_status(tp, payload)
            if cart not in self.base:
                self.base[cart] = int(t_ms) - st.mono_ms
            return None
        if tp.kind == "frame":
            self._chunk(cart, payload)
            return None
        if tp.kind == "evt":
            ev = P.decode_event(tp, payload)
            eng = self.engine(cart)
            if ev.type == "unsettled":
                return eng.step(Unsettled(ev.epoch, ev.seq, ev.mono_ms, ev.total_g))
            if ev.type == "weight":
                return eng.step(weight_change(ev.epoch, ev, ev.mono_ms))
            if ev.type == "capture" and ev.still is not None:   # §7.1: barcodes only
                f = ev.frames[0]
                codes = self.still_source(cart, ev.epoch, f) if self.still_source else None
                return eng.step(Vision(ev.mono_ms, (), codes or (), ev.ref,
                                       [f"{cart}/{ev.epoch}/{f}"] if codes is not None else [], still=True))
            if ev.type == "capture":
                frames, ids = [], []
                for f in ev.frames:
                    c = self._frame(cart, ev.epoch, f)
                    if c is None:
                        continue     # missed or incomplete frame
                    frames.append([Candidate(sku=s, score=sc, cx=x, cy=y) for s, sc, x, y in c])
                    ids.append(f"{cart}/{ev.epoch}/{f}")
                return eng.step(Vision(ev.mono_ms, frames, (), ev.ref, ids))
            self.errors.append(f"{cart}: {ev.type} event")
            return None
        if tp.kind == "screen/answer":
            a = P.decode_answer(payload)
            return self.engine(cart).step(answer_of(a, self._mono(cart, t_ms)))
        if tp.kind == "review/verdict":
            v = P.decode_verdict(payload)
            cart = v.review_id.rsplit("-r", 1)[0]
            return self.engine(cart).step(verdict_of(v, self._mono(cart, t_ms)))
        if tp.kind == "checkout":
            req = P.decode_checkout(payload)
            r = self.engine(cart).checkout(req.req_id, self._mono(cart, t_ms))
            self.receipts[cart] = r
            return {"receipt": r}
        return None

    # --- frames ---------------------------------------------------------------
    def _chunk(self, cart: str, payload: bytes) -> None:
        ch = P.decode_frame_chunk(payload)
        key = (cart, ch.epoch, ch.frame)
        asm = self.asm.get(key)
        if asm is None:
            asm = self.asm[key] = P.FrameAssembler(ch, 0.0)
        jpeg = asm.add(ch)
        if jpeg is not None:
            del self.asm[key]
            self.frames[key] = self.detect(jpeg)

    def detect(self, jpeg: bytes) -> list:
        h = hashlib.sha256(jpeg).hexdigest()
        c = self.detect_cache.get(h)
        if c is None:
            from .world import detect_list
            if self.detector is None:
                from cart_gateway.detectors import create_detector, default_detector_config
                self.detector = create_detector(default_detector_config())
            c = self.detect_cache[h] = detect_list(self.detector, jpeg)
        return c

    def _frame(self, cart, epoch, frame):
        key = (cart, epoch, frame)
        if key in self.frames:
            return self.frames.pop(key)
        if self.frame_source is not None:
            return self.frame_source(cart, epoch, frame)
        return None

