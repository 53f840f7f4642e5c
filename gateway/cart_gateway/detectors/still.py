"""Still crop classifier (issue 13 part 2): the placed item's window of a still, embedded by
an int8 LiteRT model and scored against a gallery of reference views.

The model (`still.tflite`) maps a STILL_INPUT window to an embedding. Its training head was
a cosine classifier (CosFace), so a class is a direction in embedding space: the gallery
(`still_gallery.npz`) holds, per label, one or more unit vectors — the trained classes'
head weights, and the mean embedding of the views enrolled for SKUs the model never saw
(and for the personal-item kinds). Scoring is the same for both: logits = a * max cosine
per label, with one calibrated slope a = scale / temperature (`still.calib.json`), softmax.
So an SKU added to the catalogue is recognised after enrolling a few pictures, without
retraining; the cost is one (labels x dim) matrix-vector product per still.

A missing or corrupt model, gallery or calibration is a start-up error (DetectorLoadError).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..reconcile.inputs import PERSONAL_CLASSES, PERSONAL_PREFIX
from .api import NONE_LABEL, Candidate, DetectorLoadError, softmax
from .preprocess import DetectorInputError, crop_around

STILL_INPUT = (160, 160)    # the window (w, h); a model with a smaller square input gets it resized
VIEW_WIDTH = 400            # the still is decoded to this width: 1.25 px per QVGA pixel of the view
# (UXGA at libjpeg's 1/4 scale, no resize); the 160 px window spans 128 QVGA px of the view,
# where flavour text is 10-15 px tall (8-12 px in a QVGA frame, 3-5 px in the burst model's input)

DEFAULT_STILL_MODEL = Path(__file__).resolve().parent.parent / "data" / "still.tflite"

__all__ = ["PERSONAL_PREFIX", "STILL_INPUT", "Gallery", "StillClassifier", "load_still_classifier",
           "still_centroid", "still_window", "still_view"]


def still_view(jpeg: bytes, width: int = VIEW_WIDTH) -> np.ndarray:
    """JPEG -> uint8 (h, width, 3): libjpeg's DCT scaling (draft) then a resize only if needed."""
    try:
        img = Image.open(io.BytesIO(jpeg))
        if img.format != "JPEG":
            raise DetectorInputError(f"still is {img.format}, not JPEG")
        h = max(1, round(width * img.height / img.width))
        img.draft("RGB", (width, h))
        img = img.convert("RGB")
        if img.size != (width, h):
            img = img.resize((width, h), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)
    except DetectorInputError:
        raise
    except Exception as e:
        raise DetectorInputError(f"cannot decode still ({len(jpeg)} bytes): {e}") from None


def still_centroid(detector, jpeg: bytes) -> tuple[float, float]:
    """Where the new item is on the still: the burst model's stage 1 on it, decoded small
    ((0.5, 0.5) without a detector). The gateway and the still training crops both use this."""
    if detector is None:
        return 0.5, 0.5
    raw = detector.detect_raw(detector.preprocess(jpeg))
    n = len(detector.labels)
    return float(raw[n]), float(raw[n + 1])


def still_window(jpeg: bytes, cx: float, cy: float) -> np.ndarray:
    """The model's input: a STILL_INPUT window of the still's view centred on (cx, cy) (0..1)."""
    return crop_around(still_view(jpeg), cx, cy, STILL_INPUT)


