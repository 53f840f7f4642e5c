"""Run a script inside the real micropython binary with the firmware lib on
MICROPYPATH (and, for comparison, under CPython)."""
import os
import subprocess
import sys
from pathlib import Path

from fwtest import FW, micropython_bin


def run_mp(script: str, cwd: Path, heap="512k", timeout=120):
    env = dict(os.environ, MICROPYPATH=f"{FW / 'lib'}:.frozen")
    p = subprocess.run([micropython_bin(), "-X", f"heapsize={heap}", "-c", script], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def run_cpython(script: str, cwd: Path, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(FW / "lib"))
    p = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout
