"""What people send: the shopper's answers to prompts (§11), the reviewer's verdicts (§13) and
the exit gate's checkout (§12), which issues the receipt and starts the cart's next session."""
from __future__ import annotations

import logging

from .. import protocol as P
from ..fleet import out_topic
from ..logs import event
from ..reconcile import CartReconciler, answer_of, verdict_of
from .cart_runtime import CartRt

INFO, WARN = logging.INFO, logging.WARNING


class ShopperAndStaff:
    """Part of `Gateway` (gateway.py), on its attributes: answers, verdicts, checkout."""

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
        self.store.flush_held()      # the record counts this session's decisions in the table
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
