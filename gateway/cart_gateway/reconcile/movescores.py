"""One cart's scored movements, kept so an answer reuses its movement's score."""
from __future__ import annotations

from .catindex import Scored
from .weightbook import WeightBook

STATS = {"pruned": 0, "full": 0, "fallback": 0, "reused": 0,   # events scored each way (bench figures)
         "swap_weight_fallback": 0}   # scorings whose swap candidates took in the weight fits (swaps.py)


class MovementScores:
    """One cart's scored movements, kept while they may be scored again: a movement that
    asked the shopper is scored again when the answer comes, and if what the score reads of
    the cart has not changed since (the basket, the personal items, the vision, recent
    removals) the decision's score is the answer's. Transient (not part of the cart's state): after a
    restart the answer is simply scored again. Entries live only while their movement is
    open (waiting, asked or answered), so memory is bounded by the open prompts.

    The WeightBook is not part of the key: learning from other carts between a decision and
    its answer moves a few SKUs' figures by a gram or so, and the answer is checked against
    the evidence the shopper was asked about (the simulator's decisions are the same either
    way, docs/gateway.md)."""

    def __init__(self, book: WeightBook):
        self.book = book
        self._by_move: dict[str, tuple[tuple, Scored]] = {}

    @staticmethod
    def _inputs(delta_g, noise_g, lines, personal, vision, recent_out) -> tuple:
        lf = tuple((ln["line_id"], ln["sku"], ln["qty"], ln["status"], ln["by_weight"], ln["weight_g"]) for ln in lines)
        pf = tuple((p["pid"], p["weight_g"]) for p in personal)
        vf = None if vision is None else (tuple(vision.scores.items()), vision.none_score, tuple(vision.barcodes),
                                          vision.n_frames)
        return (float(delta_g), float(noise_g), lf, pf, vf, tuple(recent_out or ()))

    def get(self, move_id: str, open_moves: set, compute, delta_g, noise_g, lines, personal, vision,
            recent_out=None) -> Scored:
        """The score of `move_id` for these inputs: the kept one if they are unchanged, else
        `compute()`. Drops the entries of movements not in `open_moves`."""
        for mid in [m for m in self._by_move if m not in open_moves and m != move_id]:
            del self._by_move[mid]
        key = self._inputs(delta_g, noise_g, lines, personal, vision, recent_out)
        kept = self._by_move.get(move_id)
        if kept is not None and kept[0] == key:
            STATS["reused"] += 1
            sc = kept[1]
            arrays = dict(sc.arrays, lines=lines, personal=personal) if sc.arrays else sc.arrays
            return Scored(_copy_hyps(sc.hyps), list(sc.evidence), sc.best_fit_z, list(sc.unknown_barcodes), arrays)
        sc = compute()
        self._by_move[move_id] = (key, Scored(_copy_hyps(sc.hyps), list(sc.evidence), sc.best_fit_z,
                                               list(sc.unknown_barcodes), sc.arrays))
        return sc


def _copy_hyps(hyps: list[dict]) -> list[dict]:
    """Copies the engine may change without touching the kept ones (a hypothesis holds
    scalars and, for multi-product ones, lists of SKUs and dicts of counts)."""
    out = []
    for h in hyps:
        c = dict(h)
        for k, v in c.items():
            if isinstance(v, (list, dict)):
                c[k] = type(v)(v)
        out.append(c)
    return out
