"""A cart's reconciliation state: its records, their kinds, and the JSON round trip (in one place).

The engine keeps the state as JSON types (`CartReconciler.s`), so that persisting after every
step is one `json.dumps`; this module says what that JSON holds (typed records and enums),
checks a stored state before the engine resumes it (an error names the record and the field),
and upgrades states written by earlier versions (an old database still loads: tested with a
state written at d7ec436, before issue 12).
"""
from __future__ import annotations

import copy
import json
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from typing import Any

STATE_VERSION = 1
SETTLED_KEEP = 64     # recent settled unsettled-ids, to ignore a late `unsettled`
SEEN_KEEP = 256       # answer / verdict ids remembered for idempotence


class ReconcileError(ValueError):
    """An input the engine cannot apply, or a stored state it cannot resume; the message names the field."""


class MoveState(str, Enum):
    WAITING = "waiting"      # settled, waiting for its vision (or for the action to settle again)
    PROMPT = "prompt"        # the shopper is asked
    ANSWERED = "answered"    # answered; being applied
    REVIEW = "review"        # a human reviewer decides
    DONE = "done"            # decided; kept a while for late vision


class Retake(str, Enum):
    """A movement's second look (retake.py): asked of the camera, then its frames came."""
    ASKED = "asked"
    SEEN = "seen"


class PromptKind(str, Enum):
    PICK = "pick"
    SCAN = "scan"
    PERSONAL = "personal"
    REMOVAL = "removal"


class Outcome(str, Enum):
    """The decision log's outcomes."""
    ACCEPT = "accept"
    ASK = "ask"
    REVIEW = "review"
    ANSWER = "answer"
    VERDICT = "verdict"
    NO_CHANGE = "no_change"
    LATE_VISION = "late_vision"
    SAME_WEIGHT_SWAP = "same_weight_swap"
    RETAKE = "retake"           # the camera was asked to look again (retake.py); decided later
    MERGED = "merged"
    IGNORED = "ignored"


BASKET_CHANGES = (Outcome.ACCEPT, Outcome.ANSWER, Outcome.VERDICT)


@dataclass
class Line:
    """One basket line: packaged units of a SKU, or one bag of loose produce (by weight)."""
    line_id: str
    sku: str
    name: str
    qty: int
    weight_g: float
    unit_price_cents: int
    price_cents: int
    status: str
    by_weight: bool
    move_id: str


@dataclass
class PersonalItem:
    pid: str
    weight_g: float
    move_id: str
    personal_class: str | None = None     # what the camera recognised (issue 12), if it did


@dataclass
class Movement:
    """One physical action's weight change (one or more settles merged), its evidence and its fate."""
    id: str
    epoch: int
    seq: int | None
    unsettled_seq: int | None
    start_ms: int
    mono_ms: int
    delta_g: float
    total_g: float
    noise_g: float
    deadline_ms: int
    vision: dict | None
    state: MoveState
    prompt_id: str | None
    review_id: str | None
    same_weight: bool = False
    merged_useqs: list[int] = field(default_factory=list)
    reasked: str | None = None
    tap_followup: bool = False     # a tap that named part of the movement was asked about once more (taps.py)
    scan_for_slips: bool = False   # a pick asked as a scan: a slip between its pictures would pass (decide.py)
    tapped: str | None = None      # the product a follow-up's pictures are readings of (answers.py)
    retake: Retake | None = None   # the camera was asked to look again (retake.py)
    effect: dict = field(default_factory=dict)
    applied: dict | None = None


@dataclass
class PromptRecord:
    prompt: dict        # the §11 payload
    move_id: str


@dataclass
class ReviewRecord:
    request: dict       # the §13 request
    move_id: str


@dataclass
class Dirty:
    """What the engine changed since the gateway last stored its state (persistence proportional
    to change): the basket lines touched (by id) and whether personal items changed. Every
    change to lines and personal items is made in basket.py, which marks it here.

    `known` is False until the state was stored once by this engine (a fresh or resumed engine):
    the store then compares every part with what it holds, as it did before this existed."""
    known: bool = False
    lines: set[str] = field(default_factory=set)
    personal: bool = False
    reopened: set[str] = field(default_factory=set)   # decided movements made open again (engine._open_move)
    line_set: bool = False     # a line added or removed (else only the marked lines' values changed)

    def stored(self) -> None:
        self.known, self.personal, self.line_set = True, False, False
        self.lines.clear()
        self.reopened.clear()


