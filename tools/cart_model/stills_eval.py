"""`cart-model eval` section `barcode`: EAN-13 read rate on held-out stills.

Stills are rendered by render.render_still (seeds disjoint from every
training and test range), encoded as the camera board does (JPEG q80) and
read by the gateway's own reader (cart_gateway.barcodes.StillBarcodeReader),
so the figure includes the decode, the region search and zxing-cpp. A share
`p_facing` of the stills has the code on the face the camera sees; the rest
have it on a hidden face (nothing a reader could find, still rendered and
read, so a wrong read there would count).
"""
from __future__ import annotations

import random
from collections import defaultdict

from cart_gateway.barcodes import StillBarcodeReader
from cart_gateway.catalogue import Catalogue

from .render import VIEW_MM, encode_jpeg, render_still

STILL_SEED0 = 95_000_000   # held out: train 0.., val 50M.., test 90M.. (dataset.py)
CONDITIONS = ("clear", "hand", "oov")


def _pct(a: list[float], q: float) -> float | None:
    a = sorted(a)
    return round(a[min(len(a) - 1, int(q * len(a)))], 1) if a else None


def barcode_eval(catalogue_path=None, stills: int = 200, seed: int = 0, res: str = "UXGA",
                 view_mm: float = VIEW_MM, p_facing: float = 0.35, occlusion_max: float = 0.6) -> dict:
    cat = Catalogue.load(catalogue_path)
    skus = [s.sku for s in cat if s.shape != "produce"]   # loose produce carries no EAN-13 here
    reader = StillBarcodeReader()
    n = facing_n = right = right_facing = wrong = 0
    ms, sizes = [], []
    by = defaultdict(lambda: [0, 0])        # "<shape>" / "<condition>" / module-px bin -> [read, facing]
    for i in range(stills):
        s0 = STILL_SEED0 + seed + i
        rng = random.Random(s0)
        sku = rng.choice(skus)
        cond = CONDITIONS[i % 3]
        facing = rng.random() < p_facing
        occ = rng.uniform(0.3 * occlusion_max, occlusion_max) if cond == "hand" else rng.uniform(0, 0.1)
        oov = rng.uniform(0.4, 0.5) if cond == "oov" else 0.0
        basket = [rng.choice(skus) for _ in range(rng.randint(0, 3))]
        img, truth = render_still(cat, sku, s0, res, basket_skus=basket, occlusion=occ, out_of_view=oov,
                                  facing=facing, view_mm=view_mm)
        jpeg = encode_jpeg(img)
        sizes.append(len(jpeg))
        r = reader.read(jpeg)
        ms.append(r.ms)
        want = cat[sku].ean13
        hit = want in r.codes
        n += 1
        right += hit
        wrong += any(c != want for c in r.codes)
        if facing:
            facing_n += 1
            right_facing += hit
            mp = truth["barcode"]["module_px"]
            for k in (cat[sku].shape, cond, f"{min(3.0, round(mp * 2) / 2):.1f}px"):
                by[k][0] += hit
                by[k][1] += 1
    return {
        "res": res, "view_mm": view_mm, "p_facing": p_facing, "stills": n, "facing": facing_n,
        "read_rate_facing": round(right_facing / facing_n, 4) if facing_n else None,
        "read_rate": round(right / n, 4) if n else None,
        "wrong_reads": wrong,
        "read_ms_p50": _pct(ms, 0.5), "read_ms_p95": _pct(ms, 0.95),
        "jpeg_bytes_p50": int(_pct(sizes, 0.5) or 0), "jpeg_bytes_max": max(sizes) if sizes else 0,
        "facing_read_rate_by": {k: round(v[0] / v[1], 3) for k, v in sorted(by.items())},
        "facing_count_by": {k: v[1] for k, v in sorted(by.items())},
    }
