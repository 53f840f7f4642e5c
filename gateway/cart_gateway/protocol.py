"""Decoders for docs/protocol.md (version 1).

Every decoder takes the raw MQTT topic and payload and returns a typed
message, or raises ProtocolError whose text names the topic part or the
field that was wrong. Nothing here does I/O.
"""
from __future__ import annotations

import binascii
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROTOCOL_VERSION = 1

# §15 size limits
MAX_JSON_BYTES = 1024
MAX_COMMAND_BYTES = 4096
MAX_CHUNK_PAYLOAD = 4096
MAX_FRAME_BYTES = 131072
MAX_FRAME_CHUNKS = 64
MAX_STILL_BYTES = 524288   # §7.1: a still, at most 128 chunks
MAX_STILL_CHUNKS = 128
STILL_RESOLUTIONS = {1: (640, 480), 2: (800, 600), 3: (1024, 768), 4: (1280, 1024), 5: (1600, 1200)}

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")    # \Z: "$" would let a trailing newline in
INST_RE = re.compile(r"^[0-9a-f]{8,32}$")     # §5 board instance id
BOARDS = ("scale", "cam")


class ProtocolError(ValueError):
    """A message that does not follow docs/protocol.md. The text names the field."""


# §15 value ranges: far beyond any real value, so that NaN, ±Inf, ±1e308 or a 2^60 clock
# never reach the reconciler, the database or a screen (issue 11.7)
MAX_GRAMS = 1_000_000.0          # 1 t: no cart carries that
MAX_TIME_MS = 2**53              # mono_ms, wall_ms, created_ms ...: exact in a double, never reached
MAX_DURATION_MS = 86_400_000     # settle_ms, dur_ms: at most a day
MAX_COUNT = 2**32 - 1            # seq, frame numbers, counters
MAX_DEPTH = 16                   # JSON nesting; the deepest protocol message has 4 levels
MAX_INT = 2**63                  # ints anywhere, also in free-form fields (command args ...)

Grams = Annotated[float, Field(ge=-MAX_GRAMS, le=MAX_GRAMS, allow_inf_nan=False)]
PosGrams = Annotated[float, Field(ge=0, le=MAX_GRAMS, allow_inf_nan=False)]
TimeMs = Annotated[int, Field(ge=0, le=MAX_TIME_MS)]
DurationMs = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
_STRICT_NUMBERS = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


# ---------------------------------------------------------------- topics (§2)

@dataclass(frozen=True)
class Topic:
    kind: str            # status, evt, frame, tele, cmd, cmd/res, basket, prompt, ...
    cart: str | None = None
    board: str | None = None
    gw: str | None = None


_CART_BOARD_KINDS = {"status", "evt", "frame", "tele", "cmd", "cmd/res"}
_CART_KINDS = {"basket", "screen/prompt", "screen/state", "screen/answer", "checkout", "receipt"}
_GW_KINDS = {"status", "review/new", "review/queue", "review/verdict"}


def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == "carts":
        cart = parts[1]
        if not ID_RE.match(cart):
            raise ProtocolError(f"topic {topic!r}: cart id {cart!r} is not [a-z0-9][a-z0-9-]{{0,31}}")
        rest = "/".join(parts[2:])
        if rest in _CART_KINDS:
            return Topic(rest, cart=cart)
        board, kind = parts[2], "/".join(parts[3:])
        if board not in BOARDS:
            raise ProtocolError(f"topic {topic!r}: board {board!r} is not one of {BOARDS}")
        if kind not in _CART_BOARD_KINDS or (kind == "frame" and board != "cam"):
            raise ProtocolError(f"topic {topic!r}: unknown message kind {kind!r}")
        return Topic(kind, cart=cart, board=board)
    if len(parts) >= 3 and parts[0] == "gateway":
        gw, kind = parts[1], "/".join(parts[2:])
        if not ID_RE.match(gw):
            raise ProtocolError(f"topic {topic!r}: gateway id {gw!r} is not valid")
        if kind in _GW_KINDS:
            return Topic(kind, gw=gw)
    raise ProtocolError(f"topic {topic!r}: not in the protocol's topic tree")


# -------------------------------------------------------- JSON payloads (§3-13)

class _Msg(BaseModel):
    # Unknown fields are ignored so that optional additions do not break old
    # gateways (§ intro); required fields and types are strict.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False, allow_inf_nan=False)
    v: Literal[1]


