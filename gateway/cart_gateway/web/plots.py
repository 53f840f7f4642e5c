"""Server-rendered SVG plots: a movement's weight trace and the store's daily figures.

Plain SVG strings (escaped), so the pages need no JavaScript and no plotting library.
"""
from __future__ import annotations

import math
from html import escape

from .gwstate import WeightPoint


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering lo..hi."""
    span = max(hi - lo, 1e-9)
    mag = 10 ** math.floor(math.log10(span / n))
    step = next(m * mag for m in (1, 2, 5, 10) if span / (m * mag) <= n)
    t = math.ceil(lo / step) * step
    out = []
    while t <= hi + 1e-9:
        out.append(round(t, 9))
        t += step
    return out


def weight_trace_svg(points: list[WeightPoint], move_seq: int, unsettled_seq: int | None,
                     w: int = 640, h: int = 240) -> str:
    """The cart's settled total over the scale's events around the movement, the movement's
    window shaded (from its `unsettled` to its `weight` event) with the window's min..max
    envelope and pre/post levels (protocol §6.1: the scale reports a summary of each change,
    not every sample)."""
    if not points:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="60" role="img" '
                f'aria-label="weight trace"><text x="10" y="30">no scale events stored for this movement</text></svg>')
    move = next((p for p in points if p.seq == move_seq and p.type == "weight"), None)
    win = (move.window or {}) if move else {}
    start = next((p for p in points if p.seq == unsettled_seq and p.type == "unsettled"), None)
    if move is not None:
        # a few seconds either side of the movement: earlier movements only set the level it started from
        ts = start.t_ms if start else move.t_ms - int(win.get("dur_ms", 500) or 500)
        t0, t1 = ts - 4000, move.t_ms + 3000
        before = [p for p in points if p.type == "weight" and p.t_ms < t0]
        points = [p for p in points if t0 <= p.t_ms <= t1]
        if before:    # the settled level the window opens at
            points.insert(0, WeightPoint(t0, "level", before[-1].seq, before[-1].total_g, None))
    else:
        t0, t1 = points[0].t_ms, points[-1].t_ms
    if t1 - t0 < 2000:
        t0, t1 = t0 - 1000, t1 + 1000
    vals = [p.total_g for p in points] + [v for k, v in win.items() if k in ("min_g", "max_g", "pre_g", "post_g")
                                          and isinstance(v, (int, float))]
    lo, hi = min(vals), max(vals)
    pad = max(20.0, (hi - lo) * 0.12)
    lo, hi = lo - pad, hi + pad
    L, R, T, B = 64, 12, 14, 34
    X = lambda t: L + (t - t0) / (t1 - t0) * (w - L - R)       # noqa: E731
    Y = lambda g: T + (hi - g) / (hi - lo) * (h - T - B)       # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
           f'class="plot weight-trace" role="img" aria-label="weight trace of the movement">',
           f'<rect x="{L}" y="{T}" width="{w - L - R}" height="{h - T - B}" fill="#fff" stroke="#bbb"/>']
    for g in _ticks(lo, hi):
        out.append(f'<line x1="{L}" x2="{w - R}" y1="{Y(g):.1f}" y2="{Y(g):.1f}" stroke="#eee"/>'
                   f'<text x="{L - 6}" y="{Y(g) + 4:.1f}" font-size="11" text-anchor="end">{g:.0f} g</text>')
    for s in range(0, int((t1 - t0) / 1000) + 1, max(1, int((t1 - t0) / 1000 / 6) or 1)):
        x = X(t0 + s * 1000)
        out.append(f'<text x="{x:.1f}" y="{h - 16}" font-size="11" text-anchor="middle">{s} s</text>')
    if move is not None:
        xa, xb = X(ts), max(X(move.t_ms), X(ts) + 3)
        mn, mx = win.get("min_g"), win.get("max_g")
        out.append(f'<rect x="{xa:.1f}" y="{T}" width="{xb - xa:.1f}" height="{h - T - B}" fill="#ffe9a8" '
                   f'class="movement-window"><title>the movement: {escape(str(win))}</title></rect>')
        if isinstance(mn, (int, float)) and isinstance(mx, (int, float)):
            out.append(f'<rect x="{xa:.1f}" y="{Y(mx):.1f}" width="{xb - xa:.1f}" height="{max(1.0, Y(mn) - Y(mx)):.1f}"'
                       f' fill="#f4b400" fill-opacity="0.45"/>')
    # settled total: a step line (it holds its value until the next weight event)
    weights = [p for p in points if p.type == "weight"]
    cur = points[0].total_g if points[0].type == "level" else \
        (weights[0].window or {}).get("pre_g", weights[0].total_g) if weights else None
    if cur is not None:
        pts = [(X(t0), Y(cur))]
        for p in weights:
            pts += [(X(p.t_ms), Y(cur)), (X(p.t_ms), Y(p.total_g))]
            cur = p.total_g
        pts.append((X(t1), Y(cur)))
        out.append('<polyline fill="none" stroke="#1a5fb4" stroke-width="2.5" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
    for p in points:
        if p.type == "weight":
            cls = "#c01c28" if p.seq == move_seq else "#1a5fb4"
            out.append(f'<circle cx="{X(p.t_ms):.1f}" cy="{Y(p.total_g):.1f}" r="{5 if p.seq == move_seq else 3}" '
                       f'fill="{cls}"><title>seq {p.seq}: {p.total_g:.1f} g</title></circle>')
    if move is not None:
        d = move.total_g - float(win.get("pre_g", move.total_g))
        out.append(f'<text x="{w - R - 4}" y="{T + 14}" font-size="13" text-anchor="end" fill="#c01c28">'
                   f'this movement: {d:+.1f} g</text>')
    out.append(f'<text x="{L}" y="{h - 2}" font-size="11">time (gateway receive clock); '
               f'blue: settled total; shaded: the movement (min..max of its window)</text></svg>')
    return "".join(out)


def bars_svg(title: str, labels: list[str], values: list[float | None], unit: str = "",
             goal: float | None = None, w: int = 340, h: int = 170) -> str:
    """One bar per day; None = no data that day (no baskets)."""
    L, R, T, B = 40, 8, 24, 26
    have = [v for v in values if v is not None]
    top = max(have + ([goal] if goal is not None else []) + [1e-9]) * 1.15
    n = max(1, len(values))
    bw = (w - L - R) / n
    Y = lambda v: T + (1 - v / top) * (h - T - B)     # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" class="plot" '
           f'role="img" aria-label="{escape(title)}"><text x="4" y="15" font-size="13" font-weight="bold">'
           f'{escape(title)}</text><line x1="{L}" x2="{w - R}" y1="{h - B}" y2="{h - B}" stroke="#999"/>']
    for g in _ticks(0, top, 3):
        out.append(f'<text x="{L - 4}" y="{Y(g) + 4:.1f}" font-size="10" text-anchor="end">{g:g}</text>')
    if goal is not None:
        out.append(f'<line x1="{L}" x2="{w - R}" y1="{Y(goal):.1f}" y2="{Y(goal):.1f}" stroke="#c01c28" '
                   f'stroke-dasharray="4 3"><title>goal {goal:g}{unit}</title></line>')
    for i, (lab, v) in enumerate(zip(labels, values)):
        x = L + i * bw
        if v is None:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{h - B - 4}" font-size="9" text-anchor="middle" '
                       f'fill="#999">–</text>')
        else:
            out.append(f'<rect x="{x + bw * 0.15:.1f}" y="{Y(v):.1f}" width="{bw * 0.7:.1f}" '
                       f'height="{max(0.5, h - B - Y(v)):.1f}" fill="#1a5fb4"><title>{escape(lab)}: {v:.3g}{unit}'
                       f'</title></rect>')
        out.append(f'<text x="{x + bw / 2:.1f}" y="{h - 10}" font-size="10" text-anchor="middle">{escape(lab)}</text>')
    out.append("</svg>")
    return "".join(out)
