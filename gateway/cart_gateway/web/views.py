"""What the pages show, as typed records built from the gateway's state and the broker's
availability: review candidates, frame labels, the store view's cart cards, and the version
strings live.js polls to know when a page is out of date."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from ..catalogue import Catalogue
from .broker import Broker
from .gwstate import FRAME_ID_RE, GatewayState, Review


def euros(cents: int | None) -> str:
    return "–" if cents is None else f"{cents / 100:.2f}"


def ago(ms: float) -> str:
    s = max(0, int(ms / 1000))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"


@dataclass(frozen=True)
class Candidate:
    sku: str | None
    skus: list[str]
    kind: str
    score: float
    name: str
    price_cents: int | None
    by_weight: bool
    known: bool          # every SKU is in this catalogue (else no verdict button)


def candidates(cat: Catalogue, request: dict, n: int) -> list[Candidate]:
    out = []
    for c in sorted(request.get("candidates", []), key=lambda c: -float(c.get("score", 0)))[:n]:
        skus = c.get("skus") or ([c["sku"]] if c.get("sku") else [])
        s = cat[c["sku"]] if c.get("sku") in cat else None
        out.append(Candidate(c.get("sku"), skus, c.get("kind", ""), float(c.get("score", 0)),
                             " + ".join(cat[k].name if k in cat else k for k in skus) or "?",
                             s.price_cents if s else None, bool(s and s.sold_by_weight),
                             bool(skus) and all(k in cat for k in skus)))
    return out


@dataclass(frozen=True)
class FrameView:
    frame_id: str
    present: bool        # still stored (retention has not deleted it)
    label: str           # "burst 1/2 (unsettled)", "still (command)", "frame"


def frames(gs: GatewayState, cart: str, frame_ids: list[str]) -> list[FrameView]:
    """Each frame with what took it: the capture event (§6.3) that lists it, a still or a burst frame."""
    present = gs.present_frames(frame_ids)
    caps: dict[tuple, tuple[dict, int]] = {}
    for d in gs.capture_events(cart):
        for i, n in enumerate(d.get("frames", [])):
            caps.setdefault((d.get("epoch"), n), (d, i))
    out = []
    for fid in frame_ids:
        _, ep, n = fid.split("/") if FRAME_ID_RE.match(fid) else ("", "0", "0")
        d, i = caps.get((int(ep), int(n)), (None, 0))
        if d is None:
            label = "frame"
        else:
            still = d.get("still")
            is_still = still is not None and (still == int(n) or (isinstance(still, list) and int(n) in still))
            label = ("still" if is_still else f"burst {i + 1}/{len(d.get('frames', []))}") + f" ({d.get('trigger', '?')})"
        out.append(FrameView(fid, fid in present, label))
    return out


@dataclass
class CartCard:
    cart: str
    online: str                   # online | offline | partial | unknown
    boards: dict[str, str]
    lines: list[dict]
    total_cents: int
    version: int
    prompts: list[dict]
    reviews: list[Review]
    checkout: str                 # idle | shopping | refused | paid
    checkout_text: str
    last_seen: str


def checkout_state(basket: dict | None, receipt: dict | None) -> tuple[str, str]:
    lines = (basket or {}).get("lines", [])
    if receipt and receipt.get("ok") and not lines:
        return "paid", f"paid: receipt {receipt.get('receipt_id')} ({euros(receipt.get('total_cents'))})"
    if receipt and not receipt.get("ok") and lines:
        return "refused", f"checkout refused: {receipt.get('reason')}"
    return ("shopping", "shopping") if lines else ("idle", "empty")


def with_pictures(cat: Catalogue, lines: list[dict]) -> list[dict]:
    return [dict(ln, known=ln.get("sku") in cat) for ln in lines]


def cart_cards(gs: GatewayState, broker: Broker, cat: Catalogue) -> list[CartCard]:
    """Every cart the gateway or the broker knows, one query per table (not per cart)."""
    ret = gs.retained("carts/")
    names = set(gs.carts()) | {t.split("/")[1] for t in ret} | broker.known_carts()
    last = gs.last_event_ms()
    now = time.time() * 1000
    reviews: dict[str, list[Review]] = {}
    for r in gs.open_reviews():
        reviews.setdefault(r.cart, []).append(r)
    out = []
    for c in sorted(names):
        basket = ret.get(f"carts/{c}/basket") or {}
        states = {b: broker.board_state(c, b) for b in ("scale", "cam")}
        online = ("online" if all(v == "online" for v in states.values()) else
                  "offline" if any(v == "offline" for v in states.values()) else
                  "partial" if any(v == "online" for v in states.values()) else "unknown")
        ck, ck_text = checkout_state(basket, ret.get(f"carts/{c}/receipt"))
        out.append(CartCard(c, online, states, with_pictures(cat, basket.get("lines", [])),
                            basket.get("total_cents", 0), basket.get("version", 0),
                            (ret.get(f"carts/{c}/screen/state") or {}).get("prompts", []), reviews.get(c, []),
                            ck, ck_text, ago(now - last[c]) + " ago" if c in last else "never"))
    return out


# ---------------------------------------------------------------- versions for live.js
def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def queue_version(gs: GatewayState) -> str:
    return _digest([r.review_id for r in gs.open_reviews()])


def store_version(gs: GatewayState, broker: Broker) -> str:
    # retained rows are INSERT OR REPLACE'd: their highest rowid changes with every publish
    row = gs.db().execute("SELECT MAX(rowid), COUNT(*) FROM retained").fetchone()
    status = sorted((t, d.get("state")) for t, d in list(broker.status.items()))
    return _digest(row, queue_version(gs), status)


def screen_version(gs: GatewayState, cart: str) -> str:
    return _digest([gs.retained_one(f"carts/{cart}/{t}") for t in ("basket", "screen/state", "receipt")])
