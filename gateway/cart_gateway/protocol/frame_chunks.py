"""Camera frames and stills on the wire (§7, §7.1): one chunk's 24-byte header checked field by
field, and a frame reassembled from its chunks, bounded by the header's size and verified by
its CRC-32."""
from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from .base import (MAX_CHUNK_PAYLOAD, MAX_FRAME_BYTES, MAX_FRAME_CHUNKS, MAX_STILL_BYTES, MAX_STILL_CHUNKS,
                   STILL_RESOLUTIONS, ProtocolError)


CHUNK_HEADER = struct.Struct(">2sBBIIHHII")
assert CHUNK_HEADER.size == 24


@dataclass(frozen=True)
class FrameChunk:
    epoch: int
    frame: int
    index: int
    count: int
    size: int
    crc32: int
    data: bytes
    still: bool = False      # §7.1: fmt's high nibble is a still's resolution code
    width: int = 0           # a still's resolution; 0 for burst frames
    height: int = 0


def decode_frame_chunk(payload: bytes) -> FrameChunk:
    what = "frame chunk"
    if len(payload) < CHUNK_HEADER.size + 1:
        raise ProtocolError(f"{what}: {len(payload)} bytes is shorter than the 24-byte header plus data")
    if len(payload) > CHUNK_HEADER.size + MAX_CHUNK_PAYLOAD:
        raise ProtocolError(f"{what}: data of {len(payload) - 24} bytes is over the {MAX_CHUNK_PAYLOAD}-byte limit")
    magic, ver, fmt, epoch, frame, index, count, size, crc = CHUNK_HEADER.unpack_from(payload)
    still = fmt >> 4 != 0
    wh = STILL_RESOLUTIONS.get(fmt >> 4, (0, 0)) if still else (0, 0)
    limit = MAX_STILL_BYTES if still else MAX_FRAME_BYTES
    climit = MAX_STILL_CHUNKS if still else MAX_FRAME_CHUNKS
    checks = (
        ("magic", magic == b"CF", f"{magic!r} is not b'CF'"),
        ("ver", ver == 1, f"{ver} is not 1"),
        ("fmt", fmt & 0x0F == 1 and (not still or wh[0]),
         f"{fmt:#04x} is not 0x01 (JPEG frame) or 0xR1 (JPEG still, R a resolution code 1..5)"),
        ("epoch", epoch >= 1, "must be ≥ 1"),
        ("frame", frame >= 1, "must be ≥ 1"),
        ("count", 1 <= count <= climit, f"{count} is not in 1..{climit}"),
        ("index", index < count, f"{index} is not below count {count}"),
        ("size", 1 <= size <= limit, f"{size} is not in 1..{limit}" + (" (a still)" if still else "")),
    )
    for field, ok, why in checks:
        if not ok:
            raise ProtocolError(f"{what}: field {field!r}: {why}")
    return FrameChunk(epoch, frame, index, count, size, crc, bytes(payload[CHUNK_HEADER.size:]),
                      still, *wh)


class FrameAssembler:
    """Reassembles one frame's chunks (§7); bounded by the header's size."""

    def __init__(self, first: FrameChunk, started: float):
        self.epoch, self.frame, self.count, self.size, self.crc32 = (
            first.epoch, first.frame, first.count, first.size, first.crc32)
        self.still, self.width, self.height = first.still, first.width, first.height
        self.started = started
        self._parts: dict[int, bytes] = {}
        self._bytes = 0

    def add(self, chunk: FrameChunk) -> bytes | None:
        """Add a chunk; return the whole frame once complete and verified."""
        if (chunk.count, chunk.size, chunk.crc32, chunk.width) != (self.count, self.size, self.crc32, self.width):
            raise ProtocolError(f"frame chunk: field 'count/size/crc32/fmt' disagrees with the frame's first chunk")
        if chunk.index in self._parts:
            return None  # duplicate chunk (QoS 1 redelivery)
        self._bytes += len(chunk.data)
        if self._bytes > self.size:
            raise ProtocolError(f"frame chunk: chunks add up to more than field 'size' {self.size}")
        self._parts[chunk.index] = chunk.data
        if len(self._parts) < self.count:
            return None
        frame = b"".join(self._parts[i] for i in range(self.count))
        if len(frame) != self.size:
            raise ProtocolError(f"frame: field 'size' says {self.size} bytes, chunks hold {len(frame)}")
        if binascii.crc32(frame) & 0xFFFFFFFF != self.crc32:
            raise ProtocolError("frame: field 'crc32' does not match the frame's bytes")
        return frame
