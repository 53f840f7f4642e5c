"""Detection of a capture burst: the product detector plus zxing-cpp barcodes.

`BurstDetector.run(jpegs)` -> (per-frame candidate lists, EAN-13 strings).
A still (§7.1, at least VGA; burst frames are QVGA) is not a burst frame: its
barcodes are read by barcodes.StillBarcodeReader (full frame, then around
bar-like regions), and with a still classifier (detectors.still) it adds one
`StillFrame` candidate list: the burst model's stage 1 finds the item on the
still decoded small, the classifier reads the item's window at 1.25 px per
QVGA pixel (issue 13 part 2).
`DetectorWorker` runs it on its own thread with a bounded queue, so MQTT
ingest never waits for inference; results go back through a callback.
"""
from __future__ import annotations

import io
import logging
import queue
import threading
import time

from .logs import event
from .protocol import ProtocolError

STILL_MIN_WIDTH = 640   # §7.1's smallest still (VGA); the camera's burst frames are QVGA


def jpeg_size(jpeg: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG's header, or None when it is not a readable JPEG."""
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(jpeg))
        if img.format != "JPEG":
            return None
        return img.size
    except Exception:
        return None


def check_still(jpeg: bytes, width: int, height: int) -> None:
    """§7.1: a still must be a JPEG of the resolution its chunks declare (ProtocolError otherwise)."""
    got = jpeg_size(jpeg)
    if got is None:
        raise ProtocolError("still: the reassembled bytes are not a readable JPEG")
    if got != (width, height):
        raise ProtocolError(f"still: JPEG is {got[0]}x{got[1]}, field 'fmt' declares {width}x{height}")


class StillFrame(list):
    """The still classifier's candidates for one still: a frame of a Vision, marked as a still's
    (VisionSummary keeps a still's evidence apart from the burst's: reconcile/still_fusion.py)."""
    still = True


def is_still_result(frames: list) -> bool:
    """A detection result that came from a still only (no burst frame in it)."""
    return all(isinstance(f, StillFrame) for f in frames)


class BurstDetector:
    def __init__(self, detector=None, barcodes: bool = True, still_classifier=None):
        self.detector = detector      # a detectors.DetectionApi, or None (barcodes only)
        self.barcodes = barcodes
        self.still_classifier = still_classifier   # a detectors.still.StillClassifier, or None
        self._still_reader = None
        self.still_ms: list[float] = []   # barcode read time per still (bounded, for telemetry)
        self.still_classify_ms: list[float] = []   # centroid + window + still model per still

    @classmethod
    def from_config(cls, section) -> "BurstDetector":
        from .detectors import create_detector, default_detector_config
        from .detectors.still import load_still_classifier
        det = create_detector(section.plugin if section.plugin is not None else default_detector_config())
        return cls(det, section.barcodes, load_still_classifier(section.still_classifier, section.still_model_path))

    def run(self, jpegs: list[bytes]) -> tuple[list[list], list[str]]:
        frames, codes = [], []
        for jpeg in jpegs:
            size = jpeg_size(jpeg)
            if size is not None and size[0] >= STILL_MIN_WIDTH:
                found = self.read_still(jpeg) if self.barcodes else []
                if self.still_classifier is not None:
                    frames.append(self.classify_still(jpeg))
            else:
                frames.append(self.detector.detect(jpeg) if self.detector is not None else [])
                found = read_ean13(jpeg) if self.barcodes else []
            for c in found:
                if c not in codes:
                    codes.append(c)
        return frames, codes

    def classify_still(self, jpeg: bytes) -> StillFrame:
        """The still classifier's candidates, its window centred where stage 1 sees the item."""
        t0 = time.perf_counter()
        from .detectors.still import still_centroid
        cx, cy = still_centroid(self.detector, jpeg)
        out = StillFrame(self.still_classifier.classify(jpeg, cx, cy))
        self.still_classify_ms = (self.still_classify_ms + [(time.perf_counter() - t0) * 1000])[-256:]
        return out

    def read_still(self, jpeg: bytes) -> list[str]:
        from .barcodes import StillBarcodeReader
        if self._still_reader is None:
            self._still_reader = StillBarcodeReader()
        r = self._still_reader.read(jpeg)
        self.still_ms = (self.still_ms + [r.ms])[-256:]
        return r.codes


def read_ean13(jpeg: bytes) -> list[str]:
    """EAN-13 codes zxing-cpp reads in a JPEG (near-certain evidence)."""
    import zxingcpp
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(jpeg))
        img.load()
    except Exception:
        return []
    out = []
    for r in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.EAN13):
        if r.valid and len(r.text) == 13 and r.text.isdigit():
            out.append(r.text)
    return out


class DetectorWorker:
    """One inference thread fed by a bounded queue of (burst_id, jpegs)."""

    def __init__(self, det: BurstDetector, size: int, on_result, metrics=None):
        self.det = det
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.on_result = on_result      # on_result(burst_id, frames, codes, seconds)
        self.metrics = metrics
        self._thread = threading.Thread(target=self._run, name="detector", daemon=True)
        self._stop = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, burst_id: str, jpegs: list[bytes]) -> bool:
        try:
            self.q.put_nowait((burst_id, jpegs))
        except queue.Full:
            return False
        return True

    def depth(self) -> int:
        return self.q.qsize()

    def stop(self) -> None:
        self._stop = True
        try:
            self.q.put_nowait(None)
        except queue.Full:
            pass

    def _run(self) -> None:
        while not self._stop:
            item = self.q.get()
            if item is None:
                return
            burst_id, jpegs = item
            t0 = time.perf_counter()
            try:
                frames, codes = self.det.run(jpegs)
            except Exception as e:   # a bad frame must not kill the worker
                event(logging.ERROR, "detector_error", f"detection failed: {e}", burst=burst_id)
                frames, codes = [[] for _ in jpegs], []
            self.on_result(burst_id, frames, codes, time.perf_counter() - t0)
