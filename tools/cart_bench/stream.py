"""The shopping streams the gateway benchmarks send: movements, in-stream answers, the truth."""
from __future__ import annotations

import json
import random

from cart_gateway.catalogue import Catalogue

from .testkit import Board

N_CARTS = 20        # latency: movements spread over a store's carts, ~15 items per basket as in a real shop
ANSWER_AFTER = 4    # in-stream answers: movement k's prompt is answered after the cart's movement k + 4


def shop(n: int, seed: int = 7, catalogue=None, carts: int = N_CARTS):
    """n movements (cart index, sku, delta_g): packaged SKUs at their catalogue weight
    (`catalogue`: any iterable of Sku records; default the packaged catalogue)."""
    rnd = random.Random(seed)
    items = [s for s in (catalogue if catalogue is not None else Catalogue.load()) if not s.sold_by_weight]
    return [(i % carts, s.sku, round(s.weight_mean_g, 1)) for i, s in ((i, rnd.choice(items)) for i in range(n))]


def ingest_stream(n: int, carts: list[str], answers: bool = False, catalogue=None):
    """n events (unsettled + weight pairs) round-robin over the carts, and each cart's true SKUs.

    `answers`: also put the screens' answers in the stream. Every weight-only movement asks
    (prompt `<cart>-p<k>` for the cart's k-th), and is decided once the cart's clock is 1.5 s
    past it: 4 movements (2 s of board time) later its prompt is open, so the answer goes there.
    The last 4 movements of each cart stay unanswered."""
    boards = [Board(c) for c in carts]
    msgs: list[tuple[str, bytes]] = []
    truth: dict[str, list] = {}
    moves = shop(n // 2, catalogue=catalogue)
    for k in range(n // 2):
        b = boards[k % len(boards)]
        mine = truth.setdefault(b.cart, [])
        mine.append(moves[k][1])
        msgs += b.movement(moves[k][2])
        j = len(mine) - ANSWER_AFTER
        if answers and j >= 1:
            pid = f"{b.cart}-p{j}"
            msgs.append((f"carts/{b.cart}/screen/answer", json.dumps(
                {"v": 1, "prompt_id": pid, "answer_id": "a-" + pid, "choice": {"sku": mine[j - 1]}}).encode()))
    return msgs, truth
