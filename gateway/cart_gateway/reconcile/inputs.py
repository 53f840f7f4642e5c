"""Inputs of the reconciliation engine: small, decoded, I/O-free records.

The service maps protocol messages (docs/protocol.md §6, §11, §13) to these.
All `mono_ms` values fed to one engine must be on one timeline (the scale
board's, or the gateway's receive clock): the engine never reads a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
import math
from typing import Any, Sequence

from .state import ReconcileError
from .still_fusion import PERSONAL, FrameMeans, fuse

# A detector label `personal:<class>` (e.g. `personal:bag`) is the camera positively seeing a
# shopper's own item; candidates with it are kept apart from product scores (VisionSummary).
PERSONAL_PREFIX = PERSONAL   # "personal:"
TOP_MIN = 0.5     # a frame's best candidate at least this sure: that product is what the frame shows


class PersonalClass(str, Enum):
    """What the camera can recognise as the shopper's own item (issue 13 adds the detector classes)."""
    BAG = "bag"
    PHONE = "phone"
    WALLET = "wallet"
    KEYS = "keys"
    TOY = "toy"


PERSONAL_CLASSES = frozenset(c.value for c in PersonalClass)


@dataclass(frozen=True)
class Unsettled:
    """§6.2: the load started to change (opens an item window)."""
    epoch: int
    seq: int
    mono_ms: int
    total_g: float


@dataclass(frozen=True)
class WeightChange:
    """§6.1: the load settled at a new value."""
    epoch: int
    seq: int
    mono_ms: int
    delta_g: float
    total_g: float
    noise_g: float = 0.0
    unsettled_seq: int | None = None
    prov: bool = False              # §6.1: a final event replacing it follows (reconcile/provisional.py)
    replaces: int | None = None     # §6.1: the seq of the provisional event this final one replaces


@dataclass(frozen=True)
class Vision:
    """Detections of one capture burst (§6.3) plus barcodes read in its frames.

    `frames` holds one candidate list per frame; a candidate needs `.sku`
    (None = "no product"; `personal:<class>` = a personal item of a PersonalClass)
    and `.score` (calibrated probability), e.g.
    `cart_gateway.detectors.api.Candidate`. `ref` is the triggering event's
    identity (`<cart>/scale/<epoch>/<seq>`) or None (motion / command burst).
    """
    mono_ms: int
    frames: Sequence[Sequence[Any]] = ()
    barcodes: Sequence[str] = ()
    ref: str | None = None
    frame_ids: Sequence[str] = ()
    still: bool = False          # a still (§7.1): barcodes only, no candidate frames


@dataclass(frozen=True)
class Answer:
    """§11 shopper answer. Exactly one of sku / skus / barcode / personal / none.

    `skus`: several products handled in one movement, one entry per unit."""
    prompt_id: str
    answer_id: str
    mono_ms: int
    sku: str | None = None
    barcode: str | None = None
    personal: bool = False
    none: bool = False
    skus: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Verdict:
    """§13 review verdict: sku None means "not a product" (personal item).

    `adds` / `removes` ((sku|None, qty) pairs), when either is given, describe
    the whole movement and replace sku/qty (two products at once, a swap)."""
    review_id: str
    verdict_id: str
    mono_ms: int
    sku: str | None
    qty: int
    adds: tuple[tuple[str | None, int], ...] | None = None
    removes: tuple[tuple[str | None, int], ...] | None = None


def answer_of(msg, mono_ms: int) -> Answer:
    """A decoded protocol §11 answer as an engine input."""
    c = msg.choice
    return Answer(msg.prompt_id, msg.answer_id, mono_ms, sku=c.sku, barcode=c.barcode,
                  personal=bool(c.personal), none=bool(c.none),
                  skus=tuple(c.skus) if getattr(c, "skus", None) else None)


def verdict_of(msg, mono_ms: int) -> Verdict:
    """A decoded protocol §13 verdict as an engine input."""
    def items(lst):
        return None if lst is None else tuple((i.sku, int(i.qty)) for i in lst)
    return Verdict(msg.review_id, msg.verdict_id, mono_ms, msg.sku, msg.qty,
                   adds=items(getattr(msg, "adds", None)), removes=items(getattr(msg, "removes", None)))


def parse_ref(ref: str | None) -> tuple[int, int] | None:
    """`c001/scale/3/17` -> (3, 17); None for a missing or non-scale ref."""
    if not ref:
        return None
    parts = ref.split("/")
    if len(parts) != 4 or parts[1] != "scale":
        return None
    try:
        return int(parts[2]), int(parts[3])
    except ValueError:
        return None


