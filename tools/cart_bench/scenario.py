"""Seeded shopping sessions for the determinism tests and the micro-benchmark.

A shopper adds, removes, lifts-and-replaces and swaps items; the scale reports
true weights with noise; the camera sees the item with a random confidence
(sometimes not at all, sometimes with a barcode). The driver answers prompts
and reviews with the truth, as a shopper and a reviewer would.
"""
from __future__ import annotations

import numpy as np

from cart_gateway.detectors.api import Candidate
from cart_gateway.reconcile.inputs import Answer, Unsettled, Verdict, Vision, WeightChange


def Cand(sku, score):
    return Candidate(sku=sku, score=score, cx=0.5, cy=0.5)


class Session:
    def __init__(self, skus: list, cart: str = "c1", seed: int = 0, p_vision: float = 0.85,
                 p_barcode: float = 0.1, noise_g: float = 0.8):
        self.rng = np.random.default_rng(seed)
        self.skus = [s for s in skus]
        self.cart, self.p_vision, self.p_barcode, self.noise_g = cart, p_vision, p_barcode, noise_g
        # real packs differ from the catalogue: a bias within the catalogue sd, half its spread
        self.true = {s.sku: (s.weight_mean_g + float(self.rng.normal(0, s.weight_sd_g)), s.weight_sd_g / 2)
                     for s in self.skus}
        self.seq, self.t, self.frame, self.total = 0, 1000, 0, 0.0
        self.basket: list[tuple[str, float]] = []   # (sku, true weight of that pack)
        self.truth: dict[int, dict] = {}            # unsettled seq -> what really happened

    def _weight_of(self, s) -> float:
        if s.sold_by_weight:
            return float(self.rng.uniform(150, 2500))
        mu, sd = self.true[s.sku]
        return max(5.0, float(self.rng.normal(mu, sd)))

    def _vision(self, sku: str | None, useq: int) -> Vision | None:
        if self.rng.random() > self.p_vision:
            return None
        conf = float(self.rng.uniform(0.4, 0.99))
        other = self.skus[int(self.rng.integers(len(self.skus)))].sku
        frames = [[Cand(sku, conf), Cand(other, (1 - conf) * 0.8)]] * 3
        codes = []
        if sku and self.rng.random() < self.p_barcode:
            codes = [next(s.ean13 for s in self.skus if s.sku == sku)]
        self.frame += 3
        return Vision(self.t + 150, frames, codes, f"{self.cart}/scale/1/{useq}",
                      [f"{self.cart}/1/{self.frame - i}" for i in (2, 1, 0)])

    def movement(self) -> list:
        """One shopper action as the boards would report it (vision sometimes first)."""
        r = self.rng.random()
        self.seq += 1
        useq = self.seq
        evs = [Unsettled(1, useq, self.t, self.total)]
        if self.basket and r < 0.25:                     # take one item out
            i = int(self.rng.integers(len(self.basket)))
            sku, w = self.basket.pop(i)
            delta, seen, truth = -w, sku, {"kind": "remove", "sku": sku}
        elif r < 0.3:                                     # lift and put back
            s = self.skus[int(self.rng.integers(len(self.skus)))]
            delta, seen, truth = float(self.rng.normal(0, 0.5)), s.sku, {"kind": "none", "sku": None}
        elif r < 0.33:                                    # a personal item
            delta, seen, truth = float(self.rng.uniform(80, 900)), None, {"kind": "personal", "sku": None}
        else:
            s = self.skus[int(self.rng.integers(len(self.skus)))]
            w = self._weight_of(s)
            self.basket.append((s.sku, w))
            delta, seen, truth = w, s.sku, {"kind": "add", "sku": s.sku}
        vis = self._vision(seen, useq)
        self.seq += 1
        self.total += delta
        self.t += 900
        wc = WeightChange(1, self.seq, self.t, round(delta + float(self.rng.normal(0, self.noise_g)), 1),
                          round(self.total, 1), self.noise_g, useq)
        if vis is not None:
            evs += [vis, wc] if self.rng.random() < 0.7 else [wc, vis]   # out of order 30 % of the time
        else:
            evs.append(wc)
        self.truth[useq] = truth
        self.t += 2000
        return evs


def drive(engine, session: Session, n_moves: int, on_step=None):
    """Feed `n_moves` actions; answer prompts and reviews with the truth. Yields per-input timings if asked."""
    answers = 0
    for _ in range(n_moves):
        for ev in session.movement():
            fx = engine.step(ev)
            if on_step:
                engine = on_step(engine, ev) or engine
            answers += _respond(engine, session, fx)
        fx = engine.advance(session.t)
        answers += _respond(engine, session, fx)
    return engine


def _truth_of(engine, session, move_id):
    mv = engine.movement(move_id)
    return session.truth.get(mv["unsettled_seq"], {"kind": "none", "sku": None})


def _respond(engine, session, fx) -> int:
    n = 0
    for p in fx["prompts_opened"]:
        t = _truth_of(engine, session, engine.s["prompts"][p["prompt_id"]]["move_id"])
        if t["kind"] == "personal":
            a = Answer(p["prompt_id"], f"a-{p['prompt_id']}", session.t, personal=True)
        elif t["sku"]:
            a = Answer(p["prompt_id"], f"a-{p['prompt_id']}", session.t, sku=t["sku"])
        else:
            a = Answer(p["prompt_id"], f"a-{p['prompt_id']}", session.t, none=True)
        n += 1 + _respond(engine, session, engine.step(a))
    for r in fx["reviews_opened"]:
        t = _truth_of(engine, session, engine.s["reviews"][r["review_id"]]["move_id"])
        qty = 0 if t["kind"] == "none" else 1
        n += 1
        engine.step(Verdict(r["review_id"], f"v-{r['review_id']}", session.t, t["sku"], qty))
    return n
