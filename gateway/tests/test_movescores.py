"""A movement's score kept for its answer (reconcile/movescores.py): reused while nothing it
read of the cart has changed, scored again when anything has."""
from test_reconcile_cases import Cart

from cart_gateway.reconcile import Answer
from cart_gateway.reconcile.catindex import Scored
from cart_gateway.reconcile.movescores import STATS, MovementScores


def _line(i, sku, qty=1):
    return {"line_id": f"L{i}", "sku": sku, "qty": qty, "status": "accepted", "by_weight": False,
            "weight_g": 355.0 * qty}


class _Compute:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return Scored([{"kind": "add", "sku": "cola", "posterior": 0.5, "skus": ["cola"]}], ["weight"], 0.1, [],
                      {"lines": None, "personal": None})


def _get(ms, compute, lines, personal=(), move="m2", open_moves=("m2",), delta=355.0, vision=None):
    return ms.get(move, set(open_moves), compute, delta, 0.8, list(lines), list(personal), vision, ())


def test_unchanged_inputs_reuse_the_score_as_a_copy():
    ms, compute = MovementScores(book=None), _Compute()
    lines = [_line(1, "cola")]
    first = _get(ms, compute, lines)
    first.hyps[0]["skus"].append("chips")           # the engine may change what it was given
    again = _get(ms, compute, lines)
    assert compute.calls == 1
    assert again.hyps[0]["skus"] == ["cola"] and again.arrays["lines"] == lines


def test_any_change_to_what_the_score_read_scores_again():
    lines = [_line(1, "cola")]
    for now in ([_line(1, "cola", qty=2)],                 # the same SKU again: the line changed
                lines + [_line(2, "chips")],               # another line (an earlier movement's answer)
                [_line(2, "chips")],                       # the old line went
                []):                                       # the basket emptied
        ms, compute = MovementScores(book=None), _Compute()
        _get(ms, compute, lines)
        _get(ms, compute, now)
        assert compute.calls == 2, now
    for kw in ({"delta": 356.0}, {"personal": [{"pid": "P1", "weight_g": 90.0}]}):
        ms, compute = MovementScores(book=None), _Compute()
        _get(ms, compute, lines)
        _get(ms, compute, lines, **kw)
        assert compute.calls == 2, kw


def test_a_closed_movements_score_is_dropped():
    ms, compute = MovementScores(book=None), _Compute()
    _get(ms, compute, [])
    _get(ms, compute, [], move="m3", open_moves=("m3",))       # m2 closed meanwhile
    _get(ms, compute, [], move="m2", open_moves=("m2", "m3"))
    assert compute.calls == 3


def _answered(later=()):
    """soup or beans (same weight, no camera) is asked; `later` movements go in before the answer."""
    c = Cart()
    c.move(355.0, [("cola", 0.95)])
    assert c.move(421.0)[-1]["outcome"] == "ask"
    for delta, dets in later:
        assert c.move(delta, dets)[-1]["outcome"] == "accept"
    p = c.e.open_prompts()[0]
    before = STATS["reused"]
    c.t += 3000
    c.e.step(Answer(p["prompt_id"], "a-" + p["prompt_id"], c.t, sku="soup"))
    units = {ln["sku"]: ln["qty"] for ln in c.e.basket()["lines"] if ln["status"] == "accepted"}
    return units, STATS["reused"] - before


def test_an_answer_reuses_its_decisions_score_until_the_basket_changes():
    assert _answered() == ({"cola": 1, "soup": 1}, 1)
    # another item went in before the answer: scored against the basket that holds it
    assert _answered([(1530.0, [("water", 0.95)])]) == ({"cola": 1, "soup": 1, "water": 1}, 0)