@dataclass
class VisionSummary:
    """What the engine keeps of a Vision: per-SKU mean score over frames (a still's fused apart)."""
    mono_ms: int
    scores: dict[str, float] = field(default_factory=dict)
    none_score: float = 0.0
    barcodes: list[str] = field(default_factory=list)
    frame_ids: list[str] = field(default_factory=list)
    ref: list[int] | None = None
    n_frames: int = 0
    personal_scores: dict[str, float] = field(default_factory=dict)   # PersonalClass value -> mean score
    # frames in which a product was the clear best (score >= TOP_MIN): a product seen on its own,
    # not a look-alike the detector hesitated over in the same frame
    top_frames: dict[str, int] = field(default_factory=dict)
    # the highest score with which a product was a frame's clear best (two look-alikes each named
    # surely in a frame of its own are two products, not one misnamed: camera.explain)
    top_score: dict[str, float] = field(default_factory=dict)
    stills: int = 0   # still captures among the inputs (docs/camera.md), a barcode-only one too
    # issue 13: a still's classifier evidence is kept apart from the burst's and the fields above are
    # the two fused (still_fusion.py); both None while no still had candidates (the fields are the burst's)
    burst_part: FrameMeans | None = None
    still_part: FrameMeans | None = None
    still_conflict: dict | None = None   # the burst clearly named another label than a still

    @classmethod
    def of(cls, v: Vision) -> "VisionSummary":
        if not isinstance(v.mono_ms, int) or v.mono_ms < 0:
            raise ValueError(f"Vision.mono_ms must be an int >= 0, got {v.mono_ms!r}")
        burst, still = [], []       # per frame: label -> best score (a still's frames kept apart)
        tops: dict[str, int] = {}
        top_score: dict[str, float] = {}
        for i, frame in enumerate(v.frames):
            best: dict[str | None, float] = {}
            for c in frame:
                s = float(c.score)
                if not 0.0 <= s <= 1.0:
                    raise ValueError(f"Vision.frames[{i}]: candidate score {s!r} outside [0, 1]")
                sku = c.sku
                if isinstance(sku, str) and sku.startswith(PERSONAL_PREFIX) \
                        and sku[len(PERSONAL_PREFIX):] not in PERSONAL_CLASSES:
                    raise ValueError(f"Vision.frames[{i}]: unknown personal class {sku!r}")
                best[sku] = max(best.get(sku, 0.0), s)
            if best:
                k_top = max(best, key=lambda k: (best[k], str(k)))
                if isinstance(k_top, str) and best[k_top] >= TOP_MIN:
                    tops[k_top] = tops.get(k_top, 0) + 1
                    top_score[k_top] = max(top_score.get(k_top, 0.0), best[k_top])
            # a frame marked `still` (vision.StillFrame) is the still classifier's, wherever it came
            (still if v.still or getattr(frame, "still", False) else burst).append(best)
        r = parse_ref(v.ref)
        out = cls(mono_ms=v.mono_ms, barcodes=[str(b) for b in v.barcodes], frame_ids=[str(f) for f in v.frame_ids],
                  ref=list(r) if r else None, top_frames={k: tops[k] for k in sorted(tops)},
                  top_score={k: top_score[k] for k in sorted(top_score)},
                  stills=int(bool(v.still or still)))
        out._set_parts(_frame_means(burst), _frame_means(still))
        return out

    def _parts(self) -> tuple[FrameMeans, FrameMeans]:
        """(burst, still) means; without a still's candidates the summary's fields are the burst's."""
        if self.still_part is None:
            return FrameMeans(self.n_frames, dict(self.scores), self.none_score, dict(self.personal_scores)), FrameMeans()
        return self.burst_part or FrameMeans(), self.still_part

    def _set_parts(self, burst: FrameMeans, still: FrameMeans) -> None:
        """The engine's evidence from the two parts (still_fusion.fuse: a still counts as the still it is)."""
        f = fuse(burst, still)
        self.scores, self.none_score = dict(f.means.scores), f.means.none_score
        self.personal_scores = dict(f.means.personal_scores)
        self.n_frames = burst.n + still.n
        keep = still.n > 0
        self.burst_part, self.still_part = (burst, still) if keep else (None, None)
        self.still_conflict = f.conflict

    @property
    def personal_score(self) -> float:
        """How sure the camera is that it saw one of the shopper's own items."""
        return max(self.personal_scores.values(), default=0.0)

    def to_dict(self) -> dict:
        d = {"mono_ms": self.mono_ms, "scores": dict(self.scores), "none_score": self.none_score,
             "barcodes": list(self.barcodes), "frame_ids": list(self.frame_ids),
             "ref": list(self.ref) if self.ref else None, "n_frames": self.n_frames,
             "personal_scores": dict(self.personal_scores), "top_frames": dict(self.top_frames),
             "top_score": dict(self.top_score), "stills": self.stills}
        if self.still_part is not None:
            d.update(burst_part=(self.burst_part or FrameMeans()).to_dict(), still_part=self.still_part.to_dict(),
                     still_conflict=self.still_conflict)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VisionSummary":
        sp = d.get("still_part")      # absent before issue 13's still evidence
        return cls(mono_ms=d["mono_ms"], scores=dict(d["scores"]), none_score=d["none_score"],
                   barcodes=list(d["barcodes"]), frame_ids=list(d["frame_ids"]),
                   ref=list(d["ref"]) if d["ref"] else None, n_frames=d["n_frames"],
                   personal_scores=dict(d.get("personal_scores", {})),   # both absent in states before issue 12
                   top_frames=dict(d.get("top_frames", {})), stills=d.get("stills", 0),
                   top_score=dict(d.get("top_score", {})),     # absent before floor12e
                   burst_part=FrameMeans.from_dict(d["burst_part"]) if sp is not None else None,
                   still_part=FrameMeans.from_dict(sp) if sp is not None else None,
                   still_conflict=d.get("still_conflict"))

    def merge(self, other: "VisionSummary") -> None:
        """Several bursts and stills for one movement: frame-weighted means of the bursts' frames and of
        the stills', fused (still_fusion.fuse), so a sure still is not diluted by the burst's frames."""
        (b0, s0), (b1, s1) = self._parts(), other._parts()
        self._set_parts(b0.merged(b1), s0.merged(s1))
        self.top_frames = {k: self.top_frames.get(k, 0) + other.top_frames.get(k, 0)
                           for k in sorted(set(self.top_frames) | set(other.top_frames))}
        self.top_score = {k: max(self.top_score.get(k, 0.0), other.top_score.get(k, 0.0))
                          for k in sorted(set(self.top_score) | set(other.top_score))}
        self.stills += other.stills
        self.barcodes += [b for b in other.barcodes if b not in self.barcodes]
        self.frame_ids += [f for f in other.frame_ids if f not in self.frame_ids]
        self.mono_ms = max(self.mono_ms, other.mono_ms)


