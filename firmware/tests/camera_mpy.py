# Run a script inside the real `micropython` binary with the firmware staged as
# on a sim board: <dir>/lib/cartfw (firmware/lib/cartfw) and the sim HAL's
# files flat in <dir>/lib (firmware/hal/sim/*.py). A small local helper for the
# camera/framing tests until the generic runner in tools/cart_testing exists.
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


from cart_testing.mpy import micropython_bin  # noqa: E402
from cartfw.camera.settings import SPEC  # noqa: E402

# the default burst (app.burst_frames): its frame numbers in a fresh boot epoch
BURST_N = SPEC["burst_frames"][0]
BURST_FRAMES = list(range(1, BURST_N + 1))


def stage(dest):
    lib = Path(dest) / "lib"
    if not (lib / "cartfw").exists():
        shutil.copytree(ROOT / "firmware/lib/cartfw", lib / "cartfw")
        for f in (ROOT / "firmware/hal/sim").glob("*.py"):
            shutil.copy(f, lib / f.name)
    return lib


def run_mpy(script, workdir, heap="1M", timeout=120):
    """Run `script` (source text) under micropython in workdir; return stdout.
    A non-zero exit raises AssertionError carrying stderr/stdout."""
    lib = stage(workdir)
    path = Path(workdir) / "script.py"
    path.write_text(script)
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % lib)
    p = subprocess.run([micropython_bin(), "-X", "heapsize=%s" % heap, str(path)], cwd=workdir,
                       env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("micropython exit %d\nstdout:\n%s\nstderr:\n%s"
                             % (p.returncode, p.stdout, p.stderr))
    return p.stdout
