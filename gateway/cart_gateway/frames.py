"""Frame reassembly (protocol §7) and frame files on disk.

Chunks are reassembled with protocol.FrameAssembler, bounded in count and
age. A complete, CRC-checked frame is written under <state>/frames/<cart>/
(atomically: temp file, fsync, rename) and indexed in SQLite; the service
deletes it after checkout, review resolution or retention expiry. Frames
never leave the gateway.
"""
from __future__ import annotations

import os
from pathlib import Path

from .protocol import MAX_FRAME_BYTES, FrameAssembler, FrameChunk, ProtocolError


class FrameTooLarge(ProtocolError):
    """A frame or still over this gateway's size limit for its kind (refused, counted)."""

    def __init__(self, kind: str, size: int, limit: int):
        super().__init__(f"{kind}: field 'size' {size} bytes is over this gateway's limit of {limit} bytes")
        self.kind = kind


class Assemblies:
    """In-progress frames keyed by (cart, epoch, frame): at most `max_per_cart` per cart and
    `max_in_progress` in all, so one cart's unfinished frames cannot block another's (issue 11.6).

    Frames come only from a cart's `cam` board, so the per-cart bound is also the per-board
    one. A new frame always gets a slot: over its cart's bound the cart's oldest frame is
    dropped; over the total, the oldest frame of the cart holding the most. Drops are
    returned to the caller (counted per cart). `still_max_bytes` bounds a still (§7.1) below
    the protocol's limit; burst frames keep §7's."""

    def __init__(self, max_in_progress: int, timeout_ms: int, max_per_cart: int = 4,
                 still_max_bytes: int = 393216):
        self.max = max_in_progress
        self.per_cart = max_per_cart
        self.timeout_ms = timeout_ms
        self.max_bytes = {"frame": MAX_FRAME_BYTES, "still": still_max_bytes}
        self._open: dict[tuple[str, int, int], FrameAssembler] = {}   # insertion order = age
        self._count: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def in_progress(self, cart: str) -> int:
        return self._count.get(cart, 0)

    def add(self, cart: str, chunk: FrameChunk, t_ms: int) -> tuple[str, bytes | None, list]:
        """Returns ("partial"|"complete", frame bytes when complete, [(cart, epoch, frame) dropped
        to make room]).

        Raises ProtocolError for a chunk that disagrees with its frame, or a
        frame whose size or CRC is wrong (the frame is dropped).
        """
        kind = "still" if chunk.still else "frame"
        if chunk.size > self.max_bytes[kind]:
            raise FrameTooLarge(kind, chunk.size, self.max_bytes[kind])
        key = (cart, chunk.epoch, chunk.frame)
        asm = self._open.get(key)
        evicted = []
        if asm is None:
            if self.in_progress(cart) >= self.per_cart:
                evicted.append(self._drop(next(k for k in self._open if k[0] == cart)))
            elif len(self._open) >= self.max:
                hog = max(self._count, key=lambda c: self._count[c])
                evicted.append(self._drop(next(k for k in self._open if k[0] == hog)))
            asm = self._open[key] = FrameAssembler(chunk, t_ms)
            self._count[cart] = self._count.get(cart, 0) + 1
        try:
            frame = asm.add(chunk)
        except ProtocolError:
            self._drop(key)
            raise
        if frame is None:
            return "partial", None, evicted
        self._drop(key)
        return "complete", frame, evicted

    def _drop(self, key: tuple[str, int, int]) -> tuple[str, int, int]:
        if self._open.pop(key, None) is not None:
            n = self._count[key[0]] - 1
            if n:
                self._count[key[0]] = n
            else:
                del self._count[key[0]]
        return key

    def expire(self, t_ms: int) -> list[tuple[str, int, int]]:
        """Drop frames still incomplete `timeout_ms` after their first chunk."""
        old = [k for k, a in self._open.items() if t_ms - a.started > self.timeout_ms]
        for k in old:
            self._drop(k)
        return old


def frame_id(cart: str, epoch: int, frame: int) -> str:
    return f"{cart}/{epoch}/{frame}"


class FrameFiles:
    def __init__(self, root: Path):
        self.root = Path(root)

    def write(self, cart: str, epoch: int, frame: int, data: bytes) -> str:
        d = self.root / cart
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{epoch}-{frame}.jpg"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return str(path)

    @staticmethod
    def read(path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except OSError:
            return None

    @staticmethod
    def delete(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
