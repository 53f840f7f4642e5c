"""What the forms send, made into protocol payloads: verdicts (§13), screen answers (§11),
and the catalogue search behind the review page's search box.

Every payload is checked with the gateway's own decoder before anything is published,
so a page can never send what the gateway would reject; a bad form raises ValueError
with a message that says what to fix.
"""
from __future__ import annotations

import json
import uuid

from .. import protocol as P
from ..catalogue import Catalogue, Sku

SEARCH_MAX_RESULTS = 24
MULTI_ROWS = 4          # rows of "went in" and "came out" in the several-products form


class CatalogueSearch:
    """An exact SKU or EAN-13 first, then the names that contain every word, those whose weight
    is closest to the movement's first. A linear pass over lower-cased names (30,000 SKUs: a few
    ms) once per query a reviewer types; an index would only pay for a stream of queries."""

    def __init__(self, catalogue: Catalogue):
        self.cat = catalogue
        self._names = [(s.name.lower(), s) for s in catalogue]

    def __call__(self, q: str, near_g: float | None = None) -> list[Sku]:
        exact: list[Sku] = []
        for s in (self.cat[q] if q in self.cat else None, self.cat.by_ean(q)):
            if s is not None and s.sku not in {e.sku for e in exact}:
                exact.append(s)
        seen = {e.sku for e in exact}
        words = q.lower().split()
        hits = [s for name, s in self._names if all(w in name for w in words) and s.sku not in seen]
        if near_g is not None:
            hits.sort(key=lambda s: (s.sold_by_weight, abs(s.weight_mean_g - abs(near_g))))
        return (exact + hits)[:SEARCH_MAX_RESULTS]


def sku_of(cat: Catalogue, text: str) -> str | None:
    """A SKU id or an EAN-13 of this catalogue; None for an empty field."""
    t = text.strip()
    if not t:
        return None
    if t in cat:
        return t
    s = cat.by_ean(t)
    if s is not None:
        return s.sku
    raise ValueError(f"{t!r} is not a SKU or an EAN-13 of this store's catalogue (use the search)")


def quantity(text, what: str) -> int:
    try:
        q = int(str(text).strip() or "1")
    except ValueError:
        raise ValueError(f"{what}: the quantity {text!r} is not a whole number") from None
    if not 1 <= q <= 99:
        raise ValueError(f"{what}: the quantity must be 1 to 99")
    return q


def verdict_payload(cat: Catalogue, review_id: str, form: dict) -> dict:
    """The §13 verdict a review page's form describes (kinds: one, skus, several, personal, nothing)."""
    kind = form.get("kind")
    base = {"v": 1, "review_id": review_id, "verdict_id": f"web-{uuid.uuid4().hex[:24]}"}
    if kind == "one":
        sku = sku_of(cat, str(form.get("sku", "")))
        if sku is None:
            raise ValueError("choose a product")
        v = dict(base, sku=sku, qty=quantity(form.get("qty", "1"), sku))
    elif kind == "skus":     # a candidate naming several units (two packs, a swap as the gateway saw it)
        skus = [sku_of(cat, x) for x in str(form.get("skus", "")).split(",") if x.strip()]
        if not skus or len(skus) > P.MAX_MULTI:
            raise ValueError(f"1 to {P.MAX_MULTI} products")
        counts: dict[str, int] = {}
        for k in skus:
            counts[k] = counts.get(k, 0) + 1
        adds = [{"sku": k, "qty": q} for k, q in counts.items()]
        v = dict(base, sku=adds[0]["sku"], qty=adds[0]["qty"], adds=adds, removes=[])
    elif kind == "several":
        lists = {}
        for side in ("add", "rem"):
            items = []
            for i in range(1, MULTI_ROWS + 1):
                raw = str(form.get(f"{side}_sku_{i}", "")).strip()
                if raw:
                    sku = None if raw.lower() in ("personal", "own") else sku_of(cat, raw)
                    items.append({"sku": sku, "qty": quantity(form.get(f"{side}_qty_{i}", "1"), raw)})
            lists[side] = items
        if not lists["add"] and not lists["rem"]:
            raise ValueError("several products: name at least one product that went in or came out")
        first = (lists["add"] or lists["rem"])[0]
        v = dict(base, sku=first["sku"], qty=first["qty"], adds=lists["add"], removes=lists["rem"])
    elif kind == "personal":
        v = dict(base, sku=None, qty=1)
    elif kind == "nothing":
        v = dict(base, sku=None, qty=0)
    else:
        raise ValueError("unknown verdict kind")
    try:
        P.decode_verdict(json.dumps(v).encode())
    except P.ProtocolError as e:
        raise ValueError(f"the gateway would reject this verdict: {e}") from None
    return v


def screen_choice(prompt: dict, form: dict) -> dict:
    """The §11 `choice` of a tap on the cart screen (an option, own item, none, a barcode)."""
    what = form.get("choice")
    if what == "personal":
        return {"personal": True}
    if what == "none":
        return {"none": True}
    if what == "barcode":
        code = str(form.get("barcode", "")).strip()
        if not code.isdigit() or not 8 <= len(code) <= 14:
            raise ValueError("a barcode is 8 to 14 digits")
        return {"barcode": code}
    if what == "option":
        try:
            i = int(form.get("option", -1))
        except ValueError:
            raise ValueError("no such option") from None
        opts = prompt.get("options", [])
        if not 0 <= i < len(opts):
            raise ValueError("no such option")
        o = opts[i]
        return {"skus": list(o["skus"])} if o.get("skus") else {"sku": o["sku"]}
    raise ValueError("unknown choice")


def screen_answer(prompt: dict, form: dict) -> dict:
    ans = {"v": 1, "prompt_id": prompt["prompt_id"], "answer_id": f"scr-{uuid.uuid4().hex[:24]}",
           "choice": screen_choice(prompt, form)}
    try:
        P.decode_answer(json.dumps(ans).encode())
    except P.ProtocolError as e:
        raise ValueError(f"the gateway would reject this answer: {e}") from None
    return ans
