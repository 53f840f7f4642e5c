"""Cheap JPEG decode for the detector: let libjpeg scale down while decoding."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


class DetectorInputError(ValueError):
    """A frame could not be decoded."""


def decode_for_model(jpeg: bytes, size: tuple[int, int]) -> np.ndarray:
    """JPEG bytes -> uint8 array (H, W, 3) at `size` = (width, height).

    `draft()` makes libjpeg decode at 1/2, 1/4 or 1/8 scale (the smallest that is
    still at least `size`), so a QVGA frame is decoded at 160x120 instead of 320x240.
    """
    try:
        img = Image.open(io.BytesIO(jpeg))
        if img.format != "JPEG":
            raise DetectorInputError(f"frame is {img.format}, not JPEG")
        img.draft("RGB", size)
        img = img.convert("RGB")
        if img.size != size:
            img = img.resize(size, Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)
    except DetectorInputError:
        raise
    except Exception as e:  # PIL raises several types for truncated / garbage data
        raise DetectorInputError(f"cannot decode JPEG frame ({len(jpeg)} bytes): {e}") from None


def decode_full(jpeg: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 array (H, W, 3) at the frame's native size (for the second-stage crop)."""
    try:
        img = Image.open(io.BytesIO(jpeg))
        if img.format != "JPEG":
            raise DetectorInputError(f"frame is {img.format}, not JPEG")
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except DetectorInputError:
        raise
    except Exception as e:
        raise DetectorInputError(f"cannot decode JPEG frame ({len(jpeg)} bytes): {e}") from None


def crop_around(frame: np.ndarray, cx: float, cy: float, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) window of a native-resolution frame centred on (cx, cy) (normalised 0..1).

    The window is shifted to stay inside the frame rather than padded, so it always holds
    real pixels; a frame smaller than the window is padded with black on the far side.
    """
    w, h = size
    H, W = frame.shape[:2]
    x0 = int(round(min(max(cx * W - w / 2, 0), max(W - w, 0))))
    y0 = int(round(min(max(cy * H - h / 2, 0), max(H - h, 0))))
    out = frame[y0:y0 + h, x0:x0 + w]
    if out.shape[:2] != (h, w):
        pad = np.zeros((h, w, 3), dtype=np.uint8)
        pad[:out.shape[0], :out.shape[1]] = out
        out = pad
    return np.ascontiguousarray(out)
