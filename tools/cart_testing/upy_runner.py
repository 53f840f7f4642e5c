"""pytest collects firmware unit tests that run *inside* the real micropython.

Files `firmware/tests/upy/test_*.py` are MicroPython code, in the manner of
micropython-lib's tests: module-level `test_*` functions that use plain
`assert`. pytest does not import them; it runs each file once in the
`micropython` binary (`-X heapsize=` from a `# heapsize: N` line, default
256k), with MICROPYPATH = firmware/lib and the sim HAL, in a fresh temporary
working directory (files a test writes go there), and reports every
function as its own pytest item with the device-side traceback on failure.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

from cart_testing.mpy import run_micropython

ROOT = Path(__file__).resolve().parents[2]
UPY_DIR = ROOT / "firmware" / "tests" / "upy"
PATH = [ROOT / "firmware" / "lib", ROOT / "firmware" / "hal" / "sim", UPY_DIR]

# Runs inside micropython: imports the test module, calls each test_* in
# definition order, prints one JSON line per test.
HARNESS = r"""
import sys, io, json
mod = __import__(%r)
names = [n for n in dir(mod) if n.startswith("test_")]
for n in names:
    try:
        getattr(mod, n)()
        print(json.dumps({"name": n, "ok": True}))
    except Exception as e:
        buf = io.StringIO()
        sys.print_exception(e, buf)
        print(json.dumps({"name": n, "ok": False, "tb": buf.getvalue()}))
"""


class MicroPythonFailure(Exception):
    pass


class UpyFile(pytest.File):
    def collect(self):
        src = self.path.read_text()
        m = re.search(r"^# heapsize: (\w+)$", src, re.M)
        self.heap = m.group(1) if m else "256k"
        for name in re.findall(r"^def (test_\w+)\(", src, re.M):
            yield UpyItem.from_parent(self, name=name)

    def results(self) -> dict:
        if not hasattr(self, "_results"):
            # in a private working directory: a test's files (relative paths) cannot meet
            # another run's, and nothing lands in the tree
            with tempfile.TemporaryDirectory(prefix="upy-") as cwd:
                r = run_micropython(HARNESS % self.path.stem, PATH, heap=self.heap, timeout=120, cwd=Path(cwd))
            res = {}
            for line in r.stdout.splitlines():
                if line.startswith("{"):
                    try:
                        d = json.loads(line)
                        res[d["name"]] = d
                    except (ValueError, KeyError):
                        pass
            self._results = (res, r)
        return self._results


class UpyItem(pytest.Item):
    def runtest(self):
        res, proc = self.parent.results()
        got = res.get(self.name)
        if got is None:
            raise MicroPythonFailure(
                f"{self.name} did not run in micropython (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        if not got["ok"]:
            raise MicroPythonFailure(got["tb"])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"inside micropython:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"micropython: {self.name}"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    # Take these files from pytest's Python collector: they are not CPython code.
    if module_path.parent == UPY_DIR:
        return UpyFile.from_parent(parent, path=module_path)
    return None
