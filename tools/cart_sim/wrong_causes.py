"""Why a wrong basket is wrong: the decision that charged the wrong thing (docs/simulation.md §6.04).

The bench knows what each shopper action really did (its truth) and every decision of the
gateway that changed the basket for it (its charges). The culprit of a wrong action is the
first charge after which the action's running total holds something that did not happen, or
more of it than happened; when every charge was true but something is still missing, it is
the last charge (it left part out) or, without any charge, the movement was missed. A wrong
basket is counted once, under the cause of its first wrong action."""
from __future__ import annotations

from dataclasses import dataclass

# produce lines are compared in grams within the scale's accuracy, as the judge does
PRODUCE_TOL_G, PRODUCE_TOL_SHARE = 10.0, 0.03


@dataclass(frozen=True)
class AskInfo:
    """What the bench knows of one prompt or review that a decision answered."""
    error: bool = False        # the shopper tapped another picture / the reviewer's verdict was not the truth
    about_other: bool = False  # the prompt was about another action than the shopper's latest


@dataclass(frozen=True)
class Charge:
    """One decision that changed the basket for an action: how it was decided, what it charged."""
    how: str
    effect: dict


def decision_how(d: dict, asked: AskInfo | None = None) -> str:
    """The decision's kind as the cause table names it (from the decision log record `d`)."""
    ev = set(d.get("evidence") or ())
    reason = d.get("reason", "")
    asked = asked or AskInfo()
    if d["outcome"] == "accept":
        if d.get("camera_led"):
            return "accepted: camera-led (the seen products fit the weight)"
        if "barcode" in ev:
            return "accepted: barcode"
        if reason.startswith("the camera saw only"):
            return "accepted: units seen whole by the camera"
        if "vision" in ev:
            return "accepted: camera + weight posterior"
        return "accepted: weight only"
    if d["outcome"] == "answer":
        if asked.error:
            return "shopper answer: a slip (tap on another picture)"
        if asked.about_other:
            return "shopper answer: about another action"
        if "barcode" in ev:
            return "shopper answer: scanned barcode"
        if "plus the rest of the weight" in reason:
            return "shopper answer: tap plus the rest of the weight"
        return "shopper answer: as meant"
    if d["outcome"] == "verdict":
        return "reviewer: wrong verdict" if asked.error else "reviewer: right verdict"
    return d["outcome"]


def _over(t: float, v: float, produce: bool) -> bool:
    """Running total v holds something that did not happen (wrong sign) or more than truth t."""
    if produce:
        tol = max(PRODUCE_TOL_G, PRODUCE_TOL_SHARE * abs(t))
        return (abs(t) <= PRODUCE_TOL_G and abs(v) > tol) or (t * v < 0 and abs(v) > tol) \
            or abs(v) - abs(t) > tol
    return (t == 0 and v != 0) or t * v < 0 or abs(v) > abs(t)


def culprit(truth: dict, charges: list[Charge], is_produce, missed: str) -> str:
    """`<how>: <what>` for a wrong action; truth and effects: key -> signed units (grams for
    produce, "personal" for personal items). `missed`: the cause when nothing was charged."""
    run: dict = {}
    for c in charges:
        for k, v in c.effect.items():
            run[k] = run.get(k, 0) + v
        for k, v in run.items():
            prod = k != "personal" and is_produce(k)
            t = truth.get(k, 0)
            if _over(t, v, prod):
                if prod and t * v > 0:
                    return f"{c.how}: produce weight"
                return f"{c.how}: {'wrong item' if t == 0 or t * v < 0 else 'too many'}"
    changed = [c for c in charges if c.effect]
    if changed:
        return f"{changed[-1].how}: part left out"
    errs = [c for c in charges if c.how.startswith(("reviewer: wrong", "shopper answer: a slip"))]
    if errs:
        return f"{errs[0].how}: nothing charged"
    return missed


def missed_cause(windows: int, weight_events: int, decided: int) -> str:
    """An action no decision charged: what the bench saw of its movement."""
    if not windows:
        return "missed: the scale saw no movement"
    if not weight_events:
        return "missed: no weight event closed the window"
    if not decided:
        return "missed: weight event, no decision (merged, cancelled or lost)"
    return "missed: decided, nothing charged"
