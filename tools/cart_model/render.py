"""Procedural renders of catalogue packages and cart-camera scenes (Pillow only).

`render_scene` draws one frame as the cart camera (QVGA, looking down into the
basket) sees it: cart interior, items already in the basket, the new item at
some angle and scale (maybe partly out of view), a hand covering part of it,
lighting and motion blur. Everything is drawn from `rng_seed`, so a seed gives
the same image on every run.
"""
from __future__ import annotations

import io
import math
import random
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

CAMERA_SIZE = (320, 240)  # QVGA, the cart camera's resolution


@lru_cache(maxsize=16)
def _font(size: int):
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=512)
def _barcode(ean13: str) -> Image.Image:
    """The SKU's real EAN-13 symbol (python-barcode), as a small RGB image."""
    import barcode
    from barcode.writer import ImageWriter
    img = barcode.EAN13(ean13, writer=ImageWriter()).render(
        {"module_width": 0.2, "module_height": 6.0, "quiet_zone": 1.0, "font_size": 2,
         "text_distance": 1.0, "dpi": 254, "write_text": False})
    return img.convert("RGB")


def _tuple(c) -> tuple[int, int, int]:
    return tuple(int(v) for v in c)


def _logo(d: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, colour) -> None:
    col = _tuple(colour)
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif kind == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=col, width=max(2, int(r / 3)))
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=col)
    elif kind == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=col)
    else:  # star
        pts = []
        for i in range(10):
            a = math.pi / 5 * i - math.pi / 2
            rr = r if i % 2 == 0 else r * 0.45
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=col)


def _package_size(sku) -> tuple[int, int]:
    """Pixel size of the package at scale 1 in a QVGA frame: grows with the cube root of its weight."""
    if sku.shape == "produce":  # a handful of loose items, not one
        h = 80 + 30 * (sku.weight_mean_g / 500.0) ** (1 / 3)
        return int(h * 1.2), int(h)
    h = 55 + 70 * (sku.net_g / 500.0) ** (1 / 3)
    aspect = (sku.look or {}).get("aspect", 0.7)
    if sku.shape == "bottle":
        aspect = 0.42
    elif sku.shape == "can":
        aspect = 0.62
    return max(16, int(h * aspect)), int(h)


