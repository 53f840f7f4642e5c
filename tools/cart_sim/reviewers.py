"""The simulated store reviewer: decides from what the review page shows, and takes time.

The review page (gateway web, templates/review.html; protocol §13) shows the
reason, the weight change, the barcodes read, the movement's camera frames, the
weight trace, the basket so far and the gateway's candidates, and lets the
reviewer search the catalogue (which shows each product's weight). `ReviewPage`
holds exactly that; `Reviewer.review` decides from it alone:

- products recognised in the frames (clear views always, hard and half
  out-of-view ones with `p_read_hard` / `p_read_oov`) and barcodes on the page
  are explained against the weight change: which of them went in or came out,
  how many (catalogue weights, removals only of what the basket holds);
- no product in view: a personal item in view is "not a product"; a change
  under ~15 g with only hands is "nothing changed"; else the one candidate whose
  weight fits;
- when the page cannot tell (no fit, or several), a member of staff walks to
  the cart and looks (`at_cart`, the truth of the movement), which takes
  `visit_s_*` on top;
- with `error_rate` the reviewer taps a wrong row (another candidate, or a
  count off by one).

`truth_verdict` is the judge's answer (what really happened in this movement):
it is used for the cart visit and to count reviewer errors, never by the page.
"""
from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from .shoppers import Action

MAX_UNITS = 6                # counts a reviewer considers per product
SMALL_CHANGE_G = 15.0        # a change a hand or a lean leaves, not a product (estimate)
PLACE_TOLERANCE = (15.0, 0.08)   # g, share: a pack's weight on the page vs the change (e-mark spread + noise)


@dataclass(frozen=True)
class FrameShown:
    """What one stored frame of the movement shows a person (from the scene it was drawn from)."""
    frame_id: str
    sku: str | None          # the product in view, None for none
    condition: str           # clear, hard, oov, hand, covered
    personal: str | None     # a personal item in view (bag, phone, toy...)

    @classmethod
    def of_scene(cls, frame_id: str, scene_key: str) -> "FrameShown":
        parts = scene_key.split("|")
        sku = None if parts[0] == "-" else parts[0]
        return cls(frame_id, sku, parts[1], parts[3] if len(parts) > 3 else None)


@dataclass(frozen=True)
class PageCandidate:
    sku: str
    score: float
    kind: str
    skus: tuple


@dataclass(frozen=True)
class BasketLine:
    sku: str | None
    qty: int
    status: str


@dataclass(frozen=True)
class ReviewPage:
    review_id: str
    reason: str
    delta_g: float
    noise_g: float
    candidates: tuple
    barcodes: tuple
    frames: tuple            # FrameShown, frames still stored
    basket: tuple            # BasketLine

    @classmethod
    def build(cls, request: dict, basket: dict | None, scene_of: Callable[[str], str | None]) -> "ReviewPage":
        """From the §13 review request, the §10 basket and the stored frames (`scene_of`: the
        scene a frame id was taken of, None when there is no such frame)."""
        frames = []
        for fid in request.get("frames", []):
            key = scene_of(fid)
            if key is not None:
                frames.append(FrameShown.of_scene(fid, key))
        w = request.get("weight", {})
        return cls(request["review_id"], request.get("reason", ""), float(w.get("delta_g", 0.0)),
                   float(w.get("noise_g", 1.0)),
                   tuple(PageCandidate(c["sku"], c.get("score", 0.0), c.get("kind", ""),
                                       tuple(c.get("skus") or [c["sku"]])) for c in request.get("candidates", [])),
                   tuple(request.get("barcodes", [])), tuple(frames),
                   tuple(BasketLine(ln["sku"], ln["qty"], ln["status"]) for ln in (basket or {}).get("lines", [])))


@dataclass
class Review:
    verdict: dict            # §13 fields: sku, qty (+ adds / removes)
    clear_ms: int            # review opened -> verdict sent
    at_cart: bool = False    # the page could not tell: staff looked in the cart
    slip: bool = False       # a tap on a wrong row


