"""Trace files (§14): one JSON line per MQTT message as received, after a header line; what
`cart-gateway replay` and the simulator read and write."""
from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from .base import ID_RE, MAX_TIME_MS, ProtocolError
from .decoding import _loads


def trace_line(t_ms: int, topic: str, qos: int, retain: bool, payload: bytes) -> str:
    rec: dict[str, Any] = {"t_ms": int(t_ms), "topic": topic, "qos": int(qos), "retain": bool(retain)}
    try:
        text = payload.decode("utf-8")
        json.loads(text)
        rec["payload"] = text
    except (UnicodeDecodeError, ValueError):
        rec["payload_b64"] = binascii.b2a_base64(payload, newline=False).decode()
    return json.dumps(rec, separators=(",", ":"))


@dataclass(frozen=True)
class TraceRecord:
    t_ms: int
    topic: str
    qos: int
    retain: bool
    payload: bytes


def read_trace(lines) -> tuple[dict, list[TraceRecord]]:
    """Parse a trace (an iterable of lines). Returns (header, records)."""
    header: dict | None = None
    records: list[TraceRecord] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        obj, odd = _loads(line, f"trace line {n}")
        if not isinstance(obj, dict):
            raise ProtocolError(f"trace line {n}: must be a JSON object")
        if odd is not None:
            raise ProtocolError(f"trace line {n}: holds {odd}, which is not a JSON number the protocol allows")
        if header is None:
            if type(obj.get("trace")) is not int or obj["trace"] != 1:
                raise ProtocolError(f"trace line {n}: field 'trace': the header must say 1")
            gw = obj.get("gateway_id")
            if "gateway_id" in obj and not (isinstance(gw, str) and ID_RE.match(gw)):
                # not ignored: replay would fall back to another id and drop the verdicts
                raise ProtocolError(f"trace line {n}: field 'gateway_id': must be a gateway id "
                                    f"({ID_RE.pattern}), got {gw!r}")
            header = obj
            continue
        for field, typ in (("t_ms", int), ("topic", str), ("qos", int), ("retain", bool)):
            if type(obj.get(field)) is not typ:       # type(): a bool is not a t_ms or a qos
                raise ProtocolError(f"trace line {n}: field {field!r}: missing or not {typ.__name__}")
        if not 0 <= obj["t_ms"] <= MAX_TIME_MS:
            raise ProtocolError(f"trace line {n}: field 't_ms': {obj['t_ms']} is not in 0..2^53")
        if obj["qos"] not in (0, 1, 2):
            raise ProtocolError(f"trace line {n}: field 'qos': {obj['qos']} is not 0, 1 or 2")
        if "payload" in obj and isinstance(obj["payload"], str):
            try:
                payload = obj["payload"].encode("utf-8")
            except UnicodeEncodeError as e:      # a lone surrogate (\ud800) is not UTF-8
                raise ProtocolError(f"trace line {n}: field 'payload': not UTF-8 text ({e.reason})") from None
        elif "payload_b64" in obj and isinstance(obj["payload_b64"], str):
            try:
                payload = binascii.a2b_base64(obj["payload_b64"], strict_mode=True)
            except ValueError as e:              # binascii.Error, or a non-ASCII character
                raise ProtocolError(f"trace line {n}: field 'payload_b64': {e}") from None
        else:
            raise ProtocolError(f"trace line {n}: field 'payload' or 'payload_b64': missing")
        records.append(TraceRecord(obj["t_ms"], obj["topic"], obj["qos"], obj["retain"], payload))
    if header is None:
        raise ProtocolError("trace: empty, no header line")
    return header, records