def _frame_means(frames: list[dict]) -> FrameMeans:
    """Mean per label over frames (label -> best score in that frame), split as FrameMeans keeps it."""
    n = len(frames)
    if not n:
        return FrameMeans()
    sums: dict[str, float] = {}
    psums: dict[str, float] = {}
    none = 0.0
    for best in frames:
        for sku, s in best.items():
            if sku is None:
                none += s
            elif isinstance(sku, str) and sku.startswith(PERSONAL_PREFIX):
                pc = sku[len(PERSONAL_PREFIX):]
                psums[pc] = psums.get(pc, 0.0) + s
            else:
                sums[sku] = sums.get(sku, 0.0) + s
    return FrameMeans(n, {k: sums[k] / n for k in sorted(sums)}, none / n, {k: psums[k] / n for k in sorted(psums)})


def check_input(item, cat) -> "VisionSummary | None":
    """Reject a malformed input with a message naming the field; returns a Vision's summary."""
    name = type(item).__name__
    if not isinstance(item, (Unsettled, WeightChange, Vision, Answer, Verdict)):
        raise ReconcileError(f"step: unsupported input type {name}")
    m = item.mono_ms
    if not isinstance(m, int) or isinstance(m, bool) or m < 0:
        raise ReconcileError(f"{name}.mono_ms must be an int >= 0, got {m!r}")
    if isinstance(item, WeightChange):
        for f in ("delta_g", "total_g", "noise_g"):
            x = getattr(item, f)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ReconcileError(f"WeightChange.{f} must be a finite number, got {x!r}")
        if item.noise_g < 0:
            raise ReconcileError(f"WeightChange.noise_g must be >= 0, got {item.noise_g!r}")
    elif isinstance(item, Vision):
        return _summary(item)
    elif isinstance(item, Answer):
        chosen = [item.sku is not None, item.skus is not None, item.barcode is not None,
                  bool(item.personal), bool(item.none)]
        if sum(chosen) != 1:
            raise ReconcileError("Answer: exactly one of sku, skus, barcode, personal, none must be set")
        if item.skus is not None and (not item.skus or not all(isinstance(x, str) and x for x in item.skus)):
            raise ReconcileError(f"Answer.skus must be a non-empty list of SKU strings, got {item.skus!r}")
    elif isinstance(item, Verdict):
        if isinstance(item.qty, bool) or not isinstance(item.qty, int) or item.qty < 0:
            raise ReconcileError(f"Verdict.qty must be an int >= 0, got {item.qty!r}")
        if item.sku is not None and item.sku not in cat.idx:
            raise ReconcileError(f"Verdict.sku {item.sku!r} is not in the catalogue")
        for f in ("adds", "removes"):
            for it in getattr(item, f) or ():
                if not (isinstance(it, (tuple, list)) and len(it) == 2):
                    raise ReconcileError(f"Verdict.{f}: each entry must be (sku, qty), got {it!r}")
                sk, q = it
                if isinstance(q, bool) or not isinstance(q, int) or q < 1:
                    raise ReconcileError(f"Verdict.{f}: qty must be an int >= 1, got {q!r}")
                if sk is not None and sk not in cat.idx:
                    raise ReconcileError(f"Verdict.{f}: sku {sk!r} is not in the catalogue")
    return None

def _summary(v: Vision) -> "VisionSummary":
    try:
        return VisionSummary.of(v)
    except (ValueError, AttributeError, TypeError) as e:
        raise ReconcileError(f"Vision: {e}") from e
