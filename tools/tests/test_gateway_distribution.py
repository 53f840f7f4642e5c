"""The gateway distribution (what a Raspberry Pi installs, `pip install ./gateway`) carries
the service and nothing of the benchmarks: cart-bench, its payload builders and synthetic
catalogues live in the development distribution (tools/cart_bench)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("bench", "testkit", "synth", "scenario")


def _wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "gateway" / "pyproject.toml", src)
    shutil.copytree(ROOT / "gateway" / "cart_gateway", src / "cart_gateway",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    str(src), "-w", str(out)], check=True, cwd=tmp_path)
    [whl] = out.glob("cart_gateway-*.whl")
    return whl


def test_gateway_wheel_has_no_benchmark_modules_and_imports_alone(tmp_path):
    whl = _wheel(tmp_path)
    names = zipfile.ZipFile(whl).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert "cart_gateway/service/gateway.py" in modules and "cart_gateway/reconcile/scoring.py" in modules
    assert not [n for n in modules if any(w in Path(n).stem for w in DEV_ONLY)], modules
    assert not [n for n in names if n.startswith("cart_bench")]
    with zipfile.ZipFile(whl) as z:   # nothing in the runtime reaches for the dev package
        for n in modules:
            assert b"cart_bench" not in z.read(n), n
    # installed alone (no dependencies pulled, the tree off the path), the service imports
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(whl)],
                   check=True, cwd=tmp_path)
    code = ("import cart_gateway, cart_gateway.service, cart_gateway.cli, sys; "
            f"assert cart_gateway.__file__.startswith({str(site)!r}), cart_gateway.__file__; "
            "assert not [m for m in sys.modules if m.startswith('cart_bench')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
