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


def _temperature(path, t) -> float:
    t = float(t)
    if not 0.05 <= t <= 20:
        raise DetectorLoadError(f"calibration file {path}: temperature {t} out of range 0.05..20")
    return t


def load_temperature(path: Path | None) -> float:
    """Temperature for scaling logits, fitted on a validation split (1.0 when there is no file)."""
    return load_calibration(path, two_stage=False)[0]


def load_calibration(path: Path | None, two_stage: bool) -> tuple[float, float]:
    """(temperature, stage-1 weight) from a calib file.

    Single stage: the top-level "temperature" (1.0 when there is no file). Two stages: the
    "two_stage" object's "temperature" and "stage1_weight", which `cart-model calibrate`
    fits with both models; a crop model without them is a start-up error, since its
    uncalibrated scores would silently mislead the reconciliation."""
    if path is None or not Path(path).exists():
        if two_stage:
            raise DetectorLoadError(f"calibration file {path} not found: a two-stage detector needs its fitted "
                                    "'two_stage' temperature and weight (run `cart-model calibrate`)")
        return 1.0, 0.0
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if not two_stage:
            return _temperature(path, doc["temperature"]), 0.0
        ts = doc["two_stage"]
        w = float(ts["stage1_weight"])
        t = _temperature(path, ts["temperature"])
    except DetectorLoadError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = "a 'two_stage' object with numbers 'temperature' and 'stage1_weight'" if two_stage else "a number 'temperature'"
        raise DetectorLoadError(f"calibration file {path}: needs {what}: {e!r}") from None
    if not 0 <= w <= 10:
        raise DetectorLoadError(f"calibration file {path}: stage1_weight {w} out of range 0..10")
    return t, w


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

    def raw(self, jpeg: bytes) -> np.ndarray:
        """JPEG -> the uncalibrated output (logits, then cx, cy). Multi-stage plugins override this."""
        return self.detect_raw(self.preprocess(jpeg))

    def detect(self, jpeg: bytes, top_k: int = 5) -> list[Candidate]:
        return candidates_of(self.raw(jpeg), self.labels, self.temperature, top_k)


def fuse_stages(r1: np.ndarray, z2: np.ndarray | None, stage1_weight: float) -> np.ndarray:
    """The uncalibrated output (logits, then cx, cy) of stage 1's output r1 (logits, cx, cy) and
    stage 2's logits z2 (None: one stage): `z2 + w * stage1 logits`, stage 1's centroid."""
    if z2 is None:
        return r1
    n = len(z2)
    return np.concatenate([z2 + stage1_weight * r1[:n], r1[n:]])


def candidates_of(raw: np.ndarray, labels: list[str], temperature: float, top_k: int = 5) -> list[Candidate]:
    """The top-k calibrated candidates of an uncalibrated output (logits, then cx, cy)."""
    n = len(labels)
    probs = softmax(raw[:n].astype(np.float64) / temperature)
    cx, cy = float(raw[n]), float(raw[n + 1])
    order = np.argsort(-probs)[:top_k]
    out = []
    for i in order:
        label = labels[i]
        if label == NONE_LABEL:
            out.append(Candidate(None, float(probs[i]), 0.5, 0.5))
        else:
            out.append(Candidate(label, float(probs[i]), cx, cy))
    return out


@dataclass(frozen=True)
class Fusion:
    """What turns the stages' raw outputs into candidates: labels, temperature, stage-1 weight
    (the calibration file's; two_stage: its "two_stage" entry). Kept apart from the models so that
    a cached raw output (the simulator's scene pool) is fused again under a new calibration."""
    labels: tuple[str, ...]
    temperature: float
    stage1_weight: float
    two_stage: bool

    @classmethod
    def load(cls, labels_path: Path, calibration_path: Path | None, two_stage: bool) -> "Fusion":
        t, w = load_calibration(calibration_path, two_stage=two_stage)
        return cls(tuple(load_labels(labels_path)), t, w, two_stage)

    def candidates(self, r1: np.ndarray, z2: np.ndarray | None, top_k: int = 5) -> list[Candidate]:
        return candidates_of(fuse_stages(r1, z2 if self.two_stage else None, self.stage1_weight),
                             list(self.labels), self.temperature, top_k)
