"""Protocol payload builders for tests and benchmarks (what boards and screens send).

Mirrors firmware/lib/cartfw/proto.py's encoders for the gateway's own tests
and `cart-bench`; the contract test checks the real encoders.
"""
from __future__ import annotations

import binascii
import json
import struct

from cart_gateway.protocol import CHUNK_HEADER


def _j(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Board:
    """One board's event stream: assigns seq, keeps mono_ms."""

    def __init__(self, cart: str, board: str = "scale", epoch: int = 1, mono_ms: int = 1000, inst: str | None = None):
        self.cart, self.board, self.epoch, self.mono, self.seq = cart, board, epoch, mono_ms, 0
        self.inst = inst          # §3 instance id (16 hex), or None as from older firmware
        self.total = 0.0

    @property
    def topic(self) -> str:
        return f"carts/{self.cart}/{self.board}/evt"

    def _head(self, type_: str, dt_ms: int) -> dict:
        self.seq += 1
        self.mono += dt_ms
        d = {"v": 1, "cart": self.cart, "board": self.board, "epoch": self.epoch, "mono_ms": self.mono,
             "wall_ms": None, "synced": False, "seq": self.seq, "type": type_}
        if self.inst is not None:
            d["inst"] = self.inst
        return d

    def unsettled(self, dt_ms: int = 100) -> bytes:
        d = self._head("unsettled", dt_ms)
        d["total_g"] = self.total
        return _j(d)

    def weight(self, delta_g: float, dt_ms: int = 400, unsettled_seq: int | None = None) -> bytes:
        pre = self.total
        self.total = round(self.total + delta_g, 1)
        d = self._head("weight", dt_ms)
        d.update(delta_g=delta_g, total_g=self.total, noise_g=0.8, settle_ms=300,
                 window={"n": 24, "pre_g": pre, "post_g": self.total, "min_g": min(pre, self.total),
                         "max_g": max(pre, self.total), "std_g": 0.8, "dur_ms": 300,
                         "unsettled_seq": unsettled_seq})
        return _j(d)

    def movement(self, delta_g: float) -> list[tuple[str, bytes]]:
        """unsettled then weight, linked by unsettled_seq (as the scale app sends them)."""
        u = self.unsettled()
        return [(self.topic, u), (self.topic, self.weight(delta_g, unsettled_seq=self.seq))]

    def capture(self, frames: list[int], ref: str | None, trigger: str = "unsettled", dt_ms: int = 50) -> bytes:
        d = self._head("capture", dt_ms)
        d.update(trigger=trigger, ref=ref, frames=frames, frame_ms=[self.mono] * len(frames))
        return _j(d)


def frame_chunks(epoch: int, frame: int, data: bytes, chunk_size: int = 1024) -> list[bytes]:
    crc = binascii.crc32(data) & 0xFFFFFFFF
    count = (len(data) + chunk_size - 1) // chunk_size
    return [CHUNK_HEADER.pack(b"CF", 1, 1, epoch, frame, i, count, len(data), crc)
            + data[i * chunk_size:(i + 1) * chunk_size] for i in range(count)]


def answer(prompt_id: str, answer_id: str, **choice) -> bytes:
    return _j({"v": 1, "prompt_id": prompt_id, "answer_id": answer_id, "choice": choice})


def checkout(req_id: str) -> bytes:
    return _j({"v": 1, "req_id": req_id})


def verdict(review_id: str, verdict_id: str, sku: str | None, qty: int) -> bytes:
    return _j({"v": 1, "review_id": review_id, "verdict_id": verdict_id, "sku": sku, "qty": qty})
