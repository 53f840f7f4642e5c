"""`cart-gateway replay`: the live handlers on a recorded trace (protocol §14), no broker.

Records are handled in file order with their recorded `t_ms`; the timer the
live service runs every `tick_ms` is replayed at the same event times, and
detection runs inline right after the message that completed a burst, so
the same trace always gives the same result. `timing` (processing time per
decision, measured) is the only part that differs between two runs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .config import GatewayConfig
from .protocol import ID_RE, read_trace
from .service import Gateway


def trace_gateway_id(header: dict, records) -> tuple[str | None, str]:
    """The gateway id a trace was recorded against, and where it was found.

    The header's `gateway_id` if it has one; otherwise the one id in the trace's
    `gateway/<gw>/...` topics (a review station's verdicts name the gateway they were
    sent to). (None, why) if the trace names none or several."""
    gw = header.get("gateway_id")
    if isinstance(gw, str) and ID_RE.match(gw):
        return gw, "trace header"
    seen = sorted({r.topic.split("/")[1] for r in records
                   if r.topic.startswith("gateway/") and r.topic.count("/") >= 2})
    if len(seen) == 1 and ID_RE.match(seen[0]):
        return seen[0], "trace topics"
    return None, "several gateway ids in the trace topics" if seen else "no gateway id in the trace"


REASONS = {
    "unknown_cart": "cart not in the config's carts.known / carts.pattern",
    "malformed": "malformed message",
    "rejected_by_engine": "refused by the reconciler",
    "internal_error": "internal error",
    "other_gateway": "verdict for another gateway",
    "frames_full": "too many frames in progress",
}


@dataclass
class ReplaySummary:
    """What a replay accepted and refused, for one summary instead of a line per message."""
    messages: int = 0
    carts: set[str] = field(default_factory=set)
    refused_by_reason: Counter = field(default_factory=Counter)       # reason -> messages
    refused_carts: dict[str, str] = field(default_factory=dict)       # cart -> reason (unknown_cart)
    example: dict[str, str] = field(default_factory=dict)             # reason -> one message's detail

    @property
    def accepted_carts(self) -> set[str]:
        return self.carts - set(self.refused_carts)

    @property
    def nothing_accepted(self) -> bool:
        return not self.accepted_carts

    def lines(self, carts_config) -> list[str]:
        refused = sum(self.refused_by_reason.values())
        out = [f"replay: {self.messages} messages from {len(self.carts)} carts: "
               f"{len(self.accepted_carts)} carts and {self.messages - refused} messages accepted, "
               f"{len(self.refused_carts)} carts and {refused} messages refused"]
        if self.refused_carts:
            names = sorted(self.refused_carts)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(f"  refused carts: {shown}: {REASONS['unknown_cart']} (known = {list(carts_config.known)}, "
                       f"pattern = {carts_config.pattern!r}); add them to [carts] in the config")
        for reason, n in self.refused_by_reason.most_common():
            out.append(f"  refused messages: {n} {REASONS.get(reason, reason)}"
                       + (f", e.g. {self.example[reason]}" if reason != "unknown_cart" else ""))
        return out


class _Rejections(logging.Handler):
    """Collects the service's bad_input records during a replay (instead of printing each)."""

    def __init__(self, summary: ReplaySummary):
        super().__init__(logging.WARNING)
        self.summary = summary

    def emit(self, record):
        if getattr(record, "cg_event", None) != "bad_input":
            return
        fields = getattr(record, "cg_fields", {})
        reason, topic = fields.get("reason", "other"), str(fields.get("topic", ""))
        self.summary.refused_by_reason[reason] += 1
        self.summary.example.setdefault(reason, f"{topic}: {record.getMessage()}")
        parts = topic.split("/")
        if reason == "unknown_cart" and len(parts) > 1:
            self.summary.refused_carts[parts[1]] = reason


@contextlib.contextmanager
def collect_rejections(summary: ReplaySummary):
    """The service's bad_input records counted into summary; its other log records not shown."""
    log = logging.getLogger("cart_gateway")
    handler, saved = _Rejections(summary), (log.handlers[:], log.propagate, log.level)
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.handlers, log.propagate = saved[0], saved[1]
        log.setLevel(saved[2])


