"""What the gateway publishes (§4, §10-13): its status, baskets, prompts and screen state,
receipts, review requests and the review queue. Screens, exit gates, the review station and
the tools decode these with `decode_output`."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from .base import MAX_JSON_BYTES, Count, Grams, TimeMs, _Msg, _STRICT_NUMBERS
from .decoding import _json, _validate


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
