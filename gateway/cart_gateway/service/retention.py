"""Retention: frames past `frames.retention_s` (unless a review needs them) and, at most every
`retention.prune_interval_s`, events, decisions and sequence gaps of closed sessions."""
from __future__ import annotations

import logging

from ..logs import event

INFO, WARN = logging.INFO, logging.WARNING


FRAME_SWEEP_MS = 1000    # how often the timer looks for frames past retention (retention_s is minutes)


class Retention:
    """Part of `Gateway` (gateway.py), on its attributes: retention."""

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
