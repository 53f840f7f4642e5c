"""No absolute path of a development machine in the tracked tree (docs, comments,
code), and docs/README examples use repository-relative paths, not /tmp: what a
new user reads must work on their machine."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# built from parts so that this file does not match itself
MACHINE = re.compile(r"(?<![\w.~-])/(?:" + "|".join(["wo" + "rk", "ho" + "me", "ro" + "ot", "Us" + "ers"]) + r")/")
TMP_IN_DOCS = re.compile(r"(?<![\w.~-])/t" + r"mp/")
BINARY = {".tflite", ".npz", ".png", ".jpg", ".jpeg", ".mpy", ".bin", ".pdf"}


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):   # not a git checkout (a source tarball)
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    return [ROOT / n for n in names if Path(n).suffix not in BINARY and (ROOT / n).is_file()]


def _hits(pattern, files):
    hits = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    return hits


def test_there_are_files_to_check():
    names = {str(f.relative_to(ROOT)) for f in tracked_files()}
    assert {"README.md", "docs/protocol.md", "tools/cart_flash/fsimage.py"} <= names


def test_no_development_machine_paths_anywhere():
    hits = _hits(MACHINE, tracked_files())
    assert not hits, "absolute paths of a development machine:\n" + "\n".join(hits)


def test_docs_examples_use_relative_paths():
    docs = [f for f in tracked_files() if f.suffix == ".md"]
    hits = _hits(TMP_IN_DOCS, docs)
    assert not hits, "use a repository-relative path in examples:\n" + "\n".join(hits)


def test_cited_figures_are_in_the_repository():
    figures = ROOT / "docs" / "figures.md"
    assert figures.is_file()
    text = figures.read_text(encoding="utf-8")
    for cited in ("HX711 output rates", "76/211/EEC", "micropython-camera-API", "RP2040 watchdog"):
        assert cited in text
    assert "docs/figures.md" in (ROOT / "README.md").read_text(encoding="utf-8")
