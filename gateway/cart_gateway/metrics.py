"""Prometheus metrics of one gateway (its own registry, so tests can run several)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LAT = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.messages = Counter("cart_gateway_messages", "MQTT messages handled", ["kind"], registry=r)
        self.events = Counter("cart_gateway_events", "board events stored (new identities)", ["type"], registry=r)
        self.duplicates = Counter("cart_gateway_duplicates", "events dropped: identity already stored", registry=r)
        self.gaps = Counter("cart_gateway_gaps", "sequence gaps opened", registry=r)
        self.gap_events = Counter("cart_gateway_gap_events", "events missing in opened gaps", registry=r)
        self.gaps_trimmed = Counter("cart_gateway_gaps_trimmed", "open gaps merged or dropped: over the per-board bound",
                                    registry=r)
        self.late = Counter("cart_gateway_late_events", "events below the highest seq (out of order)", registry=r)
        self.bad = Counter("cart_gateway_bad_messages", "messages rejected", ["reason"], registry=r)
        self.decisions = Counter("cart_gateway_decisions", "reconciliation decisions", ["outcome"], registry=r)
        self.board_commands = Counter("cart_gateway_board_commands", "commands the reconciler sent a board (§9), "
                                      "e.g. a camera retake", ["cmd"], registry=r)
        self.frames = Counter("cart_gateway_frames", "frames", ["result"], registry=r)
        self.frames_dropped = Counter("cart_gateway_frames_dropped", "frames dropped before complete, per cart",
                                      ["cart", "reason"], registry=r)
        self.pruned = Counter("cart_gateway_pruned", "rows deleted by retention", ["table"], registry=r)
        self.detector_dropped = Counter("cart_gateway_detector_dropped", "bursts not run: queue full", registry=r)
        self.handle_latency = Histogram("cart_gateway_handle_seconds", "handler time per message",
                                        ["kind"], buckets=_LAT, registry=r)
        self.commit_latency = Histogram("cart_gateway_commit_seconds", "SQLite commit time per batch",
                                        buckets=_LAT, registry=r)
        self.inference_latency = Histogram("cart_gateway_inference_seconds", "detector time per burst",
                                           buckets=_LAT, registry=r)
        self.ingest_dropped = Counter("cart_gateway_ingest_dropped", "QoS 0 messages dropped: the cart's queue "
                                      "was full (ingest.qos0_per_cart)", ["cart"], registry=r)
        self.ingest_queue = Gauge("cart_gateway_ingest_queue", "messages waiting for the core thread", registry=r)
        self.detector_queue = Gauge("cart_gateway_detector_queue", "bursts waiting for inference", registry=r)
        self.frames_in_progress = Gauge("cart_gateway_frames_in_progress", "frames being reassembled", registry=r)
        self.open_reviews = Gauge("cart_gateway_open_reviews", "reviews waiting for a verdict", registry=r)
        self.connected = Gauge("cart_gateway_mqtt_connected", "1 while connected to the broker", registry=r)

    def serve(self, port: int, host: str = "127.0.0.1"):
        """Start the /metrics HTTP server (port 0 = off). Returns the server or None."""
        if not port:
            return None
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
