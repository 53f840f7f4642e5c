"""What every part of the protocol (docs/protocol.md, version 1) shares: the version, the §15
size limits and value ranges, the id patterns, `ProtocolError`, the typed number fields and the
base of every JSON message."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class _Msg(BaseModel):
    # Unknown fields are ignored so that optional additions do not break old
    # gateways (§ intro); required fields and types are strict.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False, allow_inf_nan=False)
    v: Literal[1]