def _label(d, sku, look, box, scale_text: float) -> None:
    """Brand band, logo, flavour text and size on a label area."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d.rectangle([x0, y0, x1, y0 + h * 0.22], fill=_tuple(look["band"]))
    d.text((x0 + 3, y0 + 2), sku.brand, fill=_tuple(look["text"]), font=_font(max(6, int(h * 0.14 * scale_text))))
    _logo(d, look["logo"], x0 + w * 0.5, y0 + h * 0.45, min(w, h) * 0.17, look["logo_colour"])
    d.text((x0 + 3, y0 + h * 0.63), sku.variant.rsplit(" ", 2)[0], fill=_tuple(look["text"]),
           font=_font(max(6, int(h * 0.12 * scale_text))))
    d.text((x0 + 3, y0 + h * 0.78), f"{sku.net_g:g} g", fill=_tuple(look["text"]), font=_font(max(6, int(h * 0.09))))


_PACKAGES: dict[tuple[str, str], Image.Image] = {}


def package_image(sku) -> Image.Image:
    """RGBA image of one package, unrotated, at QVGA scale 1 (deterministic per SKU)."""
    key = (sku.sku, sku.ean13)
    if key not in _PACKAGES:
        _PACKAGES[key] = _draw_package(sku)
    return _PACKAGES[key]


def _paste_barcode(img: Image.Image, sku, box) -> None:
    x0, y0, x1, y1 = (int(v) for v in box)
    bc = _barcode(sku.ean13).resize((max(8, x1 - x0), max(4, y1 - y0)), Image.BILINEAR)
    img.paste(bc, (x0, y0))


def _draw_package(sku, k: int = 1, barcode: bool = True) -> Image.Image:
    """k: output scale (1 = QVGA; a still at SXGA/UXGA draws at k = 4/5, without
    the QVGA frames' oversized barcode: the still places a real-size one, `_still_code`)."""
    look = sku.look or {}
    w, h = _package_size(sku)
    ss = 3 if k == 1 else k  # draw supersampled (QVGA) or directly at the still's scale
    W, H = w * ss, h * ss
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    bg = _tuple(look.get("bg", (128, 128, 128)))
    if sku.shape == "produce":
        rng = random.Random(sku.ean13)
        count, elong = look.get("count", 1), look.get("elong", 0.8)
        for _ in range(count):
            rw = W * (0.5 if count > 1 else 0.9) * rng.uniform(0.85, 1.0)
            rh = rw * elong if elong > 0.5 else rw * 0.35
            cx, cy = rng.uniform(rw / 2, W - rw / 2), rng.uniform(rh / 2, H - rh / 2)
            for j in range(6):  # shading: darker rim, lighter centre
                f = 0.65 + 0.08 * j
                sh = 1 - j * 0.12
                d.ellipse([cx - rw / 2 * sh, cy - rh / 2 * sh, cx + rw / 2 * sh, cy + rh / 2 * sh],
                          fill=tuple(min(255, int(c * f)) for c in bg) + (255,))
            d.line([cx, cy - rh / 2, cx + rw * 0.05, cy - rh / 2 - H * 0.06], fill=(90, 60, 30, 255), width=ss * 2)
    elif sku.shape == "box":
        d.rectangle([0, 0, W - 1, H - 1], fill=bg + (255,), outline=(30, 30, 30, 255), width=ss)
        _label(d, sku, look, (ss * 2, ss * 2, W - ss * 2, H * 0.82), 1.0)
        if barcode:
            _paste_barcode(img, sku, (W * 0.45, H * 0.84, W * 0.95, H * 0.97))
    elif sku.shape == "bottle":
        neck_w = W * 0.38
        d.rectangle([W / 2 - neck_w / 2, 0, W / 2 + neck_w / 2, H * 0.08], fill=_tuple(look["logo_colour"]) + (255,))
        d.polygon([(W / 2 - neck_w / 2, H * 0.08), (W / 2 + neck_w / 2, H * 0.08), (W, H * 0.25), (0, H * 0.25)],
                  fill=tuple(int(c * 0.6 + 90) for c in bg) + (230,))
        d.rounded_rectangle([0, H * 0.22, W - 1, H - 1], radius=W * 0.15,
                            fill=tuple(int(c * 0.6 + 90) for c in bg) + (230,))
        d.rectangle([0, H * 0.38, W - 1, H * 0.86], fill=bg + (255,))
        _label(d, sku, look, (ss, H * 0.38, W - ss, H * 0.78), 0.8)
        if barcode:
            _paste_barcode(img, sku, (W * 0.1, H * 0.79, W * 0.9, H * 0.86))
    elif sku.shape == "can":
        d.rectangle([0, H * 0.06, W - 1, H * 0.94], fill=bg + (255,))
        for y in (H * 0.06, H * 0.94):
            d.ellipse([0, y - H * 0.06, W - 1, y + H * 0.06], fill=(185, 185, 190, 255), outline=(120, 120, 125, 255))
        for x in range(0, W, max(1, W // 12)):  # cylinder shading
            a = abs(x / W - 0.35)
            d.line([x, H * 0.1, x, H * 0.9], fill=(0, 0, 0, int(90 * a)), width=1 if k == 1 else max(1, W // 12))
        _label(d, sku, look, (ss * 2, H * 0.14, W - ss * 2, H * 0.8), 0.9)
        if barcode:
            _paste_barcode(img, sku, (W * 0.2, H * 0.8, W * 0.8, H * 0.88))
    else:  # bag: crimped top and bottom, pillow sides
        pts = []
        teeth = 8
        for i in range(teeth + 1):
            pts.append((W * i / teeth, H * (0.0 if i % 2 else 0.04)))
        pts += [(W * 0.97, H * 0.5)]
        for i in range(teeth, -1, -1):
            pts.append((W * i / teeth, H * (1.0 if i % 2 else 0.96)))
        pts += [(W * 0.03, H * 0.5)]
        d.polygon(pts, fill=bg + (255,))
        _label(d, sku, look, (ss * 4, H * 0.1, W - ss * 4, H * 0.8), 1.0)
        if barcode:
            _paste_barcode(img, sku, (W * 0.5, H * 0.82, W * 0.92, H * 0.92))
    return img.resize((w, h), Image.LANCZOS) if k == 1 else img


def _background(rng: random.Random, size, k: int = 1) -> Image.Image:
    """Cart interior: a tinted floor with a wire mesh seen from above (k: pixels per QVGA pixel)."""
    W, H = size
    base = [rng.randint(60, 170)] * 3
    tint = rng.randint(-25, 25)
    base = (base[0] + tint, base[1], base[2] - tint)
    img = Image.new("RGB", size, _tuple(base))
    d = ImageDraw.Draw(img)
    pitch = rng.randint(14, 30)
    wire = _tuple(min(255, c + rng.randint(40, 80)) for c in base)
    off = rng.randint(0, pitch)
    skew = rng.uniform(-0.3, 0.3)
    pitch, off = pitch * k, off * k
    for x in range(-W, 2 * W, pitch):
        d.line([(x + off, 0), (x + off + skew * H, H)], fill=wire, width=2 * k)
    for y in range(-pitch + off, H + pitch, pitch):
        d.line([(0, y), (W, y - skew * W * 0.2)], fill=wire, width=2 * k)
    return img


def _place(canvas: Image.Image, pkg: Image.Image, cx: float, cy: float, scale: float, angle: float,
           brightness: float = 1.0) -> tuple[float, float, float, float]:
    """Paste a package centred at (cx, cy) px; returns its bbox in px (unclipped)."""
    w, h = pkg.size
    p = pkg.resize((max(2, int(w * scale)), max(2, int(h * scale))), Image.BILINEAR)
    p = p.rotate(angle, resample=Image.BILINEAR, expand=True)
    if brightness != 1.0:
        rgb = ImageEnhance.Brightness(p.convert("RGB")).enhance(brightness)
        rgb.putalpha(p.getchannel("A"))
        p = rgb
    x0, y0 = int(cx - p.width / 2), int(cy - p.height / 2)
    canvas.paste(p, (x0, y0), p)
    return (x0, y0, x0 + p.width, y0 + p.height)


def _rect(d, box, fill) -> None:
    x0, y0, x1, y1 = box
    d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=fill)


def _hand(canvas: Image.Image, rng: random.Random, bbox, occlusion: float, k: int = 1) -> None:
    """A hand covering roughly `occlusion` of the item's box, coming in from a frame edge."""
    x0, y0, x1, y1 = bbox
    bw, bh = x1 - x0, y1 - y0
    skin = _tuple(c * rng.uniform(0.55, 1.0) for c in (235, 190, 160))
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    side = rng.choice(["left", "right", "bottom"])
    depth = max(0.05, min(0.9, occlusion))
    palm_w, palm_h = bw * 0.9, bh * depth
    if side == "bottom":
        px0, py0 = x0 + bw * rng.uniform(-0.1, 0.2), y1 - palm_h
        _rect(d, [px0, py0, px0 + palm_w, canvas.height + 10 * k], skin)  # palm + wrist to the edge
        for f in range(4):
            fx = px0 + palm_w * (0.1 + 0.22 * f)
            _rect(d, [fx, py0 - bh * 0.25, fx + palm_w * 0.16, py0 + 5 * k], skin)
    else:
        palm_w, palm_h = bw * depth, bh * 0.9
        if side == "left":
            px0 = x0 + palm_w * 0.0
            _rect(d, [-10 * k, y0 + bh * 0.05, px0 + palm_w, y0 + bh * 0.05 + palm_h], skin)
        else:
            px0 = x1 - palm_w
            _rect(d, [px0, y0 + bh * 0.05, canvas.width + 10 * k, y0 + bh * 0.05 + palm_h], skin)
    canvas.paste(layer, (0, 0), layer)


SKIN = [(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96), (141, 85, 54), (96, 60, 40)]


def _hand_many(canvas: Image.Image, rng: random.Random, bbox, occlusion: float, k: int = 1) -> None:
    """A hand in one of many poses (the scene pools' hands): skin from a range of tones,
    rounded fingers spread or together, a sleeve at the wrist, from any frame edge at an angle,
    covering roughly `occlusion` of the item's box."""
    x0, y0, x1, y1 = bbox
    bw, bh = max(8.0, x1 - x0), max(8.0, y1 - y0)
    tone = SKIN[rng.randrange(len(SKIN))]
    skin = _tuple(min(255, c * rng.uniform(0.85, 1.1)) for c in tone)
    shade = _tuple(c * 0.8 for c in skin)
    sleeve = _tuple(rng.randint(20, 230) for _ in range(3))
    size = int(max(bw, bh) * 2.2) + 4
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    c = size / 2
    depth = max(0.1, min(1.0, occlusion))
    palm_w = bw * rng.uniform(0.5, 0.8)
    reach = bh * (0.3 + 0.8 * depth)           # how far the fingers come over the item
    top = c - reach * 0.5                      # fingertips end here; the arm goes down to the edge
    d.rounded_rectangle([c - palm_w / 2, top + reach * 0.35, c + palm_w / 2, size + palm_w],
                        radius=palm_w * 0.3, fill=skin + (255,))
    spread = rng.uniform(0.0, 0.35)
    n_f = rng.choice([4, 4, 4, 3, 2])
    fw = palm_w / 4.6
    for f in range(n_f):
        t = (f - (n_f - 1) / 2)
        fx = c + t * palm_w / 4.2
        ang = t * spread
        L = reach * rng.uniform(0.35, 0.5) * (1 - 0.15 * abs(t))
        ex, ey = fx + L * math.sin(ang), top + reach * 0.4 - L * math.cos(ang)
        d.line([fx, top + reach * 0.4, ex, ey], fill=skin + (255,), width=max(2, int(fw)))
        d.ellipse([ex - fw / 2, ey - fw / 2, ex + fw / 2, ey + fw / 2], fill=skin + (255,))
    if rng.random() < 0.8:   # the thumb, to one side
        sgn = rng.choice([-1, 1])
        tx, ty = c + sgn * palm_w / 2, top + reach * 0.75
        ex, ey = tx + sgn * palm_w * 0.45, ty - reach * 0.25
        d.line([tx, ty, ex, ey], fill=shade + (255,), width=max(2, int(fw * 1.1)))
        d.ellipse([ex - fw / 2, ey - fw / 2, ex + fw / 2, ey + fw / 2], fill=shade + (255,))
    if rng.random() < 0.75:  # a sleeve at the wrist
        sy = top + reach * 0.35 + palm_w * rng.uniform(0.9, 1.4)
        d.rectangle([c - palm_w * 0.7, sy, c + palm_w * 0.7, size + palm_w], fill=sleeve + (255,))
    side = rng.choice(["bottom", "bottom", "left", "right", "top"])
    rot = {"bottom": 0, "right": 90, "top": 180, "left": 270}[side] + rng.uniform(-35, 35)
    layer = layer.crop(layer.getchannel("A").getbbox())   # rotate only the hand, not the empty layer
    layer = layer.rotate(rot, resample=Image.BILINEAR, expand=True)
    if rng.random() < 0.3:   # moving or out of focus
        layer = layer.filter(ImageFilter.BoxBlur(max(1, k)))
    # slide the hand out along its arm until it covers about `occlusion` of the item's box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ux, uy = {"bottom": (0, 1), "top": (0, -1), "left": (-1, 0), "right": (1, 0)}[side]
    mask = np.asarray(layer.getchannel("A")) > 0
    bx0, by0, bx1, by1 = (int(round(v)) for v in (x0, y0, x1, y1))

    def covered(t: float) -> float:
        lx, ly = int(cx + ux * t - layer.width / 2), int(cy + uy * t - layer.height / 2)
        sub = mask[max(0, by0 - ly):max(0, by1 - ly), max(0, bx0 - lx):max(0, bx1 - lx)]
        return float(sub.sum()) / max(1, (bx1 - bx0) * (by1 - by0))

    lo, hi = 0.0, float(max(layer.width, layer.height))
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if covered(mid) > occlusion else (lo, mid)
    t = (lo + hi) / 2
    canvas.paste(layer, (int(cx + ux * t - layer.width / 2), int(cy + uy * t - layer.height / 2)), layer)


def _motion_blur(img: Image.Image, length: int, angle: float) -> Image.Image:
    if length < 2:
        return img
    a = np.asarray(img, dtype=np.float32)
    acc = np.zeros_like(a)
    dx, dy = math.cos(angle), math.sin(angle)
    for i in range(length):
        t = i - (length - 1) / 2
        acc += np.roll(a, (int(round(t * dy)), int(round(t * dx))), axis=(0, 1))
    return Image.fromarray((acc / length).astype(np.uint8))


def _lighting(img: Image.Image, rng: random.Random) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    H, W = a.shape[:2]
    gain = rng.uniform(0.6, 1.3)
    temp = np.array([rng.uniform(0.88, 1.12), 1.0, rng.uniform(0.88, 1.12)], dtype=np.float32)
    gx, gy = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4)  # light falls off across the basket
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    grad = 1.0 + gx * (xs / W - 0.5) + gy * (ys / H - 0.5)
    a = a * gain * temp[None, None, :] * grad[:, :, None]
    a += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(1, 6), a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def render_scene(catalogue, sku: str | None, rng_seed: int, basket_skus: list[str] | None = None,
                 occlusion: float = 0.0, blur: float = 0.0, size=CAMERA_SIZE, scale: float | None = None,
                 out_of_view: float | None = None, personal: np.ndarray | None = None,
                 pool_style: bool = False) -> tuple[Image.Image, dict]:
    """One cart-camera frame.

    sku: the new item (None: no new item, only the basket and maybe a hand).
    basket_skus: items already in the basket, drawn deeper (smaller, darker).
    occlusion: 0..1 share of the item's box a hand covers. blur: 0..1 motion blur strength.
    scale: item scale (None: random 0.8..1.4). out_of_view: 0..0.5 share pushed past a frame edge
    (None: random, mostly 0).
    personal: an RGBA tile (cart_model.personal.draw_personal) moved instead of a product (sku None).
    pool_style: the virtual store's scene pools: basket items anywhere under the new one (also
    behind it, not only at the edges) and hands in many poses (`_hand_many`); False keeps the
    training renders as they were.
    Returns (RGB image, truth) where truth = {"sku", "cx", "cy", "bbox"} (normalised 0..1).
    """
    img, truth, _ = _compose(catalogue, sku, random.Random(rng_seed), 1, basket_skus, occlusion, blur,
                             scale, out_of_view, personal=personal, pool_style=pool_style)
    if size != CAMERA_SIZE:
        img = img.resize(size, Image.BILINEAR)
    return img, truth


def _visible_box(bbox, W: int, H: int) -> dict:
    """Truth centroid and box (normalised) of the part of `bbox` inside the frame."""
    vis = (max(0, bbox[0]), max(0, bbox[1]), min(W, bbox[2]), min(H, bbox[3]))
    return {"cx": round(min(1, max(0, (vis[0] + vis[2]) / 2 / W)), 4),
            "cy": round(min(1, max(0, (vis[1] + vis[3]) / 2 / H)), 4),
            "bbox": [round(vis[0] / W, 4), round(vis[1] / H, 4), round(vis[2] / W, 4), round(vis[3] / H, 4)]}


def _compose(catalogue, sku, rng, k, basket_skus, occlusion, blur, scale, out_of_view, decorate=None,
             personal=None, pool_style=False):
    """The scene in QVGA geometry drawn at k pixels per QVGA pixel (k = 1: the
    burst frame, byte for byte as before stills existed). decorate(pkg, s, ang)
    -> pkg lets a still put its barcode on the item; returns (image, truth,
    the item's box in pixels or None)."""
    W, H = CAMERA_SIZE[0] * k, CAMERA_SIZE[1] * k
    pack = package_image if k == 1 else (lambda sk: _still_package(sk, k))
    canvas = _background(rng, (W, H), k).convert("RGBA")
    hand = _hand_many if pool_style else _hand
    for b in basket_skus or []:
        pkg = pack(catalogue[b])
        if pool_style:   # a filled basket: items lie deeper anywhere, some right under the new one
            _place(canvas, pkg, rng.uniform(0.05, 0.95) * W, rng.uniform(0.05, 0.95) * H, rng.uniform(0.55, 0.9),
                   rng.uniform(0, 360), brightness=rng.uniform(0.5, 0.85))
            continue
        # Basket items lie deeper, toward the frame's edges.
        edge = rng.choice(["top", "bottom", "left", "right"])
        bx = rng.uniform(0, W) if edge in ("top", "bottom") else (rng.uniform(-10, 60) * k if edge == "left" else W + rng.uniform(-60, 10) * k)
        by = rng.uniform(0, H) if edge in ("left", "right") else (rng.uniform(-10, 50) * k if edge == "top" else H + rng.uniform(-50, 10) * k)
        _place(canvas, pkg, bx, by, rng.uniform(0.5, 0.8), rng.uniform(0, 360), brightness=rng.uniform(0.55, 0.8))
    truth = {"sku": sku, "cx": 0.5, "cy": 0.5, "bbox": None}
    bbox = None
    if sku is None and personal is not None:   # the shopper's own thing moved in view
        tile = Image.fromarray(personal, "RGBA")
        if k != 1:
            tile = tile.resize((tile.width * k, tile.height * k), Image.BILINEAR)
        s = rng.uniform(0.8, 1.4)
        bbox = _place(canvas, tile, rng.uniform(0.3 * W, 0.7 * W), rng.uniform(0.3 * H, 0.7 * H), s, 0.0)
        if occlusion > 0:
            hand(canvas, rng, bbox, occlusion, k)
        truth.update(_visible_box(bbox, W, H))   # where the personal item is (sku stays None)
    elif sku is not None:
        pkg = pack(catalogue[sku])
        s = scale if scale is not None else rng.uniform(0.8, 1.4)
        ang = rng.uniform(-45, 45) + rng.choice([0, 0, 90, 180])
        oov = out_of_view if out_of_view is not None else (rng.uniform(0.1, 0.4) if rng.random() < 0.15 else 0.0)
        cx, cy = rng.uniform(0.3 * W, 0.7 * W), rng.uniform(0.3 * H, 0.7 * H)
        if oov > 0:  # push the item so that part of it is past an edge
            edge = rng.choice(["left", "right", "top", "bottom"])
            half_w, half_h = pkg.width * s / 2, pkg.height * s / 2
            shift = (0.5 - oov) * 2
            if edge == "left":
                cx = half_w * shift
            elif edge == "right":
                cx = W - half_w * shift
            elif edge == "top":
                cy = half_h * shift
            else:
                cy = H - half_h * shift
        if decorate is not None:
            pkg = decorate(pkg, s, ang)
        bbox = _place(canvas, pkg, cx, cy, s, ang)
        if occlusion > 0:
            hand(canvas, rng, bbox, occlusion, k)
        truth.update(_visible_box(bbox, W, H))
    elif occlusion > 0:  # an empty hand reaching in
        hand(canvas, rng, (W * 0.3, H * 0.3, W * 0.7, H * 0.7), occlusion, k)
    img = canvas.convert("RGB")
    img = _lighting(img, rng)
    img = _motion_blur(img, int(round(blur * 14 * k)), rng.uniform(0, math.pi))
    return img, truth, bbox


# ---------------------------------------------------------------- stills
# A still (protocol §7.1) is the same camera's view after the item settled, at
# SXGA or UXGA: the scene drawn at k = 4 or 5 pixels per QVGA pixel (SXGA is the
# sensor's full UXGA view scaled to 1280x1024, as esp32-camera's OV2640 driver
# does), with the item's EAN-13 at its real printed size. docs/camera.md
# "Barcodes on packs" gives the sources of every figure here.
STILL_SIZES = {"SXGA": (1280, 1024), "UXGA": (1600, 1200)}
VIEW_MM = 720.0        # width of the camera's view at an item's depth at scale 1 (see docs/camera.md)
EAN_MODULE_MM = 0.33   # GS1 nominal module (100 % magnification): 37.29 mm wide with quiet zones
EAN_BAR_MM = 22.85     # nominal bar height at 100 %
# per pack type: (magnification lo, hi), bar height kept (truncation lo, hi)
CODE_SIZE = {"box": ((0.85, 1.3), (0.7, 1.0)), "bag": ((0.8, 1.1), (0.6, 1.0)),
             "bottle": ((0.8, 1.0), (0.5, 0.8)), "can": ((0.8, 1.0), (0.5, 0.8))}

_STILL_PACKAGES: dict[tuple[str, int], Image.Image] = {}


def _still_package(sku, k: int) -> Image.Image:
    key = (sku.sku, k)
    if key not in _STILL_PACKAGES:
        if len(_STILL_PACKAGES) > 1024:
            _STILL_PACKAGES.clear()
        _STILL_PACKAGES[key] = _draw_package(sku, k, barcode=False)
    return _STILL_PACKAGES[key]


@lru_cache(maxsize=256)
def _ean_modules(ean13: str) -> str:
    import barcode
    return barcode.EAN13(ean13).build()[0]   # 95 modules, '1' = bar


def _flat_code(ean13: str, module_px: float, bar_px: float) -> Image.Image:
    """The symbol with its quiet zones (11 + 7 modules) and a white band for the
    digits, drawn at 8 px per module and shrunk to module_px (the lens and the
    sensor's sampling blur it, they do not snap it to pixels)."""
    mods = "0" * 11 + _ean_modules(ean13) + "0" * 7
    ss = 8
    hi_h = max(8, int(round(bar_px / module_px * ss)))
    txt = int(hi_h * 0.18)
    a = np.full((hi_h + txt, len(mods) * ss), 255, np.uint8)
    for i, m in enumerate(mods):
        if m == "1":
            a[:hi_h, i * ss:(i + 1) * ss] = 20
    img = Image.fromarray(a).convert("RGB")
    w = max(4, int(round(len(mods) * module_px)))
    h = max(3, int(round((hi_h + txt) / ss * module_px)))
    return img.resize((w, h), Image.LANCZOS)


def _wrap_cylinder(code: Image.Image, width: int, theta0: float) -> tuple[Image.Image, Image.Image]:
    """Wrap a flat code around a cylinder of diameter `width` px seen side-on,
    its centre at angle theta0 from the camera: columns compress toward the
    limbs and darken with the surface's angle to the light. Returns (RGB, mask)."""
    R = width / 2.0
    src = np.asarray(code, dtype=np.float32)
    ch, cw = src.shape[:2]
    xs = (np.arange(width) + 0.5 - R) / R
    theta = np.arcsin(np.clip(xs, -0.999, 0.999))
    col = R * (theta - theta0) + cw / 2.0
    ok = (col >= 0) & (col < cw - 1)
    c0 = np.clip(col.astype(int), 0, cw - 2)
    f = (col - c0)[None, :, None]
    out = src[:, c0] * (1 - f) + src[:, c0 + 1] * f
    shade = (0.55 + 0.45 * np.cos(theta))[None, :, None]
    out = np.clip(out * shade, 0, 255).astype(np.uint8)
    mask = np.zeros((ch, width), np.uint8)
    mask[:, ok] = 255
    return Image.fromarray(out), Image.fromarray(mask)


def _code_decorator(sku, k: int, rng: random.Random, facing: bool, view_mm: float, info: dict):
    """decorate(pkg, s, ang) for _compose: the item's EAN-13 on one face, at its
    printed size for the pack type, in a random place and orientation on that
    face, wrapped on cans and bottles; nothing when the code faces away."""
    def decorate(pkg: Image.Image, s: float, ang: float) -> Image.Image:
        shape = sku.shape
        info.update(facing=bool(facing and shape in CODE_SIZE), ean13=sku.ean13, module_px=0.0)
        if not info["facing"]:
            return pkg
        (m_lo, m_hi), (t_lo, t_hi) = CODE_SIZE[shape]
        mag = rng.uniform(m_lo, m_hi)
        px_per_mm = k * CAMERA_SIZE[0] / view_mm          # in the package image, before the item scale s
        module_px = EAN_MODULE_MM * mag * px_per_mm
        bar_px = EAN_BAR_MM * mag * rng.uniform(t_lo, t_hi) * px_per_mm
        code = _flat_code(sku.ean13, module_px, bar_px)
        pkg = pkg.copy()
        W, H = pkg.size
        curved = shape in ("can", "bottle")
        ladder = curved and rng.random() < 0.3 or (not curved and rng.random() < 0.4)
        info.update(mag=round(mag, 3), module_px=round(module_px * s, 3), curved=curved, ladder=ladder)
        if ladder:   # bars across the pack's long axis: the code runs along it
            code = code.rotate(90, expand=True)
        if curved and not ladder:
            theta0 = rng.uniform(-0.9, 0.9)
            img, mask = _wrap_cylinder(code, W, theta0)
            y0 = int(rng.uniform(0.3, 0.85) * H - img.height / 2)
            pkg.paste(img, (0, max(0, y0)), mask)
            info["theta0"] = round(theta0, 3)
            return pkg
        cw, ch = code.size
        if cw > W * 0.95 or ch > H * 0.95:   # a code larger than the face: shrink to fit, as printers do
            f = min(W * 0.95 / cw, H * 0.95 / ch)
            code = code.resize((max(4, int(cw * f)), max(3, int(ch * f))), Image.LANCZOS)
            info["module_px"] = round(info["module_px"] * f, 3)
            cw, ch = code.size
        x0 = int(rng.uniform(0.03 * W, max(0.03 * W, 0.97 * W - cw)))
        y0 = int(rng.uniform(0.45 * H if shape in ("box", "bag") else 0.3 * H, max(0.3 * H, 0.97 * H - ch)))
        pkg.paste(code, (x0, y0))
        return pkg
    return decorate


def render_still(catalogue, sku: str | None, rng_seed: int, res: str = "SXGA",
                 basket_skus: list[str] | None = None, occlusion: float = 0.0, blur: float = 0.0,
                 scale: float | None = None, out_of_view: float | None = None, facing: bool = True,
                 view_mm: float = VIEW_MM) -> tuple[Image.Image, dict]:
    """One still (§7.1) at `res` (SXGA or UXGA). As render_scene, plus the item's
    barcode: `facing` False = the code is on a face the camera does not see.
    truth adds "barcode": {facing, ean13, mag, module_px (px per module in the
    still, before any angle), curved, ladder}."""
    if res not in STILL_SIZES:
        raise ValueError(f"still resolution {res!r}: one of {sorted(STILL_SIZES)}")
    w, h = STILL_SIZES[res]
    k = w // CAMERA_SIZE[0]
    info: dict = {}
    deco = None
    if sku is not None:
        deco = _code_decorator(catalogue[sku], k, random.Random(f"code|{rng_seed}"), facing, view_mm, info)
    img, truth, _ = _compose(catalogue, sku, random.Random(rng_seed), k, basket_skus, occlusion, blur,
                             scale, out_of_view, deco)
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
        if info.get("module_px"):
            info["module_px"] = round(info["module_px"] * min(1.0, h / (CAMERA_SIZE[1] * k)), 3)
    truth["barcode"] = info or None
    return img, truth


def encode_jpeg(img: Image.Image, quality: int = 80) -> bytes:
    """Encode as the camera board does (baseline JPEG, 4:2:0)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def contact_sheet(images: list[Image.Image], cols: int = 8) -> Image.Image:
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * h), (0, 0, 0))
    for i, im in enumerate(images):
        sheet.paste(im, ((i % cols) * w, (i // cols) * h))
    return sheet
