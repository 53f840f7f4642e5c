"""A virtual board's heap is the device's data budget plus `code_in_heap`
(boards/sim-*/board.json): on a device the firmware's bytecode is frozen into
flash, under the unix port it sits in the heap. This test measures what the
firmware's code really takes, so the allowance cannot hide a data-heap leak."""
import json
from pathlib import Path

import pytest

from cart_flash.fsimage import build_fs
from cart_testing.mpy import run_micropython

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "sim-scale": "cartfw.app cartfw.runtime cartfw.mqtt cartfw.journal cartfw.config cartfw.proto "
                 "cartfw.commands cartfw.telemetry cartfw.safemode cartfw.tls cartfw.clock cartfw.ntp hal hwlink hx711_drv "
                 "cartfw.apps.scale cartfw.scale.pipeline cartfw.scale.settle cartfw.scale.spike cartfw.scale.loop",
    "sim-cam": "cartfw.app cartfw.runtime cartfw.mqtt cartfw.journal cartfw.config cartfw.proto "
               "cartfw.commands cartfw.telemetry cartfw.safemode cartfw.tls cartfw.clock cartfw.ntp hal hwlink camera_drv "
               "cartfw.apps.camera cartfw.framing cartfw.camera.burst cartfw.camera.trigger "
               "cartfw.camera.change cartfw.camera.settings cartfw.camera.still",
}


@pytest.mark.parametrize("board", sorted(MODULES))
def test_firmware_code_fits_the_code_allowance(board, tmp_path):
    build_fs(board, tmp_path, None, mpy=True)
    allowance = json.loads((ROOT / "boards" / board / "board.json").read_text())["code_in_heap"]
    script = ("import gc, asyncio, socket, json, struct, binascii, os, time\n"
              "gc.collect(); a = gc.mem_alloc()\n"
              + "".join(f"import {m}\n" for m in MODULES[board].split())
              + "gc.collect(); print(gc.mem_alloc() - a)\n")
    r = run_micropython(script, [tmp_path / "lib"], heap="1m", cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    code = int(r.stdout.split()[-1])
    print(f"{board}: firmware code in heap {code} bytes, allowance {allowance}")
    assert code <= allowance, f"{board}: code takes {code} bytes, over code_in_heap {allowance}"
    assert code > allowance / 3, "allowance far above the measured code: shrink it"
