"""Detector API (Frigate-style): a plugin implements `detect_raw`, this class does the rest."""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .preprocess import decode_for_model

NONE_LABEL = "__none__"  # label of the "no product" class


class DetectorLoadError(RuntimeError):
    """The model, labels or calibration file is missing or unusable (raised at start-up)."""


@dataclass(frozen=True)
class Candidate:
    sku: str | None     # None = "no product"
    score: float        # calibrated probability
    cx: float           # centroid, normalised 0..1 (0.5 if unknown)
    cy: float


def load_labels(path: Path) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DetectorLoadError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DetectorLoadError(f"cannot read labels file {path}: {e}") from None
    labels = [ln.strip() for ln in lines if ln.strip()]
    if len(labels) < 2 or labels[0] != NONE_LABEL:
        raise DetectorLoadError(f"labels file {path}: first line must be {NONE_LABEL!r} and at least one SKU must follow")
    if len(set(labels)) != len(labels):
        raise DetectorLoadError(f"labels file {path}: duplicate labels")
    return labels


def load_temperature(path: Path | None) -> float:
    """Temperature for scaling logits, fitted on a validation split (1.0 when there is no file)."""
    if path is None or not Path(path).exists():
        return 1.0
    try:
        t = float(json.loads(Path(path).read_text(encoding="utf-8"))["temperature"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DetectorLoadError(f"calibration file {path}: needs a number 'temperature': {e}") from None
    if not 0.05 <= t <= 20:
        raise DetectorLoadError(f"calibration file {path}: temperature {t} out of range 0.05..20")
    return t


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class DetectionApi(abc.ABC):
    """Subclasses set self.labels, self.temperature, self.input_size (w, h) in __init__."""

    labels: list[str]
    temperature: float = 1.0
    input_size: tuple[int, int]

    def __init__(self, config):
        self.config = config

    @abc.abstractmethod
    def detect_raw(self, tensor: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) image -> float vector: len(labels) logits, then cx, cy."""

    def preprocess(self, jpeg: bytes) -> np.ndarray:
        return decode_for_model(jpeg, self.input_size)

    def detect(self, jpeg: bytes, top_k: int = 5) -> list[Candidate]:
        raw = self.detect_raw(self.preprocess(jpeg))
        n = len(self.labels)
        probs = softmax(raw[:n].astype(np.float64) / self.temperature)
        cx, cy = float(raw[n]), float(raw[n + 1])
        order = np.argsort(-probs)[:top_k]
        out = []
        for i in order:
            label = self.labels[i]
            if label == NONE_LABEL:
                out.append(Candidate(None, float(probs[i]), 0.5, 0.5))
            else:
                out.append(Candidate(label, float(probs[i]), cx, cy))
        return out
