"""Decoding what reaches the gateway: the JSON checks every payload passes (size, UTF-8, an
object with `v`, nesting depth, no NaN, ±Inf or huge int), validation against its model with
an error naming the field, the topic's identity check, and one decoder per input message."""
from __future__ import annotations

import json
import math

from pydantic import ValidationError

from .base import MAX_COMMAND_BYTES, MAX_DEPTH, MAX_INT, MAX_JSON_BYTES, ProtocolError
from .board_messages import (BoardHeader, CaptureEvent, Command, CommandResult, ErrorEvent, Status, Telemetry,
                             UnsettledEvent, WeightEvent)
from .screen_messages import Answer, CheckoutRequest, Verdict
from .topics import Topic


def _field_error(what: str, err: ValidationError) -> ProtocolError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(payload)"
    return ProtocolError(f"{what}: field {loc!r}: {first['msg']}")


class _Json(dict):
    """A decoded payload, and the first value in it that JSON (RFC 8259) does not allow or the
    protocol never needs: NaN, ±Infinity, a float that overflows to ±Inf, a 20-digit int."""
    odd: str | None = None


def _loads(text: str, what: str):
    """The payload decoded, and the first value JSON does not allow (or None). Fast path: the C
    decoder alone, then one walk checking depth and numbers; only a payload that holds an odd
    number is decoded again with hooks that name it as written (e.g. `1e999`)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ProtocolError(f"{what}: payload nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise ProtocolError(f"{what}: payload is not JSON ({e})") from None
    if _check_depth(what, obj):
        return _loads_naming(text, what)
    return obj, None


def _loads_naming(text: str, what: str):
    odd: list[str] = []

    def constant(c: str) -> float:          # NaN, Infinity, -Infinity
        odd.append(c)
        return float(c)

    def number(f: str) -> float:
        v = float(f)
        if not math.isfinite(v):
            odd.append(f"{f} (overflows to {v})")
        return v

    def integer(i: str) -> int:
        v = int(i)       # (over 4,300 digits int() itself refuses: ValueError, "not JSON" below)
        if abs(v) > MAX_INT:
            odd.append(f"an integer of {len(i.lstrip('-'))} digits, beyond ±2^63")
        return v

    try:
        obj = json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer)
    except RecursionError:
        raise ProtocolError(f"{what}: payload nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise ProtocolError(f"{what}: payload is not JSON ({e})") from None
    _check_depth(what, obj)
    return obj, (odd[0] if odd else None)


def _check_depth(what: str, obj) -> bool:
    """Iteratively (no recursion to exhaust): at most MAX_DEPTH levels of arrays and objects.
    True if a number in it is not one JSON allows (NaN, ±Inf, an int beyond ±2^63)."""
    odd = False
    stack = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        t = type(v)
        if t is dict or t is list:
            if d > MAX_DEPTH:
                raise ProtocolError(f"{what}: payload nests deeper than {MAX_DEPTH} levels")
            for x in (v.values() if t is dict else v):
                tx = type(x)
                if tx is dict or tx is list:
                    stack.append((x, d + 1))
                elif tx is float:
                    odd = odd or not math.isfinite(x)
                elif tx is int:
                    odd = odd or abs(x) > MAX_INT
        elif t is float:
            odd = odd or not math.isfinite(v)
        elif t is int:
            odd = odd or abs(v) > MAX_INT
    return odd


def _json(what: str, payload: bytes, limit: int) -> dict:
    if len(payload) > limit:
        raise ProtocolError(f"{what}: payload is {len(payload)} bytes, over the {limit}-byte limit")
    try:
        text = bytes(payload).decode("utf-8")       # §3: UTF-8 (json.loads would guess UTF-16/32 too)
    except UnicodeDecodeError as e:
        raise ProtocolError(f"{what}: payload is not JSON ({e})") from None
    obj, odd = _loads(text, what)
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: payload must be a JSON object, got {type(obj).__name__}")
    if "v" not in obj:
        raise ProtocolError(f"{what}: field 'v': missing (protocol version)")
    out = _Json(obj)
    out.odd = odd
    return out


def _validate(model, what: str, obj: dict):
    try:
        msg = model.model_validate(obj)
    except ValidationError as e:
        raise _field_error(what, e) from None     # names the field (NaN, ±Inf, a range) when it is typed
    except RecursionError:
        raise ProtocolError(f"{what}: payload nests too deep") from None
    odd = getattr(obj, "odd", None)
    if odd is not None:   # in a free-form or unknown field: still not JSON, not taken
        raise ProtocolError(f"{what}: payload holds {odd}, which is not a JSON number the protocol allows")
    return msg


def _check_identity(what: str, msg: BoardHeader, topic: Topic) -> None:
    if msg.cart != topic.cart:
        raise ProtocolError(f"{what}: field 'cart': {msg.cart!r} differs from the topic's {topic.cart!r}")
    if msg.board != topic.board:
        raise ProtocolError(f"{what}: field 'board': {msg.board!r} differs from the topic's {topic.board!r}")


_EVENT_TYPES = {"weight": WeightEvent, "unsettled": UnsettledEvent, "capture": CaptureEvent, "error": ErrorEvent}


def decode_event(topic: Topic, payload: bytes):
    what = "event"
    obj = _json(what, payload, MAX_JSON_BYTES)
    kind = obj.get("type")
    model = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ProtocolError(f"{what}: field 'type': {kind!r} is not one of {sorted(_EVENT_TYPES)}")
    msg = _validate(model, f"{kind} event", obj)
    _check_identity(f"{kind} event", msg, topic)
    return msg


def decode_status(topic: Topic, payload: bytes) -> Status:
    msg = _validate(Status, "status", _json("status", payload, MAX_JSON_BYTES))
    _check_identity("status", msg, topic)
    return msg


def decode_telemetry(topic: Topic, payload: bytes) -> Telemetry:
    msg = _validate(Telemetry, "telemetry", _json("telemetry", payload, MAX_JSON_BYTES))
    _check_identity("telemetry", msg, topic)
    return msg


def decode_command(payload: bytes) -> Command:
    return _validate(Command, "command", _json("command", payload, MAX_COMMAND_BYTES))


def decode_command_result(payload: bytes) -> CommandResult:
    return _validate(CommandResult, "command result", _json("command result", payload, MAX_JSON_BYTES))


def decode_answer(payload: bytes) -> Answer:
    return _validate(Answer, "answer", _json("answer", payload, MAX_JSON_BYTES))


def decode_checkout(payload: bytes) -> CheckoutRequest:
    return _validate(CheckoutRequest, "checkout", _json("checkout", payload, MAX_JSON_BYTES))


def decode_verdict(payload: bytes) -> Verdict:
    return _validate(Verdict, "verdict", _json("verdict", payload, MAX_JSON_BYTES))
