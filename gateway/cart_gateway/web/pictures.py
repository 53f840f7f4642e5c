"""Product thumbnails drawn from the catalogue record (SVG, no image files needed).

The gateway has no product photos (the renderer that draws packs for the
simulator lives in tools/, which the gateway must not depend on). Each SKU's
`look` (colours, logo, aspect; docs/catalogue.md) and its shape and name are
enough to draw a small pack a shopper and a reviewer recognise: the colours and
the silhouette match what the camera sees, the name is printed on it. A store
with enrolled photos would serve those here instead.
"""
from __future__ import annotations

from html import escape

from ..catalogue import Sku

W, H = 96, 96


def _rgb(c, default=(150, 150, 150)) -> str:
    try:
        r, g, b = (int(max(0, min(255, x))) for x in c)
    except (TypeError, ValueError):
        r, g, b = default
    return f"rgb({r},{g},{b})"


def _words(name: str, width: int = 11, lines: int = 3) -> list[str]:
    out, cur = [], ""
    for w in name.split():
        if len(cur) + len(w) + (1 if cur else 0) <= width:
            cur = f"{cur} {w}".strip()
        else:
            if cur:
                out.append(cur)
            cur = w[:width]
        if len(out) == lines:
            break
    if cur and len(out) < lines:
        out.append(cur)
    return out


def thumbnail_svg(s: Sku) -> str:
    look = s.look or {}
    bg = _rgb(look.get("bg"))
    band = _rgb(look.get("band"), (240, 240, 240))
    text = _rgb(look.get("text"), (255, 255, 255))
    logo = _rgb(look.get("logo_colour"), (255, 255, 255))
    if s.shape == "produce":
        n = int(look.get("count", 3) or 3)
        el = float(look.get("elong", 0.8) or 0.8)
        rx, ry = 14, max(8, 14 * el)
        spots = [(30, 44), (60, 44), (45, 62), (28, 70), (66, 68)][:max(1, min(5, n))]
        body = "".join(f'<ellipse cx="{x}" cy="{y}" rx="{rx}" ry="{ry:.0f}" fill="{bg}" stroke="#333" '
                       f'stroke-width="1.2"/>' for x, y in spots)
        label = f'<text x="48" y="92" font-size="10" text-anchor="middle" fill="#222">{escape(s.name[:16])}</text>'
        return _wrap(body + label, s)
    aspect = float(look.get("aspect", 0.75) or 0.75)
    if s.shape == "bottle":
        w = 34
        x = (W - w) / 2
        body = (f'<rect x="{x + 11}" y="6" width="12" height="14" rx="2" fill="{band}"/>'
                f'<rect x="{x}" y="18" width="{w}" height="74" rx="10" fill="{bg}" stroke="#333"/>')
        tx, ty0, tw = W / 2, 46, 7
    elif s.shape == "can":
        w = 52
        x = (W - w) / 2
        body = (f'<rect x="{x}" y="12" width="{w}" height="76" rx="6" fill="{bg}" stroke="#333"/>'
                f'<ellipse cx="48" cy="13" rx="{w / 2}" ry="5" fill="#ccc" stroke="#333"/>')
        tx, ty0, tw = W / 2, 42, 8
    elif s.shape == "bag":
        body = (f'<path d="M18 16 L78 16 L84 90 L12 90 Z" fill="{bg}" stroke="#333"/>'
                f'<rect x="18" y="16" width="60" height="8" fill="{band}"/>')
        tx, ty0, tw = W / 2, 46, 10
    else:   # box
        w = min(80, max(40, 86 * aspect))
        x = (W - w) / 2
        body = (f'<rect x="{x:.0f}" y="6" width="{w:.0f}" height="86" rx="3" fill="{bg}" stroke="#333"/>'
                f'<rect x="{x:.0f}" y="60" width="{w:.0f}" height="14" fill="{band}"/>')
        tx, ty0, tw = W / 2, 24, max(7, int(w / 7))
    mark = ""
    if look.get("logo"):
        mark = f'<circle cx="48" cy="{ty0 - 12 if ty0 > 30 else 84}" r="5" fill="{logo}"/>'
    lines = "".join(f'<text x="{tx}" y="{ty0 + 11 * i}" font-size="9.5" text-anchor="middle" fill="{text}" '
                    f'font-weight="bold">{escape(t)}</text>' for i, t in enumerate(_words(s.name, tw)))
    return _wrap(body + mark + lines, s)


def _wrap(inner: str, s: Sku) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
            f'role="img" aria-label="{escape(s.name)}"><title>{escape(s.name)}</title>'
            f'<rect width="{W}" height="{H}" fill="#f6f6f6"/>{inner}</svg>')


def personal_svg() -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="personal item"><rect width="{W}" height="{H}" fill="#f6f6f6"/>'
            '<path d="M22 38 L74 38 L80 88 L16 88 Z" fill="#8a7b68" stroke="#333"/>'
            '<path d="M34 38 Q34 14 48 14 Q62 14 62 38" fill="none" stroke="#333" stroke-width="4"/>'
            '<text x="48" y="68" font-size="11" text-anchor="middle" fill="#fff">own item</text></svg>')
