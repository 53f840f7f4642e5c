"""Build a board's flash filesystem image in a directory.

The same tree is what `cart-flash` copies onto a real board with mpremote and
what a virtual board boots from (`--target dir:PATH`): main.py and boot.py at
the root, `lib/cartfw/` and the board family's HAL modules in `lib/` as .mpy
files compiled by mpy-cross for the board's architecture (board.json
`mpy_march`: native-emitter code such as the ESP32 HX711 driver only compiles
for its chip), and `config.json`. The whole image is built and checked in a
scratch directory first and only then put in place, so a failed build leaves
the previous image (and the device) as it was.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cart_testing.mpy import mpy_cross_bin

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"

# sys.implementation._mpy >> 10 and the .mpy header's arch field (py/persistentcode.h)
MPY_ARCHS = ["none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
             "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc"]
_HOST_ARCH = {"x86_64": "x64", "amd64": "x64", "i386": "x86", "i686": "x86", "armv7l": "armv7m"}


class BoardError(ValueError):
    pass


def known_boards() -> list[str]:
    return sorted(p.name for p in BOARDS.iterdir() if (p / "board.json").exists())


def load_board(name: str) -> dict:
    """The board definition boards/<name>/board.json, checked."""
    path = BOARDS / name / "board.json"
    if not path.exists():
        raise BoardError(f"unknown board {name!r}: no {path.relative_to(BOARDS.parent)}; "
                         f"known boards: {', '.join(known_boards())}")
    where = path.relative_to(BOARDS.parent)
    try:
        board = json.loads(path.read_text())
    except ValueError as e:
        raise BoardError(f"{where}: not JSON ({e})") from None
    for field, typ in (("family", str), ("role", str), ("heap_budget", int), ("micropython", str),
                       ("mpy_march", str)):
        if field not in board:
            raise BoardError(f"{where}: field {field!r} missing ({_FIELD_HELP[field]})")
        if not isinstance(board[field], typ):
            raise BoardError(f"{where}: field {field!r} is not a {typ.__name__} ({_FIELD_HELP[field]})")
    if not (FIRMWARE / "hal" / board["family"]).is_dir():
        raise BoardError(f"{where}: field 'family': no HAL at firmware/hal/{board['family']}")
    if board["mpy_march"] != "host" and board["mpy_march"] not in MPY_ARCHS[1:]:
        raise BoardError(f"{where}: field 'mpy_march' {board['mpy_march']!r} is not one of "
                         f"{', '.join(MPY_ARCHS[1:])} or host")
    board.setdefault("name", name)
    return board


_FIELD_HELP = {
    "family": "the HAL folder in firmware/hal/, e.g. esp32",
    "role": "scale or cam",
    "heap_budget": "bytes of GC heap the firmware may use",
    "micropython": "the MicroPython the board needs, e.g. \">=1.23\"",
    "mpy_march": "mpy-cross -march for the chip: xtensawin (ESP32, ESP32-S3), armv6m (RP2040), host (virtual)",
}


def resolve_march(march: str) -> str:
    """`host` (virtual boards: the unix port runs here) as the arch name mpy-cross uses."""
    if march != "host":
        return march
    return _HOST_ARCH.get(platform.machine().lower(), "host")


def config_template(name: str) -> dict:
    return json.loads((BOARDS / name / "config.template.json").read_text())


# ------------------------------------------------------------------ manifest
@dataclass(frozen=True)
class ManifestModule:
    source: str        # repository-relative source file
    image_path: str    # where it is in the filesystem image


def manifest_modules(board_name: str) -> list[ManifestModule]:
    """The modules boards/<name>/manifest.py (and what it includes) freezes, as
    the files the filesystem image must hold. The port's own manifest
    ($(PORT_DIR)/...) is not ours and is skipped; main.py goes to the root."""
    found: dict[str, ManifestModule] = {}

    def run(path: Path) -> None:
        here = path.parent

        def base(base_path: str) -> Path:
            return (here / base_path).resolve()

        def module(name: str, base_path: str = ".", opt=None) -> None:
            src = base(base_path) / name
            dest = name if name in ("main.py", "boot.py") else f"lib/{Path(name).with_suffix('.mpy')}"
            found[dest] = ManifestModule(str(src.relative_to(ROOT)), dest)

        def package(name: str, files=None, base_path: str = ".", opt=None) -> None:
            root = base(base_path)
            for f in sorted((root / name).rglob("*.py")):
                module(str(f.relative_to(root)), base_path)

        def include(manifest: str, **kw) -> None:
            if not manifest.startswith("$("):
                run((here / manifest).resolve())

        scope = {"metadata": lambda **kw: None, "include": include, "module": module,
                 "package": package, "require": lambda *a, **kw: None, "freeze": lambda *a, **kw: None}
        exec(compile(path.read_text(), str(path), "exec"), scope)

    path = BOARDS / board_name / "manifest.py"
    if not path.exists():
        raise BoardError(f"board {board_name!r}: no boards/{board_name}/manifest.py")
    run(path)
    return sorted(found.values(), key=lambda m: m.image_path)


# ------------------------------------------------------------------ .mpy
@dataclass(frozen=True)
class MpyHeader:
    major: int
    sub: int
    arch: str          # "none" for bytecode-only files


def read_mpy_header(path: Path) -> MpyHeader:
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise BoardError(f"{path.name}: not an .mpy file (header {head!r})")
    arch = head[2] >> 2
    return MpyHeader(head[1], head[2] & 3, MPY_ARCHS[arch] if arch < len(MPY_ARCHS) else f"arch{arch}")


def _compile(src_root: Path, march: str, major: int) -> None:
    """Compile every .py under src_root/lib in place into .mpy, checked (one mpy-cross per file, in parallel)."""
    mc = mpy_cross_bin()
    arch = resolve_march(march)

    def one(f: Path) -> str | None:
        rel = f.relative_to(src_root)
        out = f.with_suffix(".mpy")
        # -s: tracebacks on the board name the image path, not this machine's
        r = subprocess.run([mc, f"-march={march}", "-s", str(rel.relative_to("lib")), "-o", str(out), str(f)],
                           capture_output=True, text=True)
        if r.returncode:
            err = r.stderr.strip().splitlines()
            return f"mpy-cross -march={march} failed on {rel}: {err[-1] if err else 'exit %d' % r.returncode}"
        h = read_mpy_header(out)
        if h.major != major or h.arch not in ("none", arch):
            return (f"{rel}: mpy-cross wrote .mpy v{h.major} arch {h.arch}; "
                    f"the board needs v{major} arch {arch} (or bytecode only)")
        f.unlink()
        return None

    files = sorted((src_root / "lib").rglob("*.py"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        errors = [e for e in pool.map(one, files) if e]
    if errors:
        raise BoardError(errors[0] + (f" (and {len(errors) - 1} more files)" if len(errors) > 1 else ""))


def _mpy_major() -> int:
    from cart_flash.device import mpy_cross_version
    return mpy_cross_version()[0]


def build_fs(board_name: str, dest: Path, config: dict | None = None, mpy: bool = True) -> Path:
    """Write the board's filesystem into `dest` (replacing lib/ and code, keeping
    journal and other state files, as re-flashing code does on a board). The image
    is built and checked beside `dest` first; `dest` changes only once it is complete."""
    board = load_board(board_name)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cart-image-", dir=dest.parent) as tmp:
        new = Path(tmp)
        lib = new / "lib"
        shutil.copytree(FIRMWARE / "lib" / "cartfw", lib / "cartfw",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for f in sorted((FIRMWARE / "hal" / board["family"]).glob("*.py")):
            shutil.copy(f, lib / f.name)
        # A module the board's own folder provides replaces the family HAL's of the same
        # name (cart-scale-esp32-nau7802's hx711_drv.py hands the ADC slot to nau7802_drv).
        own = BOARDS / board_name
        for m in manifest_modules(board_name):
            src = ROOT / m.source
            if src.parent == own and m.image_path.startswith("lib/"):
                shutil.copy(src, lib / src.name)
        if mpy:
            # Compiled as on a board: the heap then holds no compiler work.
            _compile(new, board["mpy_march"], _mpy_major())
        for entry in ("main.py", "boot.py"):
            shutil.copy(FIRMWARE / entry, new / entry)
        if mpy:
            missing = [m for m in manifest_modules(board_name) if not (new / m.image_path).is_file()]
            if missing:
                raise BoardError(f"{board_name} image is incomplete: "
                                 + ", ".join(f"{m.image_path} (from {m.source})" for m in missing))
        dest.mkdir(exist_ok=True)
        if (dest / "lib").exists():
            shutil.rmtree(dest / "lib")
        # a rename where dest shares the scratch folder's filesystem; a copy where it does not
        # (a flash mounted as its own filesystem, as the flash-fault tests do)
        shutil.move(str(lib), str(dest / "lib"))
        for entry in ("main.py", "boot.py"):
            shutil.move(str(new / entry), str(dest / entry))
    if config is not None:
        tmp_cfg = dest / "config.json.tmp"
        tmp_cfg.write_text(json.dumps(config, indent=1))
        tmp_cfg.replace(dest / "config.json")
    return dest


def image_files(fs: Path) -> list[str]:
    """The image's files, repository-style relative paths (for the plan and reports)."""
    return sorted(str(p.relative_to(fs)) for p in Path(fs).rglob("*") if p.is_file())
