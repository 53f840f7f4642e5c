"""Build a board's flash filesystem image in a directory.

The same tree is what `cart-flash` copies onto a real board with mpremote and
what a virtual board boots from (`--target dir:PATH`): main.py and boot.py at
the root, `lib/cartfw/` and the board family's HAL modules in `lib/`, and
`config.json`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from cart_testing.mpy import mpy_cross_bin

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"


class BoardError(ValueError):
    pass


def load_board(name: str) -> dict:
    """The board definition boards/<name>/board.json, checked."""
    path = BOARDS / name / "board.json"
    if not path.exists():
        known = sorted(p.name for p in BOARDS.iterdir() if (p / "board.json").exists())
        raise BoardError(f"unknown board {name!r}: no {path}; known boards: {', '.join(known)}")
    try:
        board = json.loads(path.read_text())
    except ValueError as e:
        raise BoardError(f"{path}: not JSON ({e})") from None
    for field, typ in (("family", str), ("role", str), ("heap_budget", int)):
        if not isinstance(board.get(field), typ):
            raise BoardError(f"{path}: field {field!r} missing or not {typ.__name__}")
    if not (FIRMWARE / "hal" / board["family"]).is_dir():
        raise BoardError(f"{path}: field 'family': no HAL at firmware/hal/{board['family']}")
    return board


def config_template(name: str) -> dict:
    return json.loads((BOARDS / name / "config.template.json").read_text())


def build_fs(board_name: str, dest: Path, config: dict | None = None, mpy: bool = True) -> Path:
    """Write the board's filesystem into `dest` (replacing lib/ and code, keeping
    journal and other state files, as re-flashing code does on a board)."""
    board = load_board(board_name)
    dest.mkdir(parents=True, exist_ok=True)
    lib = dest / "lib"
    if lib.exists():
        shutil.rmtree(lib)
    shutil.copytree(FIRMWARE / "lib" / "cartfw", lib / "cartfw",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for f in sorted((FIRMWARE / "hal" / board["family"]).glob("*.py")):
        shutil.copy(f, lib / f.name)
    if mpy:
        # Compiled as on a board: the heap then holds no compiler work.
        mc = mpy_cross_bin()
        for f in sorted(lib.rglob("*.py")):
            r = subprocess.run([mc, "-o", str(f.with_suffix(".mpy")), str(f)],
                               capture_output=True, text=True)
            if r.returncode:
                raise BoardError(f"mpy-cross failed on {f.relative_to(dest)}: {r.stderr.strip()}")
            f.unlink()
    for entry in ("main.py", "boot.py"):
        shutil.copy(FIRMWARE / entry, dest / entry)
    if config is not None:
        tmp = dest / "config.json.tmp"
        tmp.write_text(json.dumps(config, indent=1))
        tmp.replace(dest / "config.json")
    return dest