class Replayer:
    """The live handlers driven by recorded (or simulated) messages: `feed()` one message,
    `tick()` the timer; detection runs inline. `run()` replays a trace; the fast simulator
    (cart_sim.fastsim) drives the same object message by message."""

    def __init__(self, cfg: GatewayConfig, state_dir: Path, detector=None, store=None, catalogue=None):
        cfg = cfg.model_copy(update={"state_dir": Path(state_dir)})
        self.detector = detector
        self._pending: list[tuple[str, list[bytes]]] = []
        # catalogue: the simulator's (e.g. store-20k); None: the configured one, as the service
        self.gw = Gateway(cfg, store=store, catalogue=catalogue, submit_burst=self._submit)
        self.gw.keep_decisions = True
        self.tick_ms = cfg.tick_ms
        self.prompts: list[dict] = []
        self.published: list[dict] = []
        self.keep_outputs = False           # the fast simulator reads every Publish (outputs)
        self.outputs: list = []

    def _submit(self, burst_id: str, jpegs: list[bytes]) -> bool:
        self._pending.append((burst_id, jpegs))
        return True

    def _step(self, fn, *args) -> list:
        store = self.gw.store
        store.begin()
        outs = fn(*args)
        store.outbox_done([p.outbox_id for p in outs if p.outbox_id is not None])  # "delivered"
        store.commit()
        for p in outs:
            if p.topic.endswith("/screen/prompt"):
                self.prompts.append(json.loads(p.payload))
            self.published.append({"topic": p.topic, "retain": p.retain})
        if self.keep_outputs:
            self.outputs += outs
        return outs

    def _run_bursts(self, t_ms: int) -> list:
        outs = []
        while self._pending:
            burst_id, jpegs = self._pending.pop(0)
            if self.detector is not None:
                frames, codes = self.detector.run(jpegs)
            else:
                frames, codes = [[] for _ in jpegs], []
            outs += self._step(self.gw.apply_vision, burst_id, frames, codes, t_ms)
        return outs

    def feed(self, topic: str, payload: bytes, t_ms: int) -> list:
        """One message received at t_ms, then any burst it completed: the publishes caused."""
        outs = self._step(self.gw.handle, topic, payload, t_ms)
        return outs + self._run_bursts(t_ms)

    def tick(self, t_ms: int) -> list:
        """The service's timer firing at t_ms."""
        outs = self._step(self.gw.tick, t_ms)
        return outs + self._run_bursts(t_ms)

    def ticks_until(self, next_tick: int, t_ms: int, on_publish=None) -> int:
        """Fire the timer at every grid point next_tick, next_tick + tick_ms, ... <= t_ms and
        return the next grid point. Stretches in which the gateway waits on no timer
        (Gateway.timer_pending) are skipped up to their last grid point, which is ticked (for
        retention): the same effects as ticking each one, without ticking hours of idle time."""
        while t_ms >= next_tick:
            if not self.gw.timer_pending():
                next_tick += (t_ms - next_tick) // self.tick_ms * self.tick_ms
            outs = self.tick(next_tick)
            if on_publish is not None and outs:
                on_publish(next_tick, outs)
            next_tick += self.tick_ms
        return next_tick

    def run(self, records) -> dict:
        next_tick = None
        last = 0
        t_start = time.perf_counter()
        for r in records:
            if next_tick is None:
                next_tick = r.t_ms + self.tick_ms
            next_tick = self.ticks_until(next_tick, r.t_ms)   # the timer fires between messages, as live
            self.feed(r.topic, r.payload, r.t_ms)
            last = r.t_ms
        # let the last movements' vision wait run out, as the live timer would
        end = last + self.gw.cfg.reconcile.evidence_window_ms + self.tick_ms
        self._step(self.gw.tick, end)
        self._run_bursts(end)
        return self.result(time.perf_counter() - t_start)

    def result(self, total_s: float = 0.0) -> dict:
        result = self.gw.snapshot()
        result["prompts_issued"] = self.prompts
        result["decisions"] = self.gw.decision_log   # every session's, in order
        result["timing"] = {"decisions": self.gw.decision_times, "total_s": round(total_s, 4)}
        return result


def replay_file(trace: str, cfg: GatewayConfig, state_dir: str | None = None, detector=None,
                gateway_id: str | None = None) -> dict:
    """Replay a trace file. The gateway id: `gateway_id` if given, else the trace's own
    (trace_gateway_id), else the config's; verdicts for another id would be ignored."""
    with open(trace, encoding="utf-8") as f:
        header, records = read_trace(f)
    if gateway_id is not None:
        gw, source = gateway_id, "option"
    else:
        gw, source = trace_gateway_id(header, records)
        if gw is None:
            gw, source = cfg.gateway_id, f"config ({source})"
    cfg = cfg.model_copy(update={"gateway_id": gw})
    if detector is None and cfg.detector.enabled:
        from .vision import BurstDetector
        detector = BurstDetector.from_config(cfg.detector)
    summary = ReplaySummary(messages=len(records),
                            carts={r.topic.split("/")[1] for r in records if r.topic.startswith("carts/")})
    with tempfile.TemporaryDirectory(prefix="cart-replay-") as tmp, collect_rejections(summary):
        rp = Replayer(cfg, Path(state_dir or tmp), detector)
        try:
            result = rp.run(records)
        finally:
            rp.gw.store.close()
    result["trace"] = {"header": header, "records": len(records), "gateway_id": gw, "gateway_id_from": source}
    result["summary"] = {"messages": summary.messages, "carts": len(summary.carts),
                         "carts_accepted": len(summary.accepted_carts), "carts_refused": sorted(summary.refused_carts),
                         "messages_refused": dict(summary.refused_by_reason),
                         "lines": summary.lines(cfg.carts), "nothing_accepted": summary.nothing_accepted}
    return result
