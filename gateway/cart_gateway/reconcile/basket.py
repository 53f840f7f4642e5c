"""The ledger: basket lines, personal items, what each decision charged or credited, learning.

Applying a hypothesis (or a verdict's item lists) changes lines by units, produce lines by
weight, personal items by weight; every change is recorded as the decision's `effect`.
Confirmed single units teach the WeightBook, confirmed produce bags the ProduceBook.
`basket()` is the §10 payload, built by the protocol's output model.
"""
from __future__ import annotations

import math
from collections import Counter

from .. import protocol as P
from .state import ReconcileError

_PAYLOAD_KEYS = ("line_id", "sku", "name", "qty", "weight_g", "unit_price_cents", "price_cents", "status")


class BasketMixin:
    # Every change to s["lines"] / s["personal"] goes through these methods and is marked in
    # self.dirty (state.Dirty: what the store must write) and drops the line's cached §10 payload.
    def _touch_line(self, line_id: str) -> None:
        self.dirty.lines.add(line_id)
        self._line_payloads.pop(line_id, None)
        self._lines_view = None

    def _touch_personal(self) -> None:
        self.dirty.personal = True

    def _line_by_id(self, line_id):
        for ln in self.s["lines"]:
            if ln["line_id"] == line_id:
                return ln
        return None

    def _add_units(self, sku: str, qty: int, weight_g: float, move_id: str) -> None:
        item = self.cat.items[sku]
        if item.sold_by_weight:
            self._new_line(sku, 1, weight_g, move_id)
            return
        for ln in self.s["lines"]:
            if ln["sku"] == sku and ln["status"] == "accepted" and not ln["by_weight"]:
                self._touch_line(ln["line_id"])
                ln["qty"] += qty
                ln["weight_g"] = round(ln["weight_g"] + weight_g, 1)
                ln["price_cents"] = ln["qty"] * ln["unit_price_cents"]
                return
        self._new_line(sku, qty, weight_g, move_id)

    def _new_line(self, sku: str, qty: int, weight_g: float, move_id: str) -> None:
        item = self.cat.items[sku]
        self.s["n"]["line"] += 1
        price = (round(weight_g * item.price_cents / 1000.0) if item.sold_by_weight
                 else qty * item.price_cents)
        self._touch_line(f"L{self.s['n']['line']}")
        self.dirty.line_set = True
        self.s["lines"].append({"line_id": f"L{self.s['n']['line']}", "sku": sku, "name": item.name,
                                "qty": qty, "weight_g": round(float(weight_g), 1),
                                "unit_price_cents": int(item.price_cents), "price_cents": int(price),
                                "status": "accepted", "by_weight": bool(item.sold_by_weight),
                                "move_id": move_id})

    def _remove_units(self, ln: dict, qty: int, weight_g: float) -> None:
        self._touch_line(ln["line_id"])
        if ln["by_weight"] or qty >= ln["qty"]:
            self.dirty.line_set = True
            self.s["lines"].remove(ln)
            return
        ln["qty"] -= qty
        ln["weight_g"] = round(max(0.0, ln["weight_g"] - abs(weight_g)), 1)
        ln["price_cents"] = ln["qty"] * ln["unit_price_cents"]

    def _remove_produce(self, ln: dict, weight_g: float) -> None:
        """Some of a loose-produce line came out: its weight and price go down; all of it: the line goes."""
        self._touch_line(ln["line_id"])
        left = ln["weight_g"] - abs(weight_g)
        if left < self.cfg.partial_min_left_g:
            self.dirty.line_set = True
            self.s["lines"].remove(ln)
            return
        ln["weight_g"] = round(left, 1)
        ln["price_cents"] = int(round(left * ln["unit_price_cents"] / 1000.0))

    def _counts(self) -> tuple[dict, int]:
        """What the basket charges for, per SKU (units, or grams for produce), and personal items."""
        c: dict = {}
        for ln in self.s["lines"]:
            if ln["status"] == "accepted" and ln["sku"]:
                c[ln["sku"]] = round(c.get(ln["sku"], 0) + (ln["weight_g"] if ln["by_weight"] else ln["qty"]), 1)
        return c, len(self.s["personal"])

    def _effect(self, before: tuple[dict, int]) -> dict:
        """The basket change since `before` (recorded with the decision: what was charged or credited)."""
        (b, bp), (a, ap) = before, self._counts()
        d = {k: round(a.get(k, 0) - b.get(k, 0), 1) for k in sorted(set(a) | set(b))}
        out = {k: v for k, v in d.items() if v}
        if ap != bp:
            out["personal"] = ap - bp
        return out

    def _apply(self, mv: dict, h: dict) -> None:
        """Apply an accepted hypothesis to the basket."""
        before = self._counts()
        self._apply_h(mv, h)
        mv["effect"] = self._effect(before)
        self._note_removals(mv)

    def _note_removals(self, mv: dict) -> None:
        """Packaged units just taken out: context for a put-back (`readd`)."""
        out = [k for k, v in mv.get("effect", {}).items()
               if v < 0 and k != "personal" and not self.cat.items[k].sold_by_weight]
        if out or "recent_out" in self.s:
            keep = [r for r in self.s.get("recent_out", [])
                    if self.s["now_ms"] - r["mono_ms"] <= self.cfg.readd_window_ms]
            self.s["recent_out"] = (keep + [{"sku": k, "mono_ms": mv["mono_ms"]} for k in out])[-16:]

    def _split(self, skus_qty: list[tuple[str, int]], total_g: float) -> list[float]:
        """Share a movement's weight among products in proportion to their expected weights."""
        exp = [q * self.book.params(s)[0] for s, q in skus_qty]
        t = sum(exp)
        return [abs(total_g) * e / t if t > 0 else abs(total_g) / len(exp) for e in exp]

    def _apply_h(self, mv: dict, h: dict) -> None:
        d, kind = mv["delta_g"], h["kind"]
        if kind in ("add2", "remove2", "add_multi", "remove_multi", "swap_multi"):
            self._apply_multi(mv, h)
        elif kind == "readd":
            self._add_units(h["sku"], 1, d, mv["id"])
        elif kind == "remove_part":
            ln = self._line_by_id(h["target"])
            if ln is None:
                raise ReconcileError(f"remove_part: line {h['target']} is gone")
            self._remove_produce(ln, d)
        elif kind == "add":
            self._add_units(h["sku"], h["k"], d, mv["id"])
        elif kind == "remove":
            ln = self._line_by_id(h["target"])
            if ln is None:
                raise ReconcileError(f"remove: line {h['target']} is gone")
            self._remove_units(ln, h["k"], d)
        elif kind == "swap":
            ln = self._line_by_id(h["target"])
            if ln is None:
                raise ReconcileError(f"swap: line {h['target']} is gone")
            out_w = self.book.params(h["remove_sku"])[0]
            self._remove_units(ln, 1, out_w)
            self._add_units(h["sku"], 1, d + out_w, mv["id"])
        elif kind == "personal":
            self._touch_personal()
            self.s["n"]["personal"] += 1
            self.s["personal"].append({"pid": f"P{self.s['n']['personal']}", "weight_g": round(d, 1),
                                       "move_id": mv["id"], **({"personal_class": h["personal_class"]}
                                                              if h.get("personal_class") else {})})
        elif kind == "personal_remove":
            self._touch_personal()
            self.s["personal"] = [p for p in self.s["personal"] if p["pid"] != h["target"]]
        self._fx["basket_changed"] = True
        mv["applied"] = {k: h[k] for k in ("kind", "sku", "k", "target", "skus") if k in h}

    def _apply_multi(self, mv: dict, h: dict) -> None:
        """Several products in one movement: in together, out together, or some out and others in."""
        kind = h["kind"]
        if kind == "add2":
            ins, outs = Counter(h["skus"]), Counter()
        elif kind == "remove2":
            ins, outs = Counter(), Counter(h["skus"])
        else:
            ins, outs = Counter(h.get("in", {})), Counter(h.get("out", {}))
        self._move_units(mv, list(ins.items()), list(outs.items()))

    def _move_units(self, mv: dict, ins: list, outs: list) -> None:
        """Apply (sku|None, qty) lists: packaged units by count, produce and personal items by weight.

        The weight not explained by packaged units is what produce or a personal item weighed."""
        d = mv["delta_g"]
        packaged_in = [(s, q) for s, q in ins if s is not None and not self.cat.items[s].sold_by_weight]
        packaged_out = [(s, q) for s, q in outs if s is not None and not self.cat.items[s].sold_by_weight]
        exp_in = sum(q * self.book.params(s)[0] for s, q in packaged_in)
        exp_out = sum(q * self.book.params(s)[0] for s, q in packaged_out)
        loose_in = [(s, q) for s, q in ins if s is None or self.cat.items[s].sold_by_weight]
        loose_out = [(s, q) for s, q in outs if s is None or self.cat.items[s].sold_by_weight]
        rest = d - exp_in + exp_out          # what the loose items (produce, personal) account for
        if not loose_in and not loose_out:
            scale = (d + exp_out) / exp_in if exp_in > 0 and d + exp_out > 0 else 1.0
        else:
            scale = 1.0
        for s, q in packaged_out:
            for _ in range(q):
                ln = next((x for x in self.s["lines"] if x["sku"] == s and x["status"] == "accepted"), None)
                if ln is not None:
                    self._remove_units(ln, 1, self.book.params(s)[0])
        for (s, q), w in zip(packaged_in, self._split(packaged_in, exp_in * scale) if packaged_in else []):
            self._add_units(s, q, w, mv["id"])
        if loose_in:
            share = max(0.0, rest) / len(loose_in)
            for s, _ in loose_in:
                if s is None:
                    self._touch_personal()
                    self.s["n"]["personal"] += 1
                    self.s["personal"].append({"pid": f"P{self.s['n']['personal']}", "weight_g": round(share, 1),
                                               "move_id": mv["id"]})
                else:
                    self._new_line(s, 1, share, mv["id"])
        if loose_out:
            share = max(0.0, -rest) / len(loose_out)
            for s, _ in loose_out:
                if s is None:
                    cands = sorted(self.s["personal"], key=lambda p: abs(p["weight_g"] - share))
                    if cands:
                        self._touch_personal()
                        self.s["personal"].remove(cands[0])
                else:
                    lns = sorted((x for x in self.s["lines"] if x["sku"] == s and x["status"] == "accepted"),
                                 key=lambda x: abs(x["weight_g"] - share))
                    if lns:
                        self._remove_produce(lns[0], share)
        self._fx["basket_changed"] = True

    def _learn(self, mv: dict, h: dict) -> None:
        """A confirmed single unit refines that SKU's weight distribution."""
        if h["kind"] not in ("add", "remove") or h["k"] != 1 or h["sku"] is None:
            return
        if self.cat.items[h["sku"]].sold_by_weight:
            if h["kind"] == "add":     # a confirmed bag teaches what this produce's bags weigh
                self.produce.observe(h["sku"], mv["delta_g"])
            return
        if abs(h["z"]) > self.cfg.learn_max_z:
            return
        self.book.observe(h["sku"], abs(mv["delta_g"]))

    def _learn_verdict(self, mv: dict, sku: str) -> None:
        mean, sd = self.book.params(sku)
        z = (abs(mv["delta_g"]) - mean) / math.sqrt(sd * sd + self.cfg.sensor_noise_g ** 2)
        self._learn(mv, {"kind": "add", "sku": sku, "k": 1, "z": z})

    def basket(self) -> dict:
        """§10 basket payload (without transport fields the service adds)."""
        out, lines = self.basket_parts()
        out["lines"] = [dict(ln) for ln in lines]    # the caller's to change (the cache keeps its own)
        return out

    def basket_parts(self) -> tuple[dict, list[dict]]:
        """The §10 payload without its lines (`lines` empty), and the lines: the same objects
        from call to call while a line is unchanged (the service caches their JSON by it);
        not to be changed by the caller."""
        head, lines, pending = self.basket_pieces()
        return head, [*lines, *pending]

    def basket_pieces(self) -> tuple[dict, list[dict], list[dict]]:
        """basket_parts with the basket's lines and the pending lines apart: `lines` is the same
        list object until a line changes (the service reuses its joined JSON by it)."""
        s = self.s
        view = self._lines_view       # the lines' payloads and total: rebuilt only after a line changed
        if view is None or view[0] is not s["lines"] or view[1] != len(s["lines"]):
            cache = self._line_payloads       # a line's payload is built (and checked) once per change
            payloads = []
            for ln in s["lines"]:
                out = cache.get(ln["line_id"])
                if out is None:
                    out = cache[ln["line_id"]] = P.BasketLine(**{k: ln[k] for k in _PAYLOAD_KEYS}).model_dump()
                payloads.append(out)
            total = sum(ln["price_cents"] for ln in payloads if ln["status"] == "accepted")
            view = self._lines_view = (s["lines"], len(s["lines"]), payloads, total)
        lines, total, pending = view[2], view[3], []
        # an undecided addition shows as a pending line (built and checked once per state it is in)
        pend = self._pending_payloads
        for mv in sorted(s["moves"].values(), key=lambda m: m["id"]):
            if mv["state"] not in ("prompt", "review", "answered", "waiting") or mv["delta_g"] <= 0:
                continue
            key = (mv["state"], mv["delta_g"])
            hit = pend.get(mv["id"])
            if hit is None or hit[0] != key:
                hit = pend[mv["id"]] = (key, P.BasketLine(
                    line_id=f"P-{mv['id']}", sku=None, name="Unconfirmed item", qty=1,
                    weight_g=round(mv["delta_g"], 1), unit_price_cents=0, price_cents=0,
                    status="review" if mv["state"] == "review" else "pending").model_dump())
            pending.append(hit[1])
        if len(pend) > 2 * len(s["moves"]) + 16:      # decided: forget them
            self._pending_payloads = {k: v for k, v in pend.items() if k in s["moves"]}
        # the basket's lines are checked one by one above (cached): the model checks the rest
        out = P.Basket(v=1, cart=self.cart, version=s["version"], updated_ms=s["now_ms"], lines=[],
                       total_cents=total, open_prompts=len(s["prompts"]), open_reviews=len(s["reviews"])).model_dump()
        return out, lines, pending
