"""Procedural renders of a shopper's own things put in the cart (Pillow + numpy).

`draw_personal(kind, rng, size)` draws one of KINDS seen from above, as the
cart camera would see it, on a transparent background: the model (e.g. a
tote, a handbag, a backpack or a carrier bag for "bag"), its colours, pose,
rotation, scale in the tile, lighting and sometimes a part cut away (another
item or the frame edge hides it) all come from `rng`, so each call is a new
variant and a seeded generator gives the same image on every run.

The kinds differ in what a classifier can see: bags have handles or straps
and soft outlines, phones are dark glass slabs with a camera cluster or a lit
screen, wallets are stitched leather rectangles with card edges or a clasp,
keys are thin metal blades on a ring, toys are bright rounded shapes. None
carries a product's printed label band, logo and weight text
(cart_model.render._label), so none looks like a pack.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("bag", "phone", "wallet", "keys", "toy")

_SS = 3  # supersampling of the drawing canvas

# Palettes (RGB) a person's things come in: muted fabrics and leathers,
# phone finishes, key metals, toy primaries.
_FABRIC = [(40, 40, 45), (95, 70, 50), (150, 120, 85), (200, 190, 170), (120, 30, 40), (35, 55, 95),
           (60, 90, 60), (180, 80, 40), (220, 210, 200), (130, 130, 135), (90, 50, 90), (200, 160, 60)]
_LEATHER = [(25, 22, 20), (70, 40, 25), (110, 65, 35), (150, 95, 55), (60, 25, 25), (35, 40, 60),
            (140, 30, 40), (200, 170, 130), (90, 90, 90), (30, 60, 50)]
_PHONE = [(20, 20, 22), (200, 200, 205), (225, 205, 180), (60, 70, 90), (160, 30, 40), (40, 80, 60),
          (235, 180, 190), (120, 150, 200), (240, 240, 235)]
_METAL = [(190, 190, 195), (205, 175, 95), (170, 140, 90), (150, 150, 160), (215, 215, 220)]
_TOY = [(230, 40, 40), (250, 200, 30), (40, 120, 220), (40, 180, 80), (240, 120, 30), (200, 60, 180),
        (250, 250, 250), (130, 90, 60), (90, 210, 220)]


def _pick(rng: np.random.Generator, palette) -> tuple[int, int, int]:
    c = np.array(palette[int(rng.integers(len(palette)))], dtype=np.float64)
    c = c * rng.uniform(0.8, 1.15) + rng.normal(0, 8, 3)  # dye lot, wear
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, v * f))) for v in c)


def _alpha(c, a: int = 255) -> tuple[int, int, int, int]:
    return (c[0], c[1], c[2], a)


# ---------------------------------------------------------------- bag
def _bag(img: Image.Image, rng, W: int) -> None:
    d = ImageDraw.Draw(img)
    model = rng.choice(["tote", "handbag", "backpack", "carrier", "drawstring"])
    col = _pick(rng, _FABRIC)
    dark, light = _shade(col, 0.65), _shade(col, 1.25)
    u = W / 100.0
    bw, bh = rng.uniform(50, 70) * u, rng.uniform(40, 58) * u
    x0, y0 = (W - bw) / 2, W * 0.52 - bh / 2 + 8 * u
    x1, y1 = x0 + bw, y0 + bh
    strap_w = max(2, int(rng.uniform(2.5, 5) * u))
    if model == "carrier":   # thin plastic: pale, crumpled, two loop handles cut out of the film
        col = _pick(rng, [(235, 235, 230), (245, 245, 245), (200, 215, 230), (225, 200, 160), (60, 60, 60)])
        pts = [(x0 + rng.uniform(-4, 4) * u, y1), (x1 + rng.uniform(-4, 4) * u, y1)]
        pts += [(x1 + rng.uniform(-2, 6) * u, y0 + bh * t) for t in (0.66, 0.33)]
        pts += [(x1 - bw * 0.08, y0 - 18 * u), (x1 - bw * 0.3, y0 - 18 * u), (x1 - bw * 0.35, y0)]
        pts += [(x0 + bw * 0.35, y0), (x0 + bw * 0.3, y0 - 18 * u), (x0 + bw * 0.08, y0 - 18 * u)]
        pts += [(x0 + rng.uniform(-6, 2) * u, y0 + bh * t) for t in (0.33, 0.66)]
        d.polygon(pts, fill=_alpha(col, int(rng.integers(200, 246))))
        for hx in (x0 + bw * 0.12, x1 - bw * 0.28):   # handle holes
            d.ellipse([hx, y0 - 14 * u, hx + bw * 0.16, y0 - 6 * u], fill=(0, 0, 0, 0))
        for _ in range(int(rng.integers(4, 9))):       # creases
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            a = rng.uniform(0, math.pi)
            L = rng.uniform(8, 22) * u
            d.line([cx, cy, cx + L * math.cos(a), cy + L * math.sin(a)], fill=_alpha(_shade(col, 0.78), 255),
                   width=max(1, int(u)))
        if rng.random() < 0.6:   # a store's print: a plain ring or stripe, not a pack's label
            pc = _pick(rng, _TOY)
            r = rng.uniform(6, 12) * u
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            if rng.random() < 0.5:
                d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=_alpha(pc), width=max(2, int(2 * u)))
            else:
                d.rectangle([x0 + 4 * u, cy - r / 3, x1 - 4 * u, cy + r / 3], fill=_alpha(pc, 220))
        return
    if model == "backpack":
        d.rounded_rectangle([x0, y0 - 6 * u, x1, y1], radius=bw * 0.3, fill=_alpha(col))
        d.rounded_rectangle([x0 + bw * 0.15, y0 + bh * 0.35, x1 - bw * 0.15, y1 - 3 * u], radius=bw * 0.12,
                            fill=_alpha(dark), outline=_alpha(_shade(col, 0.45)), width=max(1, int(u)))
        d.line([x0 + bw * 0.2, y0 + bh * 0.4, x1 - bw * 0.2, y0 + bh * 0.4], fill=_alpha(_METAL[0]),
               width=max(2, int(1.5 * u)))   # zip
        d.arc([x0 + bw * 0.3, y0 - 22 * u, x1 - bw * 0.3, y0 + 4 * u], 180, 360, fill=_alpha(dark), width=strap_w)
        for sx in (x0 + bw * 0.2, x1 - bw * 0.2 - strap_w):   # shoulder straps lying flat beside it
            d.rectangle([sx, y0 + 2 * u, sx + strap_w * 1.6, y1 + rng.uniform(0, 10) * u], fill=_alpha(dark))
        return
    if model == "handbag":
        top_in = bw * rng.uniform(0.05, 0.18)
        d.polygon([(x0 + top_in, y0), (x1 - top_in, y0), (x1, y1), (x0, y1)], fill=_alpha(col))
        d.arc([x0 + bw * 0.22, y0 - bh * 0.6, x1 - bw * 0.22, y0 + bh * 0.4], 180, 360, fill=_alpha(dark),
              width=strap_w)
        if rng.random() < 0.6:   # flap with a clasp
            fy = y0 + bh * rng.uniform(0.35, 0.55)
            d.polygon([(x0 + top_in, y0), (x1 - top_in, y0), (x1 - top_in * 0.6, fy), ((x0 + x1) / 2, fy + 6 * u),
                       (x0 + top_in * 0.6, fy)], fill=_alpha(dark))
            cx = (x0 + x1) / 2
            d.ellipse([cx - 3 * u, fy, cx + 3 * u, fy + 6 * u], fill=_alpha(_pick(rng, _METAL)))
        else:
            d.line([x0 + top_in, y0 + 3 * u, x1 - top_in, y0 + 3 * u], fill=_alpha(_METAL[0]), width=max(2, int(u)))
        return
    # tote and drawstring: soft rectangle, handles or cords
    sag = rng.uniform(0, 5) * u
    d.polygon([(x0, y0), ((x0 + x1) / 2, y0 + sag), (x1, y0), (x1 + 2 * u, y1), (x0 - 2 * u, y1)], fill=_alpha(col))
    if model == "tote":
        for hx0, hx1 in ((x0 + bw * 0.12, x0 + bw * 0.45), (x1 - bw * 0.45, x1 - bw * 0.12)):
            d.arc([hx0, y0 - bh * rng.uniform(0.4, 0.7), hx1, y0 + 6 * u], 180, 360, fill=_alpha(dark),
                  width=strap_w)
        if rng.random() < 0.5:   # woven stripes
            for k in range(int(rng.integers(2, 5))):
                yy = y0 + bh * (0.2 + 0.18 * k)
                d.rectangle([x0, yy, x1, yy + 3 * u], fill=_alpha(light))
    else:
        for k in range(7):   # gathered mouth
            xx = x0 + bw * (0.1 + 0.12 * k)
            d.line([xx, y0 + sag / 2, xx + 2 * u, y0 + 10 * u], fill=_alpha(dark), width=max(1, int(u)))
        for hx in (x0 + bw * 0.3, x1 - bw * 0.3):
            d.line([hx, y0, hx + rng.uniform(-15, 15) * u, y0 - rng.uniform(10, 25) * u], fill=_alpha(light),
                   width=max(1, int(1.5 * u)))


# ---------------------------------------------------------------- phone
def _phone(img: Image.Image, rng, W: int) -> None:
    d = ImageDraw.Draw(img)
    u = W / 100.0
    h = rng.uniform(62, 78) * u
    w = h * rng.uniform(0.46, 0.52)
    x0, y0 = (W - w) / 2, (W - h) / 2
    r = w * rng.uniform(0.1, 0.2)
    case = _pick(rng, _PHONE)
    face_up = rng.random() < 0.55
    d.rounded_rectangle([x0, y0, x0 + w, y0 + h], radius=r, fill=_alpha(case))
    if face_up:
        bez = w * rng.uniform(0.03, 0.07)
        sx0, sy0, sx1, sy1 = x0 + bez, y0 + bez, x0 + w - bez, y0 + h - bez
        lit = rng.random() < 0.45
        glass = (18, 18, 24) if not lit else _pick(rng, [(40, 90, 160), (20, 20, 30), (120, 60, 150), (30, 120, 110)])
        d.rounded_rectangle([sx0, sy0, sx1, sy1], radius=r * 0.8, fill=_alpha(glass))
        if lit:   # a lock screen or home screen: a clock or a grid of app icons
            if rng.random() < 0.5:
                gx, gy = int(rng.integers(3, 5)), int(rng.integers(4, 7))
                cw, chh = (sx1 - sx0) / gx, (sy1 - sy0) * 0.8 / gy
                for i in range(gx):
                    for j in range(gy):
                        ic = _pick(rng, _TOY)
                        d.rounded_rectangle([sx0 + cw * (i + 0.18), sy0 + chh * (j + 0.3), sx0 + cw * (i + 0.82),
                                             sy0 + chh * (j + 0.3) + cw * 0.64], radius=cw * 0.15, fill=_alpha(ic))
            else:
                cy = sy0 + (sy1 - sy0) * 0.25
                d.rectangle([sx0 + w * 0.2, cy, sx1 - w * 0.2, cy + h * 0.07], fill=(240, 240, 240, 255))
        # front camera notch / hole
        cx = (x0 + x0 + w) / 2
        if rng.random() < 0.5:
            d.ellipse([cx - 1.5 * u, sy0 + 2 * u, cx + 1.5 * u, sy0 + 5 * u], fill=(5, 5, 5, 255))
        else:
            d.rounded_rectangle([cx - w * 0.15, sy0, cx + w * 0.15, sy0 + 3.5 * u], radius=2 * u, fill=(5, 5, 5, 255))
        # glare: a pale diagonal band on the glass
        g = rng.uniform(0.2, 0.7)
        d.polygon([(sx0 + (sx1 - sx0) * g, sy0), (sx0 + (sx1 - sx0) * (g + 0.25), sy0), (sx0, sy0 + (sy1 - sy0) * (g + 0.4)),
                   (sx0, sy0 + (sy1 - sy0) * (g + 0.2))], fill=(255, 255, 255, 40))
    else:   # the back: a camera cluster in one corner, maybe a brand mark
        m = w * 0.08
        n_lens = int(rng.integers(1, 4))
        cs = w * (0.28 if n_lens == 1 else 0.42)
        d.rounded_rectangle([x0 + m, y0 + m, x0 + m + cs, y0 + m + cs * (1 if n_lens > 1 else 0.9)],
                            radius=cs * 0.25, fill=_alpha(_shade(case, 0.7)))
        for i in range(n_lens):
            lx = x0 + m + cs * (0.3 if n_lens > 1 else 0.5) + (cs * 0.4 if i == 1 else 0)
            ly = y0 + m + cs * (0.3 if n_lens > 1 else 0.45) + (cs * 0.4 if i == 2 else 0)
            rr = cs * (0.16 if n_lens > 1 else 0.3)
            d.ellipse([lx - rr, ly - rr, lx + rr, ly + rr], fill=(10, 10, 15, 255), outline=(90, 90, 95, 255),
                      width=max(1, int(u)))
        if rng.random() < 0.5:
            cx, cy, rr = x0 + w / 2, y0 + h * 0.5, w * 0.1
            d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=_alpha(_shade(case, 1.2)))


# ---------------------------------------------------------------- wallet
def _dashed_rect(d, box, col, step: float, width: int) -> None:
    x0, y0, x1, y1 = box
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        L = math.hypot(b[0] - a[0], b[1] - a[1])
        n = max(1, int(L / step))
        for i in range(0, n, 2):
            t0, t1 = i / n, min(1.0, (i + 1) / n)
            d.line([a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0,
                    a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1], fill=col, width=width)


def _wallet(img: Image.Image, rng, W: int) -> None:
    d = ImageDraw.Draw(img)
    u = W / 100.0
    model = rng.choice(["bifold", "long", "purse", "cardholder"])
    col = _pick(rng, _LEATHER)
    if model == "long":
        w, h = rng.uniform(68, 80) * u, rng.uniform(34, 42) * u
    elif model == "cardholder":
        w, h = rng.uniform(44, 52) * u, rng.uniform(30, 36) * u
    else:
        w, h = rng.uniform(52, 62) * u, rng.uniform(40, 48) * u
    x0, y0 = (W - w) / 2, (W - h) / 2
    x1, y1 = x0 + w, y0 + h
    if rng.random() < 0.5 and model != "purse":   # cards sticking out of the top
        for k in range(int(rng.integers(1, 4))):
            cc = _pick(rng, [(30, 90, 170), (200, 170, 60), (180, 30, 40), (30, 30, 30), (220, 220, 225), (40, 140, 90)])
            cx0 = x0 + w * (0.08 + 0.12 * k)
            d.rounded_rectangle([cx0, y0 - rng.uniform(4, 9) * u, cx0 + w * 0.55, y0 + 10 * u], radius=2 * u,
                                fill=_alpha(cc))
    d.rounded_rectangle([x0, y0, x1, y1], radius=rng.uniform(2, 6) * u, fill=_alpha(col))
    stitch = _alpha(_shade(col, 1.6) if sum(col) < 300 else _shade(col, 0.6))
    _dashed_rect(d, [x0 + 2.5 * u, y0 + 2.5 * u, x1 - 2.5 * u, y1 - 2.5 * u], stitch, 2.2 * u, max(1, int(0.8 * u)))
    if model == "bifold" and rng.random() < 0.5:   # the fold, seen as a darker crease
        d.line([x0, (y0 + y1) / 2, x1, (y0 + y1) / 2], fill=_alpha(_shade(col, 0.6)), width=max(1, int(u)))
    if model == "purse":   # a zip along the top and a pull tab, or a kiss-lock clasp
        if rng.random() < 0.5:
            d.line([x0 + 3 * u, y0 + 5 * u, x1 - 3 * u, y0 + 5 * u], fill=_alpha(_METAL[0]), width=max(2, int(1.6 * u)))
            tx = x0 + w * rng.uniform(0.2, 0.8)
            d.rectangle([tx, y0 + 4 * u, tx + 3 * u, y0 + 12 * u], fill=_alpha(_METAL[1]))
        else:
            m = _pick(rng, _METAL)
            for cx in ((x0 + x1) / 2 - 3 * u, (x0 + x1) / 2 + 3 * u):
                d.ellipse([cx - 2.5 * u, y0 - 2 * u, cx + 2.5 * u, y0 + 3 * u], fill=_alpha(m))
    elif model == "long" and rng.random() < 0.6:   # a snap tab
        d.rounded_rectangle([x1 - w * 0.2, y0 + h * 0.3, x1 + 2 * u, y0 + h * 0.7], radius=3 * u,
                            fill=_alpha(_shade(col, 0.8)))
        d.ellipse([x1 - w * 0.12, y0 + h * 0.45, x1 - w * 0.06, y0 + h * 0.55], fill=_alpha(_pick(rng, _METAL)))


# ---------------------------------------------------------------- keys
def _key_shape(d, rng, cx, cy, ang, L, metal, u) -> None:
    """One key from its ring hole outward along `ang`: a bow, a shoulder, a toothed blade."""
    ca, sa = math.cos(ang), math.sin(ang)

    def P(a, b):   # a along the key, b across it
        return (cx + a * ca - b * sa, cy + a * sa + b * ca)
    bow = L * rng.uniform(0.25, 0.35)
    bow_col = metal if rng.random() < 0.6 else _pick(rng, _TOY)   # some keys have a coloured plastic head
    bx, by = P(bow * 0.5, 0)
    d.ellipse([bx - bow * 0.55, by - bow * 0.55, bx + bow * 0.55, by + bow * 0.55], fill=_alpha(bow_col))
    hx, hy = P(bow * 0.25, 0)
    d.ellipse([hx - bow * 0.13, hy - bow * 0.13, hx + bow * 0.13, hy + bow * 0.13], fill=(0, 0, 0, 0))
    bw = L * rng.uniform(0.09, 0.13)
    teeth = int(rng.integers(4, 7))
    pts = [P(bow, -bw), P(L, -bw * 0.6), P(L, 0)]
    for i in range(teeth, 0, -1):   # cuts along one edge
        a = bow + (L - bow) * i / (teeth + 1)
        pts.append(P(a, bw * rng.uniform(1.0, 1.7)))
        pts.append(P(a - (L - bow) / (teeth + 1) / 2, bw * 0.9))
    pts.append(P(bow, bw))
    d.polygon(pts, fill=_alpha(metal))
    d.line([P(bow, 0), P(L * 0.95, 0)], fill=_alpha(_shade(metal, 0.7)), width=max(1, int(0.8 * u)))


def _keys(img: Image.Image, rng, W: int) -> None:
    d = ImageDraw.Draw(img)
    u = W / 100.0
    cx, cy = W * rng.uniform(0.38, 0.5), W * rng.uniform(0.38, 0.5)
    ring_r = rng.uniform(6, 10) * u
    n = int(rng.integers(1, 6))
    base = rng.uniform(0, 2 * math.pi)
    spread = rng.uniform(0.4, 1.2)
    for i in range(n):
        ang = base + (i - (n - 1) / 2) * spread / max(1, n - 1) * 2 if n > 1 else base
        L = rng.uniform(34, 50) * u
        sx, sy = cx + ring_r * math.cos(ang), cy + ring_r * math.sin(ang)
        _key_shape(d, rng, sx, sy, ang, L, _pick(rng, _METAL), u)
    fob = rng.choice(["none", "car", "tag", "charm"])
    fa = base + math.pi + rng.uniform(-0.6, 0.6)
    fx, fy = cx + (ring_r + 10 * u) * math.cos(fa), cy + (ring_r + 10 * u) * math.sin(fa)
    if fob == "car":   # a black remote with buttons
        fw, fh = 14 * u, 22 * u
        layer = Image.new("RGBA", (int(fw * 1.6), int(fh * 1.6)), (0, 0, 0, 0))
        ld = ImageDraw.Draw(layer)
        ox, oy = fw * 0.3, fh * 0.3
        ld.rounded_rectangle([ox, oy, ox + fw, oy + fh], radius=fw * 0.4, fill=(25, 25, 28, 255))
        for k in range(int(rng.integers(2, 4))):
            by = oy + fh * (0.25 + 0.22 * k)
            ld.ellipse([ox + fw * 0.3, by, ox + fw * 0.7, by + fw * 0.4], fill=(90, 90, 95, 255))
        layer = layer.rotate(-math.degrees(fa) + 90, expand=True, resample=Image.BICUBIC)
        img.alpha_composite(layer, (int(fx - layer.width / 2), int(fy - layer.height / 2)))
    elif fob == "tag":
        c = _pick(rng, _TOY)
        d.rounded_rectangle([fx - 5 * u, fy - 8 * u, fx + 5 * u, fy + 8 * u], radius=3 * u, fill=_alpha(c))
    elif fob == "charm":
        c = _pick(rng, _TOY)
        d.ellipse([fx - 6 * u, fy - 6 * u, fx + 6 * u, fy + 6 * u], fill=_alpha(c))
    d.ellipse([cx - ring_r, cy - ring_r, cx + ring_r, cy + ring_r], outline=_alpha((200, 200, 205)),
              width=max(2, int(1.5 * u)))


# ---------------------------------------------------------------- toy
def _toy(img: Image.Image, rng, W: int) -> None:
    d = ImageDraw.Draw(img)
    u = W / 100.0
    model = rng.choice(["bear", "duck", "car", "ball", "bricks", "doll"])
    c1, c2 = _pick(rng, _TOY), _pick(rng, _TOY)
    cx, cy = W / 2, W / 2
    if model == "bear":
        fur = _pick(rng, [(150, 100, 60), (200, 160, 110), (240, 230, 220), (230, 150, 170), (120, 80, 50)])
        s = rng.uniform(0.85, 1.1)
        d.ellipse([cx - 18 * u * s, cy - 2 * u, cx + 18 * u * s, cy + 32 * u * s], fill=_alpha(fur))    # body
        for sx in (-1, 1):
            d.ellipse([cx + sx * 16 * u * s - 7 * u, cy + 2 * u, cx + sx * 16 * u * s + 7 * u, cy + 18 * u],
                      fill=_alpha(_shade(fur, 0.9)))   # arms
            d.ellipse([cx + sx * 11 * u - 8 * u, cy + 24 * u * s, cx + sx * 11 * u + 8 * u, cy + 38 * u * s],
                      fill=_alpha(_shade(fur, 0.9)))   # feet
        hy = cy - 16 * u
        for sx in (-1, 1):
            d.ellipse([cx + sx * 12 * u - 6 * u, hy - 16 * u, cx + sx * 12 * u + 6 * u, hy - 4 * u], fill=_alpha(fur))
        d.ellipse([cx - 15 * u, hy - 13 * u, cx + 15 * u, hy + 13 * u], fill=_alpha(fur))   # head
        d.ellipse([cx - 6 * u, hy + 1 * u, cx + 6 * u, hy + 10 * u], fill=_alpha(_shade(fur, 1.25)))  # snout
        for sx in (-1, 1):
            d.ellipse([cx + sx * 6 * u - 1.8 * u, hy - 5 * u, cx + sx * 6 * u + 1.8 * u, hy - 1.4 * u], fill=(15, 10, 10, 255))
        d.ellipse([cx - 2 * u, hy + 2 * u, cx + 2 * u, hy + 5 * u], fill=(20, 15, 15, 255))
        if rng.random() < 0.5:   # a bow tie
            d.polygon([(cx - 8 * u, hy + 11 * u), (cx, hy + 15 * u), (cx - 8 * u, hy + 19 * u)], fill=_alpha(c1))
            d.polygon([(cx + 8 * u, hy + 11 * u), (cx, hy + 15 * u), (cx + 8 * u, hy + 19 * u)], fill=_alpha(c1))
    elif model == "duck":
        body = _pick(rng, [(250, 215, 30), (250, 230, 80), (240, 120, 30), (230, 60, 120), (60, 170, 230)])
        d.ellipse([cx - 28 * u, cy - 4 * u, cx + 24 * u, cy + 26 * u], fill=_alpha(body))
        d.ellipse([cx + 4 * u, cy - 26 * u, cx + 28 * u, cy + 2 * u], fill=_alpha(body))
        d.polygon([(cx + 26 * u, cy - 14 * u), (cx + 38 * u, cy - 10 * u), (cx + 26 * u, cy - 6 * u)],
                  fill=(245, 120, 20, 255))
        d.ellipse([cx + 16 * u, cy - 19 * u, cx + 20 * u, cy - 15 * u], fill=(10, 10, 10, 255))
        d.chord([cx - 26 * u, cy - 22 * u, cx + 6 * u, cy + 10 * u], 20, 160, fill=_alpha(_shade(body, 0.85)))
    elif model == "car":
        L, Wd = rng.uniform(55, 70) * u, rng.uniform(26, 32) * u
        x0, y0 = cx - L / 2, cy - Wd / 2
        for tx in (x0 + L * 0.18, x0 + L * 0.72):   # wheels peeking out at the sides
            for ty in (y0 - 3 * u, y0 + Wd - 5 * u):
                d.rounded_rectangle([tx, ty, tx + L * 0.14, ty + 8 * u], radius=2 * u, fill=(20, 20, 20, 255))
        d.rounded_rectangle([x0, y0, x0 + L, y0 + Wd], radius=Wd * 0.35, fill=_alpha(c1))
        d.rounded_rectangle([x0 + L * 0.3, y0 + Wd * 0.15, x0 + L * 0.68, y0 + Wd * 0.85], radius=Wd * 0.2,
                            fill=_alpha(_shade(c1, 0.8)))   # roof
        for wx0, wx1 in ((x0 + L * 0.22, x0 + L * 0.3), (x0 + L * 0.68, x0 + L * 0.75)):
            d.rectangle([wx0, y0 + Wd * 0.2, wx1, y0 + Wd * 0.8], fill=(140, 190, 220, 255))   # windscreens
        if rng.random() < 0.5:
            d.rectangle([x0 + 2 * u, cy - 2 * u, x0 + L - 2 * u, cy + 2 * u], fill=_alpha(c2))   # racing stripe
    elif model == "ball":
        r = rng.uniform(26, 38) * u
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_alpha(c1))
        k = int(rng.integers(0, 3))
        if k == 0:   # beach ball segments
            for i in range(0, 6, 2):
                d.pieslice([cx - r, cy - r, cx + r, cy + r], i * 60, i * 60 + 60, fill=_alpha(c2))
        elif k == 1:   # a stripe
            d.chord([cx - r, cy - r, cx + r, cy + r], 200, 340, fill=_alpha(c2))
        else:   # spots
            for _ in range(5):
                a, rr = rng.uniform(0, 2 * math.pi), rng.uniform(0, r * 0.6)
                sx, sy = cx + rr * math.cos(a), cy + rr * math.sin(a)
                d.ellipse([sx - r * 0.15, sy - r * 0.15, sx + r * 0.15, sy + r * 0.15], fill=_alpha(c2))
        d.ellipse([cx - r * 0.5, cy - r * 0.6, cx - r * 0.1, cy - r * 0.3], fill=(255, 255, 255, 110))
    elif model == "bricks":
        n = int(rng.integers(1, 4))
        for i in range(n):
            c = _pick(rng, _TOY)
            nx, ny = int(rng.integers(2, 5)), 2
            p = rng.uniform(8, 11) * u
            bx0 = cx - nx * p / 2 + rng.uniform(-12, 12) * u
            by0 = cy - ny * p / 2 + (i - (n - 1) / 2) * p * 2.2
            d.rectangle([bx0, by0, bx0 + nx * p, by0 + ny * p], fill=_alpha(c), outline=_alpha(_shade(c, 0.7)),
                        width=max(1, int(0.7 * u)))
            for a in range(nx):   # studs
                for b in range(ny):
                    sx, sy = bx0 + (a + 0.5) * p, by0 + (b + 0.5) * p
                    d.ellipse([sx - p * 0.3, sy - p * 0.3, sx + p * 0.3, sy + p * 0.3], fill=_alpha(_shade(c, 1.15)),
                              outline=_alpha(_shade(c, 0.75)))
    else:   # doll / action figure: head, body, four limbs
        skin = _pick(rng, [(240, 200, 170), (200, 150, 110), (140, 95, 65), (250, 220, 200)])
        hair = _pick(rng, [(40, 25, 15), (200, 160, 60), (120, 60, 20), (20, 20, 20), (230, 120, 160)])
        limb = max(2, int(5 * u))
        d.line([cx - 6 * u, cy + 8 * u, cx - 18 * u, cy + rng.uniform(-6, 14) * u], fill=_alpha(skin), width=limb)
        d.line([cx + 6 * u, cy + 8 * u, cx + 18 * u, cy + rng.uniform(-6, 14) * u], fill=_alpha(skin), width=limb)
        d.line([cx - 4 * u, cy + 26 * u, cx - rng.uniform(4, 12) * u, cy + 42 * u], fill=_alpha(skin), width=limb)
        d.line([cx + 4 * u, cy + 26 * u, cx + rng.uniform(4, 12) * u, cy + 42 * u], fill=_alpha(skin), width=limb)
        d.polygon([(cx - 9 * u, cy + 2 * u), (cx + 9 * u, cy + 2 * u), (cx + 13 * u, cy + 28 * u),
                   (cx - 13 * u, cy + 28 * u)], fill=_alpha(c1))   # dress / suit
        d.ellipse([cx - 12 * u, cy - 26 * u, cx + 12 * u, cy + 2 * u], fill=_alpha(hair))
        d.ellipse([cx - 9 * u, cy - 21 * u, cx + 9 * u, cy + 1 * u], fill=_alpha(skin))
        for sx in (-1, 1):
            d.ellipse([cx + sx * 4 * u - 1.5 * u, cy - 13 * u, cx + sx * 4 * u + 1.5 * u, cy - 10 * u], fill=(30, 30, 60, 255))


_DRAW = {"bag": _bag, "phone": _phone, "wallet": _wallet, "keys": _keys, "toy": _toy}


def _finish(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Pose and light: a rotation, a tilt (foreshortening), an item-sized scale in the
    tile, lighting across it and sensor noise; sometimes part of it is hidden."""
    W = img.width
    if rng.random() < 0.5:   # seen at a slant: squashed along one axis before turning
        f = rng.uniform(0.7, 1.0)
        if rng.random() < 0.5:
            img = img.resize((W, max(2, int(W * f))), Image.BICUBIC)
        else:
            img = img.resize((max(2, int(W * f)), W), Image.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = img.rotate(float(rng.uniform(0, 360)), resample=Image.BICUBIC, expand=True)
    bbox = img.getchannel("A").getbbox()
    if bbox:
        img = img.crop(bbox)
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-0.35, 0.35, 2)
    light = rng.uniform(0.75, 1.2) * (1 + gx * (xs / w - 0.5) + gy * (ys / h - 0.5))
    a[..., :3] = a[..., :3] * light[..., None] + rng.normal(0, rng.uniform(1, 5), (h, w, 3))
    if rng.random() < 0.25:   # another item or the frame edge hides a part: a straight cut
        ang = rng.uniform(0, 2 * math.pi)
        nx, ny = math.cos(ang), math.sin(ang)
        proj = (xs - w / 2) * nx + (ys - h / 2) * ny
        lim = np.quantile(proj[a[..., 3] > 0], rng.uniform(0.72, 0.92)) if (a[..., 3] > 0).any() else 0
        a[..., 3][proj > lim] = 0
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA")


