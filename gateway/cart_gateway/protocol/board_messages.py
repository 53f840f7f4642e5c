"""The messages on a board's topics (§4-9): its status, events (weight, unsettled, capture,
error), telemetry, and the commands it is sent with their results."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import INST_RE, MAX_COUNT, Count, DurationMs, Grams, PosGrams, TimeMs, _Msg, _STRICT_NUMBERS


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