def fresh_state(cart: str) -> dict:
    return {"v": STATE_VERSION, "cart": cart, "version": 0, "now_ms": 0,
            "n": {"line": 0, "prompt": 0, "review": 0, "move": 0, "decision": 0, "personal": 0},
            "lines": [], "personal": [], "unsettled": {}, "settled_refs": [], "nochange_refs": [], "moves": {},
            "done": {}, "visions": [], "prompts": {}, "reviews": {}, "answers_seen": [], "verdicts_seen": [],
            "log": [], "receipt": None}


def _typed(cls, d: Any, where: str):
    """Build record `cls` from its JSON object, naming the record and field that is wrong."""
    if not isinstance(d, dict):
        raise ReconcileError(f"reconciler state: {where} must be an object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    need = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(need - set(d))
    if missing:
        raise ReconcileError(f"reconciler state: {where} lacks {', '.join(missing)}")
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except (TypeError, ValueError) as e:
        raise ReconcileError(f"reconciler state: {where}: {e}") from e


def check_state(d: Any) -> dict:
    """A stored state, checked and upgraded to what this version writes; raises ReconcileError."""
    if not isinstance(d, dict) or d.get("v") != STATE_VERSION:
        got = d.get("v") if isinstance(d, dict) else d
        raise ReconcileError(f"reconciler state: expected v={STATE_VERSION}, got {got!r}")
    base = fresh_state(d.get("cart", ""))
    if isinstance(d, dict) and "done" not in d and isinstance(d.get("moves"), dict):
        d = _split_done(d)      # written before decided movements left `moves`
    missing = sorted(set(base) - set(d))
    if missing:
        raise ReconcileError(f"reconciler state: missing keys {missing}")
    s = copy.deepcopy(d)
    for i, ln in enumerate(s["lines"]):
        _typed(Line, ln, f"lines[{i}]")
    for i, p in enumerate(s["personal"]):
        _typed(PersonalItem, p, f"personal[{i}]")
    if not isinstance(s["done"], dict):
        raise ReconcileError("reconciler state: done must be an object")
    for key in ("moves", "done"):
        for mid, mv in s[key].items():
            m = _typed(Movement, mv, f"{key}[{mid}]")
            try:
                MoveState(m.state)
            except ValueError:
                raise ReconcileError(f"reconciler state: {key}[{mid}].state {m.state!r} is not a movement state") \
                    from None
            if m.retake is not None and m.retake not in tuple(Retake):
                raise ReconcileError(f"reconciler state: {key}[{mid}].retake {m.retake!r} is not "
                                     f"one of {[r.value for r in Retake]}")
            if key == "done" and m.state != MoveState.DONE:
                raise ReconcileError(f"reconciler state: done[{mid}] is {m.state!r}, not decided")
    known = s["moves"].keys() | s["done"].keys()
    for pid, p in s["prompts"].items():
        rec = _typed(PromptRecord, p, f"prompts[{pid}]")
        if rec.move_id not in known:
            raise ReconcileError(f"reconciler state: prompts[{pid}] is about unknown movement {rec.move_id}")
    for rid, r in s["reviews"].items():
        rec = _typed(ReviewRecord, r, f"reviews[{rid}]")
        if rec.move_id not in known:
            raise ReconcileError(f"reconciler state: reviews[{rid}] is about unknown movement {rec.move_id}")
    for v in s["visions"]:            # vision records before issue 12 had no personal classes
        v.setdefault("personal_scores", {})
        v.setdefault("top_frames", {})
    for mv in (*s["moves"].values(), *s["done"].values()):
        if mv.get("vision") is not None:
            mv["vision"].setdefault("personal_scores", {})
            mv["vision"].setdefault("top_frames", {})
    return s


def _split_done(d: dict) -> dict:
    """A state from before `done`: its decided movements move out of `moves` (key order kept)."""
    d = dict(d)
    moves = d["moves"]
    d["moves"] = {k: m for k, m in moves.items() if not (isinstance(m, dict) and m.get("state") == MoveState.DONE)}
    d["done"] = {k: m for k, m in moves.items() if k not in d["moves"]}
    return d


def move_order(mid: str) -> int:
    """A movement id's number: `m12` -> 12 (ids count up within a basket: creation order)."""
    return int(mid[1:]) if mid[1:].isdigit() else 0


def dumps(s: dict) -> str:
    """The state as compact JSON (no deep copy: cheap enough to persist after every step)."""
    return json.dumps(s, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> dict:
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ReconcileError(f"reconciler state: not JSON ({e})") from e
    return check_state(d)
