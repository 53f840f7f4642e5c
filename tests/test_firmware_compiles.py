"""Every firmware file compiles for the device with mpy-cross (MicroPython 1.29, mpy v6).

Native-emitter code needs the target architecture, so each HAL family is
compiled for its chip; shared code is architecture-neutral bytecode."""
import subprocess
from pathlib import Path

import pytest

from cart_testing.mpy import mpy_cross_bin

ROOT = Path(__file__).resolve().parents[1]
ARCH = {"esp32": "xtensawin", "rp2040": "armv6m"}  # ESP32/ESP32-S3: Xtensa LX6/LX7; RP2040: Cortex-M0+


def _firmware_files():
    files = sorted((ROOT / "firmware").rglob("*.py"))
    return [f for f in files if "tests" not in f.relative_to(ROOT / "firmware").parts]


def _arch(path: Path) -> str | None:
    rel = path.relative_to(ROOT / "firmware").parts
    return ARCH.get(rel[1]) if rel[0] == "hal" else None


def test_there_is_firmware_to_compile():
    names = {f.name for f in _firmware_files()}
    assert {"main.py", "runtime.py", "mqtt.py", "journal.py", "hal.py"} <= names


@pytest.mark.parametrize("path", _firmware_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_with_mpy_cross(path, tmp_path):
    cmd = [mpy_cross_bin(), "-o", str(tmp_path / "out.mpy")]
    if _arch(path):
        cmd.append(f"-march={_arch(path)}")
    r = subprocess.run(cmd + [str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    head = (tmp_path / "out.mpy").read_bytes()[:2]
    assert head[0] == ord("M") and head[1] == 6, f"not an mpy v6 file: {head!r}"
