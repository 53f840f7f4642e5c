"""How a still's classifier evidence and a burst's combine for one movement (issue 13).

A burst is up to ~8 QVGA frames read by the fast detector; its frames repeat the same
look-alike confusion, so averaging them does not make it surer. A still is one frame at
UXGA, read by the crop classifier whose score is calibrated (a right answer is usually
>= 0.99, a wrong one rarely >= 0.97). Averaging the still in as one more frame diluted a
sure still ~1/9. So the two are kept apart (`FrameMeans` each) and combined by `fuse`:

- no still candidates (no still, or a barcode-only still): the burst's means;
- a still, and the burst does not clearly name something else: the still's means are the
  camera's evidence (its calibrated score is what the engine's thresholds are set for);
- the burst's clear best (mean >= CONFLICT_MIN) is another label than the still's best:
  the two are averaged (STILL_SHARE_ON_CONFLICT), so neither is accepted on the camera alone,
  and the conflict is recorded (the weight, a barcode or the shopper decides).
- a still whose best is below STILL_SURE (the engine's accept threshold) is not the whole
  evidence: a classifier that is right half the time would throw away a burst that is right
  more often. Then the two are pooled, p(label) proportional to p_burst^a x p_still^b
  (a = STILL_POOL_BURST, b = STILL_POOL_WEIGHT; a label a part did not name gets
  POOL_FLOOR), normalised to the still's listed mass. With a = 1, b = 0.5 the still is more
  evidence, tempered because it sees the view the burst saw; agreement raises the label,
  disagreement lowers it. Chosen by measurement (docs/model_card.md "The still's evidence
  in the engine": replace, and pools 0.5/0.5, 0.75/0.25, 1/0.5, on hard-stills).

Barcodes are not fused here: a read from a still or a burst frame is near-certain either way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PERSONAL = "personal:"           # inputs.PERSONAL_PREFIX (inputs imports this module)
CONFLICT_MIN = 0.5               # the burst's mean score for its best label at which it clearly names it
STILL_SHARE_ON_CONFLICT = 0.5    # the still's share of the average when the burst clearly disagrees
STILL_SURE = 0.97                # a still this sure of its best label is the camera's evidence alone
STILL_POOL_BURST = 1.0           # the burst's exponent in the pool of a still below STILL_SURE
STILL_POOL_WEIGHT = 0.5          # the still's exponent there (0: off, the still replaces the burst)
POOL_FLOOR = 0.01                # a label one part did not name, in the pool (the vision factor's floor)


@dataclass
class FrameMeans:
    """Mean scores over `n` frames of one kind (the burst's frames, or the stills)."""
    n: int = 0
    scores: dict[str, float] = field(default_factory=dict)            # product SKU -> mean score
    none_score: float = 0.0
    personal_scores: dict[str, float] = field(default_factory=dict)   # PersonalClass value -> mean

    def merged(self, other: "FrameMeans") -> "FrameMeans":
        """Frame-weighted mean of the two."""
        n = self.n + other.n
        if not n:
            return FrameMeans()

        def mean(a: dict, b: dict) -> dict:
            return {k: (a.get(k, 0.0) * self.n + b.get(k, 0.0) * other.n) / n for k in sorted(set(a) | set(b))}
        return FrameMeans(n, mean(self.scores, other.scores),
                          (self.none_score * self.n + other.none_score * other.n) / n,
                          mean(self.personal_scores, other.personal_scores))

    def best(self, products_only: bool = False) -> tuple[str | None, float]:
        """The label with the highest mean: a SKU, `personal:<class>`, or None ("no product")."""
        labels: list[tuple[float, str, str | None]] = [(v, k, k) for k, v in self.scores.items()]
        labels += [(v, PERSONAL + k, PERSONAL + k) for k, v in self.personal_scores.items()]
        if not products_only:
            labels.append((self.none_score, "", None))
        if not labels:
            return None, 0.0
        v, _, label = max(labels)
        return label, v

    def score_of(self, label: str | None) -> float:
        if label is None:
            return self.none_score
        if label.startswith(PERSONAL):
            return self.personal_scores.get(label[len(PERSONAL):], 0.0)
        return self.scores.get(label, 0.0)

    def to_dict(self) -> dict:
        return {"n": self.n, "scores": dict(self.scores), "none_score": self.none_score,
                "personal_scores": dict(self.personal_scores)}

    @classmethod
    def from_dict(cls, d: dict) -> "FrameMeans":
        return cls(int(d["n"]), dict(d["scores"]), float(d["none_score"]), dict(d["personal_scores"]))


@dataclass(frozen=True)
class Fused:
    """The camera's evidence for the engine, and the disagreement that shaped it (or None)."""
    means: FrameMeans
    conflict: dict | None = None     # {"still": label, "still_score", "burst": label, "burst_score"}


def fuse(burst: FrameMeans, still: FrameMeans) -> Fused:
    if still.n <= 0:
        return Fused(burst)
    if burst.n <= 0:
        return Fused(still)
    s_label, s_score = still.best()
    b_label, b_score = burst.best(products_only=True)   # a burst that missed the item is no contradiction
    agrees = b_label is None or b_label == s_label or b_score < CONFLICT_MIN or still.score_of(b_label) >= b_score
    if s_score < STILL_SURE and STILL_POOL_WEIGHT > 0:
        conflict = None if agrees else {"still": s_label, "still_score": round(s_score, 6),
                                        "burst": b_label, "burst_score": round(b_score, 6)}
        return Fused(pooled(burst, still, STILL_POOL_BURST, STILL_POOL_WEIGHT), conflict)
    if agrees:
        return Fused(still)
    w = STILL_SHARE_ON_CONFLICT
    mixed = FrameMeans(still.n, {}, 0.0, {})
    for k in sorted(set(still.scores) | set(burst.scores)):
        mixed.scores[k] = w * still.scores.get(k, 0.0) + (1 - w) * burst.scores.get(k, 0.0)
    for k in sorted(set(still.personal_scores) | set(burst.personal_scores)):
        mixed.personal_scores[k] = w * still.personal_scores.get(k, 0.0) + (1 - w) * burst.personal_scores.get(k, 0.0)
    mixed.none_score = w * still.none_score + (1 - w) * burst.none_score
    return Fused(mixed, {"still": s_label, "still_score": round(s_score, 6),
                         "burst": b_label, "burst_score": round(b_score, 6)})


def pooled(burst: FrameMeans, still: FrameMeans, a: float, b: float) -> FrameMeans:
    """The two parts pooled over every label either named: score proportional to
    burst^a x still^b (POOL_FLOOR for a label a part did not name), normalised so the labels
    hold the still's listed mass."""
    skus = sorted(set(burst.scores) | set(still.scores))
    kinds = sorted(set(burst.personal_scores) | set(still.personal_scores))
    labels = [*skus, *(PERSONAL + k for k in kinds), None]          # None: "no product"
    raw = [max(burst.score_of(lb), POOL_FLOOR) ** a * max(still.score_of(lb), POOL_FLOOR) ** b for lb in labels]
    mass = sum(still.scores.values()) + sum(still.personal_scores.values()) + still.none_score
    z = sum(raw) or 1.0
    v = [r / z * mass for r in raw]
    return FrameMeans(still.n, dict(zip(skus, v)), v[-1], dict(zip(kinds, v[len(skus):-1])))