def fit_window(window: np.ndarray, size: int) -> np.ndarray:
    """The window resized (area-averaged) to a smaller square model input."""
    if window.shape[0] == size and window.shape[1] == size:
        return window
    return np.asarray(Image.fromarray(window).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _label_ok(label: str) -> bool:
    if label.startswith(PERSONAL_PREFIX):
        return label[len(PERSONAL_PREFIX):] in PERSONAL_CLASSES
    return bool(label) and label.strip() == label


class Gallery:
    """Reference vectors per label (several per label allowed; a label scores its best)."""

    def __init__(self, labels: list[str], vectors: np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(labels) != len(vectors):
            raise ValueError(f"gallery: {len(labels)} labels for vectors of shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("gallery: vectors hold NaN or infinity")
        bad = [lb for lb in labels if not _label_ok(lb)]
        if bad:
            raise ValueError(f"gallery: bad labels {bad[:3]} (a SKU id, {NONE_LABEL!r} or personal:<"
                             + "|".join(sorted(PERSONAL_CLASSES)) + ">)")
        order = sorted(range(len(labels)), key=lambda i: labels[i])     # entries of one label together
        self.entry_labels = [labels[i] for i in order]
        self.vectors = _unit(vectors[order]) if len(order) else vectors.reshape(0, vectors.shape[1])
        self.labels = sorted(set(labels))
        self._starts = np.searchsorted(np.array(self.entry_labels), np.array(self.labels)) if self.labels else np.zeros(0, int)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: str) -> bool:
        return label in set(self.labels)

    def enrol(self, label: str, views: np.ndarray, mean: bool = True) -> "Gallery":
        """A new gallery with `label`'s entries replaced by these views' embeddings
        (their normalised mean by default: one entry, the scoring cost stays one row)."""
        views = _unit(np.asarray(views, dtype=np.float32).reshape(-1, self.dim))
        new = _unit(views.mean(axis=0, keepdims=True)) if mean else views
        keep = [i for i, lb in enumerate(self.entry_labels) if lb != label]
        return Gallery([self.entry_labels[i] for i in keep] + [label] * len(new),
                       np.concatenate([self.vectors[keep], new]))

    def cosines(self, e: np.ndarray) -> np.ndarray:
        """Best cosine per label (self.labels order) for one unit embedding."""
        c = self.vectors @ e
        return np.maximum.reduceat(c, self._starts) if len(c) else c

    def save(self, path: Path) -> None:
        np.savez(Path(path), labels=np.array(self.entry_labels), vectors=self.vectors)

    @classmethod
    def load(cls, path: Path) -> "Gallery":
        path = Path(path)
        if not path.is_file():
            raise DetectorLoadError(f"still gallery not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                labels, vectors = [str(s) for s in z["labels"]], z["vectors"]
            return cls(labels, vectors)
        except Exception as e:   # zip, key, dtype and content errors alike
            raise DetectorLoadError(f"still gallery {path} is unusable: {e}") from None


@dataclass(frozen=True)
class StillCalibration:
    scale: float            # the cosine head's scale in training
    temperature: float      # fitted on validation stills (minimum NLL)
    model_sha256: str       # the model this was fitted for

    @property
    def slope(self) -> float:
        return self.scale / self.temperature

    @classmethod
    def load(cls, path: Path) -> "StillCalibration":
        path = Path(path)
        if not path.is_file():
            raise DetectorLoadError(f"still calibration not found: {path} (run `cart-model train --stage still`)")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            cal = cls(float(doc["scale"]), float(doc["temperature"]), str(doc["model_sha256"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DetectorLoadError(f"still calibration {path}: needs numbers 'scale', 'temperature' "
                                    f"and 'model_sha256': {e!r}") from None
        if not (1 <= cal.scale <= 100 and 0.05 <= cal.temperature <= 20):
            raise DetectorLoadError(f"still calibration {path}: scale {cal.scale} or temperature "
                                    f"{cal.temperature} out of range")
        return cal


class StillClassifier:
    """Loads `<dir>/still.tflite`, `still_gallery.npz`, `still.calib.json`; classifies still windows."""

    def __init__(self, model_path: Path, gallery_path: Path | None = None, calibration_path: Path | None = None,
                 num_threads: int = 2):
        from .plugins.cpu_tfl import _Tfl
        model_path = Path(model_path)
        self.model = _Tfl(model_path, num_threads)
        w, h = self.model.input_size
        if w != h or not 64 <= w <= STILL_INPUT[0]:
            raise DetectorLoadError(f"still model {model_path}: input {self.model.input_size}, expected a square "
                                    f"of 64..{STILL_INPUT[0]} px (the window is resized to it)")
        if len(self.model.outputs) != 1:
            raise DetectorLoadError(f"still model {model_path}: expected one embedding output")
        self._out = next(iter(self.model.outputs.values()))
        self.dim = int(self._out["shape"][-1])
        self.gallery = Gallery.load(gallery_path or model_path.with_name("still_gallery.npz"))
        if self.gallery.dim != self.dim:
            raise DetectorLoadError(f"still gallery: vectors of {self.gallery.dim} dims, the model gives {self.dim}")
        if NONE_LABEL not in self.gallery:
            raise DetectorLoadError(f"still gallery: no {NONE_LABEL!r} entry")
        self.calibration = StillCalibration.load(calibration_path or model_path.with_name("still.calib.json"))
        sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if sha != self.calibration.model_sha256:
            raise DetectorLoadError(f"still calibration was fitted for another model (sha256 "
                                    f"{self.calibration.model_sha256[:12]}..., this one {sha[:12]}...)")

    def embed_window(self, window: np.ndarray) -> np.ndarray:
        """A STILL_INPUT window (resized to the model's input when that is smaller) -> unit embedding."""
        if window.shape[1::-1] != self.model.input_size:
            window = fit_window(window, self.model.input_size[0])
        return _unit(self.model.run(window, self._out)[0].astype(np.float32))

    def logits(self, e: np.ndarray) -> np.ndarray:
        return self.gallery.cosines(e) * self.calibration.slope

    def classify_window(self, window: np.ndarray, cx: float = 0.5, cy: float = 0.5,
                        top_k: int = 5) -> list[Candidate]:
        probs = softmax(self.logits(self.embed_window(window)).astype(np.float64))
        out = []
        for i in np.argsort(-probs)[:top_k]:
            label = self.gallery.labels[i]
            out.append(Candidate(None, float(probs[i]), 0.5, 0.5) if label == NONE_LABEL
                       else Candidate(label, float(probs[i]), cx, cy))
        return out

    def classify(self, jpeg: bytes, cx: float, cy: float, top_k: int = 5) -> list[Candidate]:
        """A still's candidates, the window centred on the item's centroid (0..1)."""
        return self.classify_window(still_window(jpeg, cx, cy), cx, cy, top_k)


def load_still_classifier(enabled: bool, model_path: Path | None, num_threads: int = 2) -> StillClassifier | None:
    """The configured still classifier: None when disabled, or when no model path is set and
    no model is committed under data/; when enabled, the named (or committed) model must load
    whole (model, gallery and calibration), or start-up stops with DetectorLoadError."""
    if not enabled:
        return None
    if model_path is None:
        if not DEFAULT_STILL_MODEL.exists():
            return None
        model_path = DEFAULT_STILL_MODEL
    return StillClassifier(Path(model_path), num_threads=num_threads)
