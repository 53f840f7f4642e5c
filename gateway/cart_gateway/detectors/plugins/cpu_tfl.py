"""CPU detector: the int8 TFLite model(s) on LiteRT (ai-edge-litert), or tflite_runtime as a fallback.

Two stages when a crop model sits next to the main model (`<model>_crop.tflite`, or
`crop_model_path`): stage 1 sees the whole frame decoded small (Pillow draft) and gives
the class logits, "no product" and the item's centroid; stage 2 sees a native-resolution
window around that centroid, where flavour and size text are still legible, and gives
class logits too. The two are fused as `stage2 + w * stage1` (w and the temperature
fitted together on validation scenes by `cart-model calibrate`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..api import DetectionApi, DetectorLoadError, Fusion, fuse_stages, load_labels
from ..preprocess import crop_around, decode_full

DETECTOR_KEY = "cpu"

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # armv7 and older images: no LiteRT wheel
    from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]


class CpuDetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["cpu"] = "cpu"
    model_path: Path
    labels_path: Path
    # Temperature (and two-stage fusion weight); default: <model>.calib.json next to the model.
    calibration_path: Path | None = None
    # Second-stage crop model; default: <model>_crop.tflite next to the model when that file exists.
    crop_model_path: Path | None = None
    single_stage: bool = False  # ignore any crop model (e.g. to compare, or on a very slow CPU)
    num_threads: int = Field(default=2, ge=1, le=8)


class _Tfl:
    """One int8 TFLite model: uint8 image in, dequantised float outputs out."""

    def __init__(self, path: Path, threads: int):
        if not path.is_file():
            raise DetectorLoadError(f"model file not found: {path}")
        self.path = path
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise DetectorLoadError(f"cannot load model {path}: {e}") from None
        inp = self.interpreter.get_input_details()
        if len(inp) != 1 or len(inp[0]["shape"]) != 4 or inp[0]["shape"][3] != 3:
            raise DetectorLoadError(f"model {path}: expected one (1, H, W, 3) input, got {[d['shape'] for d in inp]}")
        self.input = inp[0]
        _, h, w, _ = (int(v) for v in self.input["shape"])
        self.input_size = (w, h)
        self.outputs = {tuple(d["shape"])[-1]: d for d in self.interpreter.get_output_details()}

    @staticmethod
    def _dequant(d, q: np.ndarray) -> np.ndarray:
        scale, zero = d["quantization"]
        if scale == 0:
            return q.astype(np.float32)
        return (q.astype(np.float32) - zero) * scale

    def run(self, tensor: np.ndarray, *outs) -> list[np.ndarray]:
        d = self.input
        if d["dtype"] == np.float32:
            x = tensor.astype(np.float32)
        else:  # quantize uint8 pixels with the input's own scale / zero point
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(tensor.astype(np.float32) / scale + zero), info.min, info.max).astype(d["dtype"])
        self.interpreter.set_tensor(d["index"], x[None])
        self.interpreter.invoke()
        return [self._dequant(o, self.interpreter.get_tensor(o["index"])[0]) for o in outs]


def model_files(config: CpuDetectorConfig) -> tuple[Path | None, Path]:
    """(stage-2 crop model or None, calibration file) that a config resolves to."""
    path = Path(config.model_path)
    crop_path = None if config.single_stage else config.crop_model_path
    if crop_path is None and not config.single_stage:
        auto = path.with_name(path.stem + "_crop.tflite")
        crop_path = auto if auto.exists() else None
    return (None if crop_path is None else Path(crop_path)), Path(config.calibration_path or path.with_suffix(".calib.json"))


def fusion_of(config: CpuDetectorConfig) -> tuple[Fusion, list[Path]]:
    """The fusion a config's detector applies and the files its raw stage outputs depend on (the
    models and labels, not the calibration), without loading the models."""
    crop_path, calib = model_files(config)
    stages = [Path(config.model_path)] + ([crop_path] if crop_path is not None else [])
    return Fusion.load(config.labels_path, calib, two_stage=crop_path is not None), stages + [Path(config.labels_path)]


class CpuTfl(DetectionApi):
    type_key = DETECTOR_KEY

    def __init__(self, config: CpuDetectorConfig):
        super().__init__(config)
        path = Path(config.model_path)
        if not path.is_file():
            raise DetectorLoadError(f"model file not found: {path}")
        self.labels = load_labels(config.labels_path)
        n = len(self.labels)
        self.stage1 = _Tfl(path, config.num_threads)
        self.interpreter = self.stage1.interpreter
        self.input_size = self.stage1.input_size
        outs = self.stage1.outputs
        if n not in outs or 2 not in outs or len(outs) != 2:
            raise DetectorLoadError(f"model {path}: outputs {sorted(outs)} do not match {n} labels in "
                                    f"{config.labels_path} plus a 2-value centroid")
        self._logits, self._centroid = outs[n], outs[2]
        crop_path, calib = model_files(config)
        self.stage2 = None
        if crop_path is not None:
            self.stage2 = _Tfl(Path(crop_path), config.num_threads)
            if set(self.stage2.outputs) != {n}:
                raise DetectorLoadError(f"crop model {crop_path}: outputs {sorted(self.stage2.outputs)} do not match "
                                        f"{n} labels in {config.labels_path}")
            self.crop_size = self.stage2.input_size
        self.fusion = Fusion.load(config.labels_path, calib, two_stage=self.stage2 is not None)
        self.temperature, self.stage1_weight = self.fusion.temperature, self.fusion.stage1_weight

    @property
    def stages(self) -> int:
        return 1 if self.stage2 is None else 2

    def detect_raw(self, tensor: np.ndarray) -> np.ndarray:
        """Stage 1 only: uint8 (H, W, 3) at input_size -> logits, cx, cy."""
        logits, centroid = self.stage1.run(tensor, self._logits, self._centroid)
        return np.concatenate([logits, centroid])

    def crop_raw(self, crop: np.ndarray) -> np.ndarray:
        """Stage 2 only: uint8 native-resolution window (crop_size) -> logits."""
        return self.stage2.run(crop, self.stage2.outputs[len(self.labels)])[0]

    def raw(self, jpeg: bytes) -> np.ndarray:
        return fuse_stages(*self.raw_stages(jpeg), self.stage1_weight)

    def raw_stages(self, jpeg: bytes) -> tuple[np.ndarray, np.ndarray | None]:
        """(stage-1 output, stage-2 logits or None): what `cart-model calibrate` fits the fusion on."""
        r1 = self.detect_raw(self.preprocess(jpeg))
        if self.stage2 is None:
            return r1, None
        n = len(self.labels)
        crop = crop_around(decode_full(jpeg), float(r1[n]), float(r1[n + 1]), self.crop_size)
        return r1, self.crop_raw(crop)
