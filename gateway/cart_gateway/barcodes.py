"""EAN-13 barcodes in a still (protocol §7.1), read with zxing-cpp.

zxing-cpp scans lines along the image axes (and at 90° with try_rotate), so a
code printed at an angle that no scan line crosses whole, or one whose modules
are under ~1.5 px, is missed on the full frame. After the full frame the
reader therefore looks *around* the places a code may be: regions whose
gradients are strong and all point one way (bars), found
by the structure tensor, plus the item's box when the caller knows it. Each
region is cut from the full-resolution still, turned so its bars stand
upright, enlarged 2× and read again. docs/camera.md "Reading barcodes" gives
the figures.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np

SCALE = 1             # gradients at full scale: a smaller copy aliases 1.5-3 px modules
CELL = 32             # structure-tensor cell, px
MIN_COHERENCE = 0.55  # gradients this aligned look like bars
MAX_REGIONS = 4       # regions tried per still, strongest first (bounds the time)


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 in still pixels
    angle_deg: float                 # rotate by this to stand the bars upright
    score: float


@dataclass
class StillRead:
    codes: list[str] = field(default_factory=list)
    ms: float = 0.0
    where: str = ""        # "full", "region", "item" or "" (nothing read)
    regions: int = 0


def _centre(r) -> tuple[float, float, float]:
    """Centre of a result's quadrilateral and its longest side (the symbol's length in px)."""
    p = r.position
    pts = (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
    side = max(((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5 for a, b in zip(pts, pts[1:] + pts[:1]))
    return sum(q.x for q in pts) / 4.0, sum(q.y for q in pts) / 4.0, side


def _ean13(results) -> list[str]:
    """Valid EAN-13 texts, one per printed symbol. zxing-cpp may return one
    symbol twice (the downscaled pass), once misread with a valid check digit
    (1.3 % of the fast-mode pool's stills at 240 mm, docs/camera.md): a symbol
    read as two different codes is dropped as ambiguous, because a wrong code
    is worse evidence than none."""
    ok = [r for r in results if r.valid and len(r.text) == 13 and r.text.isdigit()]
    groups: list[list] = []
    for r in ok:
        c = _centre(r)
        for g in groups:
            near = 0.5 * max(g[0][2], c[2], 8.0)    # centres within half a symbol: the same symbol
            if abs(g[0][0] - c[0]) <= near and abs(g[0][1] - c[1]) <= near:
                g[1].add(r.text)
                break
        else:
            groups.append((c, {r.text}))
    return [next(iter(texts)) for _, texts in groups if len(texts) == 1]


def code_regions(gray: np.ndarray, max_regions: int = MAX_REGIONS) -> list[Region]:
    """Bar-like regions of a grayscale still (uint8 H×W), strongest first."""
    h, w = gray.shape
    f = SCALE
    small = gray[: h - h % f, : w - w % f].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    gy, gx = np.gradient(small)
    sh, sw = small.shape[0] // CELL, small.shape[1] // CELL
    if sh < 1 or sw < 1:
        return []

    def cells(a):
        return a[: sh * CELL, : sw * CELL].reshape(sh, CELL, sw, CELL).sum(axis=(1, 3))

    jxx, jyy, jxy = cells(gx * gx), cells(gy * gy), cells(gx * gy)
    tr = jxx + jyy + 1e-6
    coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / tr
    energy = tr / (CELL * CELL)
    theta = 0.5 * np.arctan2(2 * jxy, jxx - jyy)      # across the bars, y down: a code turned a° CCW gives -a
    mask = (coh > MIN_COHERENCE) & (energy > max(40.0, np.percentile(energy, 90)))
    seen = np.zeros_like(mask)
    out = []
    for y in range(sh):
        for x in range(sw):
            if not mask[y, x] or seen[y, x]:
                continue
            stack, comp = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                comp.append((cy, cx))
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < sh and 0 <= nx < sw and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            ys, xs = [c[0] for c in comp], [c[1] for c in comp]
            wts = np.array([energy[c] * coh[c] for c in comp])
            # mean orientation of an axial quantity: average the doubled angle
            ang = 0.5 * np.arctan2((wts * np.sin(2 * theta[ys, xs])).sum(), (wts * np.cos(2 * theta[ys, xs])).sum())
            s = f * CELL
            pad = s
            box = (max(0, min(xs) * s - pad), max(0, min(ys) * s - pad),
                   min(w, (max(xs) + 1) * s + pad), min(h, (max(ys) + 1) * s + pad))
            out.append(Region(box, float(np.degrees(ang)), float(wts.sum())))
    out.sort(key=lambda r: -r.score)
    return out[:max_regions]


class StillBarcodeReader:
    """read(jpeg, item_box=None) -> StillRead. item_box: the item's box in the
    still's normalised coordinates (x0, y0, x1, y1), e.g. from the burst
    detector's centroid; optional."""

    def __init__(self, max_regions: int = MAX_REGIONS, upscale: float = 2.0):
        self.max_regions = max_regions
        self.upscale = upscale

    def _read(self, img, rotate_ok=True):
        import zxingcpp
        return _ean13(zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.EAN13,
                                             try_rotate=rotate_ok, try_downscale=True))

    def _read_crop(self, img, box, angles) -> list[str]:
        from PIL import Image
        crop = img.crop(box)
        if crop.width < 8 or crop.height < 8:
            return []
        big = crop.resize((int(crop.width * self.upscale), int(crop.height * self.upscale)), Image.BICUBIC)
        for a in angles:
            im = big.rotate(a, resample=Image.BICUBIC, expand=True, fillcolor=255) if a else big
            got = self._read(im)
            if got:
                return got
        return []

    def read(self, jpeg: bytes, item_box=None) -> StillRead:
        from PIL import Image
        t0 = time.perf_counter()
        out = StillRead()
        try:
            img = Image.open(io.BytesIO(jpeg))
            img.draft("L", img.size)
            img = img.convert("L")
        except Exception:
            out.ms = (time.perf_counter() - t0) * 1000
            return out
        codes = self._read(img)
        where = "full" if codes else ""
        if not codes:
            regions = code_regions(np.asarray(img), self.max_regions)
            out.regions = len(regions)
            for r in regions:
                # the gradient runs across the bars: turn it to the image's x axis
                codes = self._read_crop(img, r.box, (r.angle_deg, r.angle_deg + 180.0))
                if codes:
                    where = "region"
                    break
        if not codes and item_box is not None:
            W, H = img.size
            x0, y0, x1, y1 = item_box
            box = (int(max(0, x0) * W), int(max(0, y0) * H), int(min(1, x1) * W), int(min(1, y1) * H))
            codes = self._read_crop(img, box, (0, 30, 60, -30, -60))
            where = "item" if codes else ""
        out.codes = list(dict.fromkeys(codes))
        out.where = where
        out.ms = (time.perf_counter() - t0) * 1000
        return out
