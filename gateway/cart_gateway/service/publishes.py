"""What a handler returns: `Publish` (a topic and its payload, serialised at most once, only when
needed), and `dumps`, the one JSON encoding of every payload the gateway publishes."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass


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
