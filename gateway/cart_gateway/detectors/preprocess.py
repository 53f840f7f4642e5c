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