def draw_personal(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One personal item of `kind` (one of KINDS) on a transparent size x size tile.

    Returns an HxWx4 RGBA uint8 array (H = W = size). Model, colours, pose,
    rotation, scale in the tile, lighting and any hidden part are drawn from
    `rng`: every call is another variant."""
    if kind not in _DRAW:
        raise ValueError(f"personal item kind {kind!r}: one of {', '.join(KINDS)}")
    size = int(size)
    if size < 8:
        raise ValueError(f"personal item tile size {size}: at least 8 px")
    W = max(96, size) * _SS
    img = Image.new("RGBA", (W, W), (0, 0, 0, 0))
    _DRAW[kind](img, rng, W)
    if rng.random() < 0.5:   # soft edges of fabric, leather, plush
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2) * _SS))
    img = _finish(img, rng)
    # fill 55..95 % of the tile along its longer side, at a random offset inside it
    fill = rng.uniform(0.55, 0.95) * size
    f = fill / max(img.width, img.height)
    img = img.resize((max(1, int(img.width * f)), max(1, int(img.height * f))), Image.LANCZOS)
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ox = int(rng.integers(0, size - img.width + 1))
    oy = int(rng.integers(0, size - img.height + 1))
    tile.alpha_composite(img, (ox, oy))
    return np.asarray(tile, dtype=np.uint8).copy()