class BoardHeader(_Msg):
    cart: str
    board: Literal["scale", "cam"]
    # §5: the board instance's id, minted at its first boot; absent from older firmware
    inst: str | None = Field(default=None, pattern=INST_RE.pattern)
    epoch: int = Field(ge=1, lt=2**32)
    mono_ms: TimeMs
    wall_ms: TimeMs | None = None
    synced: bool

    @model_validator(mode="after")
    def _clock_flags(self):
        if not self.synced and self.wall_ms is not None:
            raise ValueError("wall_ms must be null when synced is false")
        if self.synced and self.wall_ms is None:
            raise ValueError("wall_ms is required when synced is true")
        return self


class Status(BoardHeader):
    state: Literal["online", "offline"]
    fw: str
    mode: Literal["normal", "safe"] = "normal"
    reason: str | None = None


class Window(BaseModel):
    model_config = _STRICT_NUMBERS
    n: Count
    pre_g: Grams
    post_g: Grams
    min_g: Grams
    max_g: Grams
    std_g: PosGrams
    dur_ms: DurationMs
    unsettled_seq: int | None = Field(default=None, ge=1, lt=2**32)


class _Event(BoardHeader):
    seq: int = Field(ge=1, lt=2**32)

    @property
    def event_id(self) -> str:
        if self.inst:
            return f"{self.cart}/{self.board}/{self.inst}/{self.epoch}/{self.seq}"
        return f"{self.cart}/{self.board}/{self.epoch}/{self.seq}"


class WeightEvent(_Event):
    type: Literal["weight"]
    delta_g: Grams
    total_g: Grams
    noise_g: PosGrams
    settle_ms: DurationMs
    window: Window
    # Optional (§6.1): "suspect" when the hold passed only by the long-quiet
    # rule or after holds rejected for tremor (a hand may be on the basket);
    # None from firmware that predates it.
    hold: Literal["steady", "suspect"] | None = None
    # Optional (§6.1, issue 14): `prov` true: a final event replacing this one follows;
    # `replaces`: the seq (same stream) of the provisional this final one replaces.
    prov: Annotated[bool, Field(strict=True)] = False
    replaces: Annotated[int, Field(strict=True, ge=1, lt=2**32)] | None = None

    @model_validator(mode="after")
    def _provisional(self):
        if self.replaces is not None and self.replaces >= self.seq:
            raise ValueError(f"replaces {self.replaces} must name an earlier event (below seq {self.seq})")
        if self.prov and self.replaces is not None:
            raise ValueError("a replacing event is final: prov and replaces together")
        return self


class UnsettledEvent(_Event):
    type: Literal["unsettled"]
    total_g: Grams


class StillInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    w: int = Field(ge=1, le=4096)
    h: int = Field(ge=1, le=4096)


class CaptureEvent(_Event):
    type: Literal["capture"]
    trigger: Literal["unsettled", "motion", "command", "settled", "motion_stop"]
    ref: str | None = None
    frames: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(min_length=1, max_length=8)
    frame_ms: list[TimeMs]
    still: StillInfo | None = None     # §6.3: a still (§7.1) of this resolution, one frame

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.frame_ms) != len(self.frames):
            raise ValueError("frame_ms must have one entry per frame")
        if self.still is not None and len(self.frames) != 1:
            raise ValueError("a still capture names exactly one frame")
        if self.trigger in ("settled", "motion_stop") and self.still is None:
            raise ValueError(f"trigger {self.trigger!r} is a still's: field 'still' is required")
        return self


class ErrorEvent(_Event):
    type: Literal["error"]
    code: str = Field(min_length=1, max_length=40)
    detail: str = Field(default="", max_length=200)


Event = Annotated[Union[WeightEvent, UnsettledEvent, CaptureEvent, ErrorEvent], Field(discriminator="type")]


class Telemetry(BoardHeader):
    heap_free: Count
    heap_peak: Count | None = None
    uptime_s: Count
    rssi: int | None = Field(default=None, ge=-200, le=50)
    journal_depth: Count
    journal_dropped: Count
    reconnects: Count
    reset_cause: str
    fw: str


class Command(_Msg):
    id: str = Field(min_length=1, max_length=40)
    cmd: str = Field(min_length=1, max_length=20)
    args: dict[str, Any] = Field(default_factory=dict)


class CommandResult(_Msg):
    id: str = Field(min_length=1, max_length=40)
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None


MAX_MULTI = 8   # most product units one answer, option or verdict list may name


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    sku: str | None = None
    # v1 extension: several products moved in one go, one entry per unit
    # (["S1","S1","S2"] = two of S1 and one of S2); the gateway works out
    # from the weight whether they went in, came out, or were swapped.
    skus: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=MAX_MULTI)
    barcode: str | None = None
    personal: Literal[True] | None = None
    none: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("sku", "skus", "barcode", "personal", "none") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("choice must hold exactly one of sku, skus, barcode, personal, none")
        return self


