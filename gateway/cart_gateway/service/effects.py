"""What an engine call causes: its decisions, prompts, reviews and basket changes stored and
published (none dropped), a message's publishes put in the outbox, the cart states and the
WeightBook persisted, or reloaded after a failed message."""
from __future__ import annotations

import logging
import time

from ..logs import event
from ..reconcile import CartReconciler
from .cart_runtime import CartRt
from .publishes import Publish

INFO, WARN = logging.INFO, logging.WARNING


class Effects:
    """Part of `Gateway` (gateway.py), on its attributes: engine effects, outputs, persistence."""

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
        for c in fx["commands"]:
            self._board_command(rt, c)

    def _board_command(self, rt: CartRt, c: dict) -> None:
        """A command the reconciler asked a board for (§9; today the camera's retake, reconcile/retake.py),
        published through the outbox like every output. Its ref names the movement's `unsettled`
        event as the board sent it (§6.3), so the burst it triggers joins that movement."""
        ref = self._board_ref(rt.cart, "scale", *c["ref"]) if c.get("ref") else None
        args = dict(c["args"], ref=ref) if ref else dict(c["args"])
        body = {"v": 1, "id": f"{c['cmd']}-{rt.session}-{c['move_id']}", "cmd": c["cmd"], "args": args}
        self._emit(f"carts/{rt.cart}/{c['board']}/cmd", body)
        self._label(self.metrics.board_commands, c["cmd"]).inc()
        event(INFO, "board_command", f"{c['cmd']} asked of {rt.cart}/{c['board']}", cart=rt.cart,
              board=c["board"], move=c["move_id"], ref=ref or "")

    def _board_ref(self, cart: str, board: str, stream: int, seq: int) -> str | None:
        """`<cart>/<board>/[<inst>/]<epoch>/<seq>` for an event the reconciler knows by its stream
        number (store.stream), or None if the stream is not known."""
        origin = self.store.stream_origin(cart, board, stream)
        if origin is None:
            return None
        inst, epoch = origin
        return f"{cart}/{board}/{inst}/{epoch}/{seq}" if inst else f"{cart}/{board}/{epoch}/{seq}"

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
            self._book_stored()

    def _persist(self) -> None:
        if self._batch:
            return        # once at the end of handle_batch()
        for cart in sorted(self._dirty):
            rt = self.carts.get(cart)
            if rt is not None:
                self.store.save_cart(cart, rt.session, rt.version_base, rt.engine.s, rt.clock, rt.engine.dirty)
                rt.engine.dirty.stored()
        if self.book.version != self._book_seen:    # bumped by every change: written only when it changed
            self._save_book()
        # only now: if a write above fails, the savepoint undoes the saved carts and
        # _reset() must still know which carts to reload
        self._dirty.clear()

    def _save_book(self) -> None:
        """The SKUs the book learned since its last save (WeightBook.changed, as the weight index
        follows it); all of it after a reload, a catalogue swap, a bounded `changed` list
        starting again, or onto a database that holds the book in one row."""
        b, mark = self.book, self._book_mark
        if mark is not None and mark[0] == b.reset_count and mark[1] <= len(b.changed):
            changed = {b.skus[i] for i in b.changed[mark[1]:]}
            self.store.save_book({"v": 1, "stats": {s: b.stats[s] for s in changed if s in b.stats}}, only=changed)
        else:
            self.store.save_book(b.to_dict())
        self._book_seen, self._book_mark = b.version, (b.reset_count, len(b.changed))

    def _book_stored(self) -> None:
        """The book is as the database holds it (just loaded): the next save writes what changes
        from here, if the database keeps it per SKU (else all of it, once)."""
        self._book_seen = self.book.version
        self._book_mark = (self.book.reset_count, len(self.book.changed)) if self.store.book_in_rows() else None

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
