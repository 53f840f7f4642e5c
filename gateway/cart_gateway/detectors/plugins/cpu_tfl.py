"""CPU detector: the int8 TFLite model on LiteRT (ai-edge-litert), or tflite_runtime as a fallback."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..api import DetectionApi, DetectorLoadError, load_labels, load_temperature

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
    # Temperature for calibrated scores; default: <model>.calib.json next to the model.
    calibration_path: Path | None = None
    num_threads: int = Field(default=2, ge=1, le=8)


class CpuTfl(DetectionApi):
    type_key = DETECTOR_KEY

    def __init__(self, config: CpuDetectorConfig):
        super().__init__(config)
        path = Path(config.model_path)
        if not path.is_file():
            raise DetectorLoadError(f"model file not found: {path}")
        self.labels = load_labels(config.labels_path)
        calib = config.calibration_path or path.with_suffix(".calib.json")
        self.temperature = load_temperature(calib)
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=config.num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise DetectorLoadError(f"cannot load model {path}: {e}") from None
        inp = self.interpreter.get_input_details()
        if len(inp) != 1 or len(inp[0]["shape"]) != 4 or inp[0]["shape"][3] != 3:
            raise DetectorLoadError(f"model {path}: expected one (1, H, W, 3) input, got {[d['shape'] for d in inp]}")
        self._in = inp[0]
        _, h, w, _ = (int(v) for v in self._in["shape"])
        self.input_size = (w, h)
        outs = {tuple(d["shape"])[-1]: d for d in self.interpreter.get_output_details()}
        n = len(self.labels)
        if n not in outs or 2 not in outs or len(outs) != 2:
            raise DetectorLoadError(f"model {path}: outputs {sorted(outs)} do not match {n} labels in "
                                    f"{config.labels_path} plus a 2-value centroid")
        self._logits, self._centroid = outs[n], outs[2]

    @staticmethod
    def _dequant(d, q: np.ndarray) -> np.ndarray:
        scale, zero = d["quantization"]
        if scale == 0:
            return q.astype(np.float32)
        return (q.astype(np.float32) - zero) * scale

    def detect_raw(self, tensor: np.ndarray) -> np.ndarray:
        d = self._in
        if d["dtype"] == np.float32:
            x = tensor.astype(np.float32)
        else:  # quantize uint8 pixels with the input's own scale / zero point
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(tensor.astype(np.float32) / scale + zero), info.min, info.max).astype(d["dtype"])
        self.interpreter.set_tensor(d["index"], x[None])
        self.interpreter.invoke()
        logits = self._dequant(self._logits, self.interpreter.get_tensor(self._logits["index"])[0])
        centroid = self._dequant(self._centroid, self.interpreter.get_tensor(self._centroid["index"])[0])
        return np.concatenate([logits, centroid])
