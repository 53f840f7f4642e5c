"""Typed fleet messages as the consumer reads them (docs/fleet.md §Messages).

The gateway writes them (gateway/cart_gateway/fleet.py); a record that does
not parse is refused with a message naming the field, and acknowledged (a bad
message redelivered forever would stall a consumer's share of the stream)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_RECORD = 256 * 1024


class RecordError(ValueError):
    pass


def _obj(payload: bytes) -> dict:
    if len(payload) > MAX_RECORD:
        raise RecordError(f"record of {len(payload)} bytes exceeds {MAX_RECORD}")
    try:
        d = json.loads(payload, parse_constant=lambda c: (_ for _ in ()).throw(RecordError(f"{c} in record")))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"not JSON: {e}") from None
    if not isinstance(d, dict) or d.get("v") != 1:
        raise RecordError("not a v1 JSON object")
    return d


def _int(d: dict, k: str, lo: int = 0, hi: int = 2**53) -> int:
    v = d.get(k)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise RecordError(f"{k}: expected an integer in {lo}..{hi}, got {v!r}")
    return v


def _id(d: dict, k: str) -> str:
    v = d.get(k)
    if not isinstance(v, str) or not ID_RE.match(v):
        raise RecordError(f"{k}: expected an id [a-z0-9][a-z0-9-]{{0,63}}, got {v!r}")
    return v


def _day(d: dict) -> date:
    try:
        return date.fromisoformat(d.get("day"))
    except (TypeError, ValueError):
        raise RecordError(f"day: expected YYYY-MM-DD, got {d.get('day')!r}") from None


@dataclass(frozen=True)
class ReceiptRecord:
    receipt_id: str
    gateway: str
    cart: str
    day: date
    issued_ms: int
    total_cents: int
    items: int
    prompts: int
    reviews: int
    raw: dict

    @classmethod
    def parse(cls, payload: bytes) -> "ReceiptRecord":
        d = _obj(payload)
        r = d.get("receipt")
        b = d.get("basket")
        if not isinstance(r, dict) or not isinstance(b, dict):
            raise RecordError("receipt and basket: expected objects")
        lines = r.get("lines")
        if not isinstance(lines, list):
            raise RecordError("receipt.lines: expected a list")
        for f in ("total_cents", "issued_ms"):
            v = r.get(f)
            if isinstance(v, float) and not math.isfinite(v):
                raise RecordError(f"receipt.{f}: not finite")
        return cls(_id(r, "receipt_id"), _id(d, "gateway"), _id(d, "cart"), _day(d), _int(r, "issued_ms"),
                   _int(r, "total_cents", -2**53, 2**53), _int(b, "items", 0, 100000),
                   _int(b, "prompts", 0, 100000), _int(b, "reviews", 0, 100000), d)


@dataclass(frozen=True)
class Figures:
    day: date
    at_ms: int
    raw: dict

    @classmethod
    def parse(cls, payload: bytes) -> "Figures":
        d = _obj(payload)
        return cls(_day(d), _int(d, "at_ms"), d)


def parse_health(payload: bytes) -> tuple[int, dict]:
    d = _obj(payload)
    return _int(d, "at_ms"), d
