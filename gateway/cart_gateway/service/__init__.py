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

One job a module: `gateway` (`Gateway`: start-up, entry points, dispatch), `board_inputs`
(events §5-6), `frames_bursts` (frames §7, bursts to the detector), `shopper_staff` (answers,
verdicts, checkout §11-13), `effects` (what an engine call causes: stored, published,
persisted), `retention`, `cart_runtime` (`CartRt`, one cart's runtime), `publishes`
(`Publish`, `dumps`).
"""
from .gateway import VERSION, BatchFailed, Gateway
from .publishes import Publish, dumps

__all__ = ["VERSION", "BatchFailed", "Gateway", "Publish", "dumps"]
