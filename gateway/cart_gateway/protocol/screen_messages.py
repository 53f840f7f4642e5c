"""What people send the gateway through its screens: the cart screen's answers (§11), the exit
gate's checkout request (§12) and the review station's verdicts (§13)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import _Msg


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
