"""boards/: every board definition is complete, its config template passes
the firmware's own validation (inside micropython), and its manifest.py names
files that exist (the runtime part) when run with micropython-lib's manifest
functions stubbed to record what they are given."""
import json
from pathlib import Path

import pytest

from fwtest import ROOT
from mp import run_mp

BOARDS = ROOT / "boards"
NAMES = ["cart-scale-esp32", "cart-cam-esp32s3", "cart-scale-rp2040w", "sim-scale", "sim-cam"]
FAMILY = {"cart-scale-esp32": "esp32", "cart-cam-esp32s3": "esp32", "cart-scale-rp2040w": "rp2040",
          "sim-scale": "sim", "sim-cam": "sim"}


def run_manifest(path: Path, seen):
    def resolve(base):
        return (path.parent / base).resolve()

    def include(p):
        if p.startswith("$(PORT_DIR)"):
            seen.append(("port", p))
            return
        run_manifest((path.parent / p).resolve(), seen)

    def module(p, base_path="."):
        seen.append(("module", resolve(base_path) / p))

    def package(p, base_path=".", files=None, opt=None):
        seen.append(("package", resolve(base_path) / p))

    env = {"metadata": lambda **kw: seen.append(("metadata", kw)), "include": include,
           "module": module, "package": package, "require": lambda *a, **k: seen.append(("require", a))}
    exec(compile(path.read_text(), str(path), "exec"), env)
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_board_definition(name):
    d = BOARDS / name
    b = json.loads((d / "board.json").read_text())
    for k in ("name", "family", "chip", "role", "pins", "heap_budget", "micropython", "flash", "manifest"):
        assert k in b, f"{name}/board.json: missing {k}"
    assert b["name"] == name and b["family"] == FAMILY[name]
    assert b["role"] in ("scale", "cam")
    assert isinstance(b["heap_budget"], int) and b["heap_budget"] >= 65536
    if b["family"] == "esp32":
        assert b["flash"]["offsets"]["firmware.bin"] in ("0x1000", "0x0")
    seen = run_manifest(d / b["manifest"], [])
    mods = [p for kind, p in seen if kind == "module"]
    assert any(str(p).endswith(f"firmware/hal/{b['family']}/hal.py") for p in mods)
    for m in ("mqtt", "journal", "runtime", "proto", "config", "app"):
        p = ROOT / "firmware" / "lib" / "cartfw" / f"{m}.py"
        assert p in mods and p.exists()
    # every runtime/HAL file we own exists; app parts belong to other helpers
    for p in mods:
        if "cartfw/apps/" in str(p) or p.name.endswith("_drv.py") or p.name in ("hwlink.py", "framing.py"):
            continue
        assert p.exists(), p
    if b["family"] != "sim":
        assert ("port", "$(PORT_DIR)/boards/manifest.py") in seen


@pytest.mark.micropython
def test_config_templates_validate_in_micropython(tmp_path):
    items = []
    for name in NAMES:
        b = json.loads((BOARDS / name / "board.json").read_text())
        items.append([name, b["role"], b["family"] != "sim",
                      json.loads((BOARDS / name / "config.template.json").read_text())])
    script = ("import json\nfrom cartfw import config\n"
              f"for name, role, wifi, raw in json.loads({json.dumps(json.dumps(items))}):\n"
              "    cfg = config.validate(raw, need_wifi=wifi)\n"
              "    assert cfg['board'] == role, name\n"
              "    print(name, 'ok')\n")
    out = run_mp(script, tmp_path)
    assert out.split() == [w for n in NAMES for w in (n, "ok")]
