"""Product detector: plugins under plugins/, the committed model under cart_gateway/data/."""
from __future__ import annotations

from pathlib import Path

from .api import Candidate, DetectionApi, DetectorLoadError, NONE_LABEL
from .detector_types import DetectorConfig, api_types, config_adapter

DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_MODEL = DATA / "detector.tflite"
DEFAULT_LABELS = DATA / "detector_labels.txt"


def default_detector_config() -> DetectorConfig:
    """The committed model under data/, on the CPU plugin."""
    return config_adapter.validate_python({"type": "cpu", "model_path": DEFAULT_MODEL, "labels_path": DEFAULT_LABELS})


def create_detector(config) -> DetectionApi:
    """Build the detector a config (model or dict) names; raises DetectorLoadError on bad files."""
    if isinstance(config, dict):
        config = config_adapter.validate_python(config)
    return api_types[config.type](config)


__all__ = ["Candidate", "DetectionApi", "DetectorConfig", "DetectorLoadError", "NONE_LABEL",
           "create_detector", "default_detector_config"]
