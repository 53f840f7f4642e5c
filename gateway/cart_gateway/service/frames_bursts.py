"""Camera frames (§7): chunks reassembled into stored frame files, a capture burst handed to the
detector once its frames are in (or its wait ran out), and frames deleted when no open review
needs them."""
from __future__ import annotations

import logging

from .. import protocol as P
from ..frames import FrameTooLarge, frame_id
from ..logs import event
from ..vision import check_still

INFO, WARN = logging.INFO, logging.WARNING


class FramesAndBursts:
    """Part of `Gateway` (gateway.py), on its attributes: frames and capture bursts."""

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

    def _review_frames(self) -> set[str]:
        return {f for r in self.store.open_reviews() for f in r.get("frames", [])}

    def _delete_frame(self, fid: str, path: str, why: str) -> None:
        self.store.delete_frame(fid)
        self.files.delete(path)
        self.metrics.frames.labels(f"deleted_{why}").inc()