def _verdict(ins: list, outs: list) -> dict:
    if not ins and not outs:
        return {"sku": None, "qty": 0}
    if len(ins) + len(outs) == 1:
        sku, q = (ins or outs)[0]
        return {"sku": sku, "qty": q}
    first = (ins or outs)[0]
    return {"sku": first[0], "qty": first[1], "adds": [{"sku": s, "qty": q} for s, q in ins],
            "removes": [{"sku": s, "qty": q} for s, q in outs]}


def normalised(verdict: dict, delta_g: float) -> frozenset:
    """A verdict as a set of (in|out, sku, qty), to compare two verdicts on one movement."""
    if "adds" in verdict or "removes" in verdict:
        return frozenset([("in", x["sku"], x["qty"]) for x in verdict.get("adds") or []]
                         + [("out", x["sku"], x["qty"]) for x in verdict.get("removes") or []])
    if not verdict.get("qty"):
        return frozenset()
    return frozenset([("in" if delta_g > 0 else "out", verdict["sku"], verdict["qty"])])


class Reviewer:
    def __init__(self, cfg: dict, catalogue, rng: random.Random):
        self.cfg, self.cat, self.rng = cfg, catalogue, rng

    # --- time -----------------------------------------------------------------
    def _lognormal_s(self, median: float, p95: float) -> float:
        sigma = math.log(max(p95, median) / median) / 1.645 if median > 0 else 0.0
        return median * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def clear_ms(self, at_cart: bool) -> int:
        c = self.cfg
        s = self._lognormal_s(c["clear_s_median"], c["clear_s_p95"])
        if at_cart:
            s += self._lognormal_s(c["visit_s_median"], c["visit_s_p95"])
        return int(1000 * s)

    # --- the decision ----------------------------------------------------------
    def review(self, page: ReviewPage, at_cart: Callable[[], dict]) -> Review:
        v = self.from_page(page)
        visit = v is None
        if visit:
            v = at_cart()
        slip = self.rng.random() < self.cfg["error_rate"]
        if slip:
            v = self._slip(page, v)
        return Review(v, self.clear_ms(visit), at_cart=visit, slip=slip)

    def _recognised(self, page: ReviewPage) -> list:
        p_read = {"clear": 1.0, "hard": self.cfg["p_read_hard"], "oov": self.cfg["p_read_oov"]}
        seen: list = []
        for f in page.frames:
            if f.sku and f.sku not in seen and self.rng.random() < p_read.get(f.condition, 0.0):
                seen.append(f.sku)
        for code in page.barcodes:
            s = self.cat.by_ean(code)
            if s is not None and s.sku not in seen:
                seen.append(s.sku)
        return seen

    def from_page(self, page: ReviewPage) -> dict | None:
        """The verdict the page supports, or None when it cannot tell (a cart visit)."""
        d = page.delta_g
        seen = self._recognised(page)
        personal = any(f.personal for f in page.frames)
        if seen:
            fits = self._explanations(seen[:3], d, page, personal)
            return fits[0] if fits else None
        if personal:
            return {"sku": None, "qty": 1}
        if abs(d) < SMALL_CHANGE_G:
            return {"sku": None, "qty": 0}
        found: dict = {}
        for c in page.candidates:
            for v in self._explanations(sorted(set(c.skus)), d, page, False)[:1]:
                found.setdefault(normalised(v, d), v)
        return next(iter(found.values())) if len(found) == 1 else None

    def _explanations(self, skus: list, d: float, page: ReviewPage, personal: bool) -> list:
        """Verdicts built from `skus` (each in, out or not at all, in whole units) whose catalogue
        weights explain the change `d`; the ones using the most products first, then fewest units."""
        held = Counter()
        for ln in page.basket:
            if ln.sku and ln.status == "accepted":
                held[ln.sku] += ln.qty
        choices = []
        for s in skus:
            if s not in self.cat:
                return []
            by_weight = self.cat[s].sold_by_weight
            top_in = 1 if by_weight else MAX_UNITS
            top_out = min(1 if by_weight else MAX_UNITS, held[s])
            choices.append([0] + list(range(1, top_in + 1)) + [-k for k in range(1, top_out + 1)])
        out = []
        for counts in itertools.product(*choices):
            if not any(counts):
                continue
            packed = [(c, self.cat[s].weight_mean_g) for s, c in zip(skus, counts)
                      if c and not self.cat[s].sold_by_weight]
            fixed = sum(c * w for c, w in packed)
            spread = sum(abs(c) * w for c, w in packed)      # every pack's own spread counts, in or out
            free = [(s, c) for s, c in zip(skus, counts) if c and self.cat[s].sold_by_weight]
            rest = d - fixed
            extra = []
            if free:     # a produce bag takes the weight the packs do not explain, of its sign
                if any(rest * c <= 5.0 for _, c in free):
                    continue
                rest = 0.0
            elif personal and abs(rest) > SMALL_CHANGE_G:
                extra = [(None, 1 if rest > 0 else -1)]
                rest = 0.0
            tol = max(PLACE_TOLERANCE[0], PLACE_TOLERANCE[1] * spread)
            if abs(rest) > tol:
                continue
            items = [(s, c) for s, c in zip(skus, counts) if c] + extra
            ins = [(s, c) for s, c in items if c > 0]
            outs = [(s, -c) for s, c in items if c < 0]
            out.append((-sum(1 for c in counts if c), sum(abs(c) for c in counts), abs(rest), _verdict(ins, outs)))
        out.sort(key=lambda x: x[:3])
        return [x[3] for x in out]

    def _slip(self, page: ReviewPage, v: dict) -> dict:
        """A tap on a wrong row: another candidate, else the count off by one."""
        named = {x[1] for x in normalised(v, page.delta_g)}
        others = [c.sku for c in page.candidates if c.sku not in named]
        if others:
            return {"sku": self.rng.choice(others), "qty": 1}
        if v.get("qty") and "adds" not in v and "removes" not in v:
            return dict(v, qty=v["qty"] + 1)
        return {"sku": None, "qty": 1}