class Answer(_Msg):
    prompt_id: str = Field(min_length=1, max_length=64)
    answer_id: str = Field(min_length=1, max_length=64)
    choice: Choice


class CheckoutRequest(_Msg):
    req_id: str = Field(min_length=1, max_length=64)


class VerdictItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    sku: Annotated[str, Field(min_length=1, max_length=64)] | None    # None: a personal item (not a product)
    qty: int = Field(ge=1, le=1000)


class Verdict(_Msg):
    review_id: str = Field(min_length=1, max_length=64)
    verdict_id: str = Field(min_length=1, max_length=64)
    sku: Annotated[str, Field(min_length=1, max_length=64)] | None
    qty: int = Field(ge=0, le=1000)
    # v1 extension: the whole movement, when one SKU and a quantity cannot say
    # it (two products at once, a swap). When either list is present the
    # gateway applies the lists and `sku`/`qty` are only a summary for v1 readers.
    adds: list[VerdictItem] | None = Field(default=None, max_length=MAX_MULTI)
    removes: list[VerdictItem] | None = Field(default=None, max_length=MAX_MULTI)

    @model_validator(mode="after")
    def _lists_name_an_item(self):
        # present lists replace sku/qty: empty ones would close the review with no
        # basket change whatever sku/qty say. One list may be empty (the simulator
        # sends "removes":[] beside a non-empty "adds").
        if (self.adds is not None or self.removes is not None) and not (self.adds or self.removes):
            raise ValueError("adds/removes: present but both empty (name at least one item, "
                             "or leave both out and use sku/qty)")
        return self


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


# ------------------------------------------- what the gateway publishes (§4, §10-13)
# Screens, exit gates, the review station and the tools decode these.

class GatewayStatus(_Msg):
    gw: str
    state: Literal["online", "offline"]
    version: str


class BasketLine(BaseModel):
    model_config = _STRICT_NUMBERS
    line_id: str
    sku: str | None
    name: str
    qty: Count
    weight_g: Grams
    unit_price_cents: TimeMs        # (a count of cents: same bound, exact in a double)
    price_cents: TimeMs
    status: Literal["accepted", "pending", "review"]


class Basket(_Msg):
    cart: str
    version: TimeMs
    updated_ms: TimeMs
    lines: list[BasketLine]
    total_cents: TimeMs
    open_prompts: Count
    open_reviews: Count


class PromptOption(BaseModel):
    model_config = _STRICT_NUMBERS
    sku: str
    name: str
    skus: list[str] | None = None   # v1 extension: an option naming several products (one entry per unit)


class Prompt(_Msg):
    prompt_id: str = Field(min_length=1, max_length=64)
    kind: Literal["pick", "scan", "personal", "removal"]
    text: str
    options: list[PromptOption]
    created_ms: TimeMs


class ScreenState(_Msg):
    prompts: list[Prompt]


class Receipt(_Msg):
    req_id: str
    ok: bool
    receipt_id: str | None = None
    lines: list[BasketLine] | None = None
    total_cents: TimeMs | None = None
    issued_ms: TimeMs | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.ok and (self.receipt_id is None or self.lines is None or self.total_cents is None):
            raise ValueError("a receipt with ok=true needs receipt_id, lines and total_cents")
        if not self.ok and not self.reason:
            raise ValueError("a refusal (ok=false) needs a reason")
        return self


class Candidate(BaseModel):
    model_config = _STRICT_NUMBERS
    sku: str | None
    score: float = Field(ge=0, le=1)
    skus: list[str] | None = None   # v1 extension: a hypothesis naming several products


class ReviewRequest(_Msg):
    review_id: str = Field(min_length=1, max_length=64)
    cart: str
    created_ms: TimeMs
    candidates: list[Candidate]
    weight: dict[str, Any] | None = None
    frames: list[Any]
    reason: str


class ReviewSummary(BaseModel):
    model_config = _STRICT_NUMBERS
    review_id: str
    cart: str
    created_ms: TimeMs


class ReviewQueue(_Msg):
    reviews: list[ReviewSummary]


_OUTPUTS = {"gateway status": (GatewayStatus, MAX_JSON_BYTES), "basket": (Basket, 65536),
            "prompt": (Prompt, 4096), "screen state": (ScreenState, 65536),
            "receipt": (Receipt, 65536), "review request": (ReviewRequest, 16384),
            "review queue": (ReviewQueue, 65536)}


def decode_output(kind: str, payload: bytes):
    """Decode a gateway-published payload; kind is a key of _OUTPUTS."""
    model, limit = _OUTPUTS[kind]
    return _validate(model, kind, _json(kind, payload, limit))


# ------------------------------------------------------------ frames (§7)

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


# ------------------------------------------------------------ traces (§14)

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
