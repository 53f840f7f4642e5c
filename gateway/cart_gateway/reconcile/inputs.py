"""Inputs of the reconciliation engine: small, decoded, I/O-free records.

The service maps protocol messages (docs/protocol.md §6, §11, §13) to these.
All `mono_ms` values fed to one engine must be on one timeline (the scale
board's, or the gateway's receive clock): the engine never reads a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


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


@dataclass(frozen=True)
class Vision:
    """Detections of one capture burst (§6.3) plus barcodes read in its frames.

    `frames` holds one candidate list per frame; a candidate needs `.sku`
    (None = "no product") and `.score` (calibrated probability), e.g.
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
    """What the engine keeps of a Vision: per-SKU mean score over frames."""
    mono_ms: int
    scores: dict[str, float] = field(default_factory=dict)
    none_score: float = 0.0
    barcodes: list[str] = field(default_factory=list)
    frame_ids: list[str] = field(default_factory=list)
    ref: list[int] | None = None
    n_frames: int = 0
    stills: int = 0

    @classmethod
    def of(cls, v: Vision) -> "VisionSummary":
        if not isinstance(v.mono_ms, int) or v.mono_ms < 0:
            raise ValueError(f"Vision.mono_ms must be an int >= 0, got {v.mono_ms!r}")
        n = len(v.frames)
        sums: dict[str, float] = {}
        none = 0.0
        for i, frame in enumerate(v.frames):
            best: dict[str | None, float] = {}
            for c in frame:
                s = float(c.score)
                if not 0.0 <= s <= 1.0:
                    raise ValueError(f"Vision.frames[{i}]: candidate score {s!r} outside [0, 1]")
                best[c.sku] = max(best.get(c.sku, 0.0), s)
            for sku, s in best.items():
                if sku is None:
                    none += s
                else:
                    sums[sku] = sums.get(sku, 0.0) + s
        scores = {k: sums[k] / n for k in sorted(sums)} if n else {}
        r = parse_ref(v.ref)
        return cls(mono_ms=v.mono_ms, scores=scores, none_score=none / n if n else 0.0,
                   barcodes=[str(b) for b in v.barcodes], frame_ids=[str(f) for f in v.frame_ids],
                   ref=list(r) if r else None, n_frames=n, stills=int(bool(v.still)))

    def to_dict(self) -> dict:
        return {"mono_ms": self.mono_ms, "scores": dict(self.scores), "none_score": self.none_score,
                "barcodes": list(self.barcodes), "frame_ids": list(self.frame_ids),
                "ref": list(self.ref) if self.ref else None, "n_frames": self.n_frames, "stills": self.stills}

    @classmethod
    def from_dict(cls, d: dict) -> "VisionSummary":
        return cls(mono_ms=d["mono_ms"], scores=dict(d["scores"]), none_score=d["none_score"],
                   barcodes=list(d["barcodes"]), frame_ids=list(d["frame_ids"]),
                   ref=list(d["ref"]) if d["ref"] else None, n_frames=d["n_frames"], stills=d.get("stills", 0))

    def merge(self, other: "VisionSummary") -> None:
        """Two bursts for one movement: frame-weighted mean of scores."""
        n = self.n_frames + other.n_frames
        if n:
            keys = sorted(set(self.scores) | set(other.scores))
            self.scores = {k: (self.scores.get(k, 0.0) * self.n_frames
                               + other.scores.get(k, 0.0) * other.n_frames) / n for k in keys}
            self.none_score = (self.none_score * self.n_frames + other.none_score * other.n_frames) / n
        self.n_frames = n
        self.stills += other.stills
        self.barcodes += [b for b in other.barcodes if b not in self.barcodes]
        self.frame_ids += [f for f in other.frame_ids if f not in self.frame_ids]
        self.mono_ms = max(self.mono_ms, other.mono_ms)
