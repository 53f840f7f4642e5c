"""What the boards send (§5, §6): events stored once by their identity, sequence gaps noted,
each board's clock mapped onto the gateway's, and the event passed to its cart's reconciler;
a capture's reference to its scale event translated to the reconciler's stream numbers."""
from __future__ import annotations

import logging

from .. import protocol as P
from ..frames import frame_id
from ..logs import event
from ..reconcile import Unsettled
from ..reconcile.provisional import weight_change

INFO, WARN = logging.INFO, logging.WARNING


class BoardInputs:
    """Part of `Gateway` (gateway.py), on its attributes: board events."""

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
