"""The topic tree (§2): `parse_topic` names the cart, board or gateway and the message kind,
or raises ProtocolError naming the topic part that was wrong."""
from __future__ import annotations

from dataclasses import dataclass

from .base import BOARDS, ID_RE, ProtocolError


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
