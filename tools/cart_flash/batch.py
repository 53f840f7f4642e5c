"""Batch mode: flash the carts listed in a CSV, one row per board, and report
each. Columns: cart, board, target (required); calibration_offset,
calibration_scale (optional). A failed row does not stop the others."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

from cart_flash.errors import FlashError
from cart_flash.fsimage import BoardError

REQUIRED = ("cart", "board", "target")


def read_rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise FlashError(f"{path}: missing column(s) {', '.join(missing)}; "
                                 f"header must include {', '.join(REQUIRED)}")
            rows = []
            for n, row in enumerate(reader, start=2):
                empty = [c for c in REQUIRED if not (row.get(c) or "").strip()]
                if empty:
                    raise FlashError(f"{path} line {n}: empty {', '.join(empty)}")
                rows.append({k: (v or "").strip() for k, v in row.items() if k})
            return rows
    except OSError as e:
        raise FlashError(f"cannot read {path}: {e}") from None


def run_batch(rows: list[dict], flash_one: Callable[[dict], dict], log: Callable[[str], None] = print) -> list[dict]:
    """flash_one(row) -> result dict; returns one report per row."""
    reports = []
    for row in rows:
        name = f"{row['cart']}/{row['board']} on {row['target']}"
        log(f"=== {name}")
        try:
            res = flash_one(row)
            reports.append({**row, "ok": True, "error": None, "online_s": res.get("online_s")})
        except (FlashError, BoardError) as e:
            log(f"    FAILED: {e}")
            reports.append({**row, "ok": False, "error": str(e), "online_s": None})
    log("=== summary")
    for r in reports:
        state = "ok    " if r["ok"] else "FAILED"
        extra = f"online after {r['online_s']} s" if r["online_s"] is not None else (r["error"] or "")
        log(f"{state} {r['cart']:<12} {r['board']:<20} {extra}")
    log(f"{sum(r['ok'] for r in reports)}/{len(reports)} boards flashed")
    return reports