# --- the judge: what really happened in a movement ---------------------------------
def _part_of(action: Action, delta_g: float) -> str | None:
    """Which part of the action a settled weight change is: "whole", "in" (only what went
    in), "out" (only what came out), or None when it is none of them (a hand, a lean).
    The judge's knowledge (it knows the action's grams); no person in the store has it."""
    parts = {"whole": sum(g for _, _, g in action.adds) - sum(g for _, _, g in action.removes),
             "in": sum(g for _, _, g in action.adds), "out": -sum(g for _, _, g in action.removes)}
    if action.kind == "put_back":
        parts.pop("whole")       # out and back in are two movements
    parts = {k: v for k, v in parts.items() if v}
    if not parts:
        return None
    which = min(parts, key=lambda k: abs(parts[k] - delta_g))
    if abs(parts[which] - delta_g) > max(25.0, 0.1 * abs(parts[which])):
        return None
    return which


def truth_verdict(action: Action | None, delta_g: float, done_in: dict | None = None,
                  done_out: dict | None = None) -> dict:
    """The truth of this movement: the part of the action not yet accounted for.
    `done_in` / `done_out`: what the gateway already charged / credited for this action
    (per SKU, units; grams for produce; "personal" for personal items). Returns the §13
    fields: sku/qty, plus adds/removes lists when one SKU cannot say it."""
    if action is None:
        return {"sku": None, "qty": 0}

    def remaining(items, done):
        done = dict(done or {})
        out = []
        for sku, units, _ in items:
            key = "personal" if sku is None else sku
            n = 1 if sku is None else units
            got = done.get(key, 0)
            taken = min(n, int(got)) if got >= 1 else 0     # produce: grams, so any charge covers the bag
            if n - taken > 0:
                out.append((sku, n - taken))
            done[key] = got - taken
        return out

    rem_in, rem_out = remaining(action.adds, done_in), remaining(action.removes, done_out)
    which = _part_of(action, delta_g)
    if action.kind in ("swap", "add") and rem_in and rem_out and which in ("whole", None):
        ins, outs = rem_in, rem_out
    elif delta_g > 0 and rem_in:
        ins, outs = rem_in, []
    elif delta_g < 0 and rem_out:
        ins, outs = [], rem_out
    else:
        return {"sku": None, "qty": 0}     # nothing of this action is left to account for: a hand, a lean
    return _verdict(ins, outs)
