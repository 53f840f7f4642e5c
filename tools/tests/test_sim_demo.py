"""`cart-sim demo`: captions in product names, a view that fits 80x24, and a
clean Ctrl-C (no traceback, every process stopped, no folder left)."""
import io
import os
import signal
import subprocess
import sys
import time

from rich.console import Console

from cart_flash.fsimage import ROOT
from cart_gateway.catalogue import Catalogue
from cart_sim.demo import CartView, describe_answer, view

CAT = Catalogue.load()


def test_captions_name_the_product():
    s = next(iter(CAT))
    assert describe_answer("pick", {"sku": s.sku}, CAT) == f"screen (pick): picked {s.name}"
    assert describe_answer("scan", {"barcode": s.ean13}, CAT) == f"screen (scan): scanned {s.name}"
    assert describe_answer("personal", {"none": True}, CAT) == "screen (personal): said nothing was added"
    assert s.sku not in describe_answer("pick", {"sku": s.sku}, CAT)


def test_view_fits_an_80x24_terminal():
    longest = sorted(CAT, key=lambda s: len(s.name))[-12:]
    lines = [{"name": s.name, "qty": 1, "weight_g": 500.0, "price_cents": s.price_cents, "status": "accepted"}
             for s in longest]
    carts = [CartView(f"c00{n}", {"lines": lines, "version": 40, "open_prompts": 1, "open_reviews": 2},
                      [describe_answer("pick", {"sku": longest[0].sku}, CAT)] * 3, 12) for n in (1, 2, 3)]
    console = Console(width=80, height=24, file=io.StringIO(), record=True, color_system=None)
    console.print(view(carts, 42.0))
    text = console.export_text()
    rows = text.rstrip("\n").splitlines()
    assert len(rows) <= 24, text
    assert all(len(r) <= 80 for r in rows), text
    assert longest[-1].name[:20] in text           # the latest product is named


def _demo_processes(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if marker in cmd or marker in cwd:
            found.append(f"{pid}: {cmd}")
    return found


def _ctrl_c_as_in_a_terminal():
    # a pytest started from a script's background job (`cmd &`) ignores SIGINT, and so would
    # the demo it starts (an ignored signal is inherited): Python then installs no Ctrl-C
    # handler, the demo runs its full time and this test fails. A terminal's Ctrl-C reaches a
    # process that has the default handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_everything_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), CART_SIM_CACHE=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("gateway", "tools", "firmware/lib")))
    p = subprocess.Popen([sys.executable, "-m", "cart_sim.cli", "demo", "--carts", "1", "--seconds", "120"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, start_new_session=True,
                         preexec_fn=_ctrl_c_as_in_a_terminal)
    out = b""
    try:
        deadline = time.time() + 180
        while b"shoppers start" not in out and time.time() < deadline and p.poll() is None:
            out += p.stdout.readline()
        assert b"shoppers start" in out, out.decode() + p.stderr.read().decode() if p.poll() is not None else out
        assert b"starting" in out or b"broker on" in out           # it said what was starting
        assert _demo_processes(str(tmp))                          # the board and gateway processes run
        time.sleep(3)
        os.killpg(p.pid, signal.SIGINT)                           # what Ctrl-C in a terminal does
        rest, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    text = (out + rest).decode(errors="replace")
    assert p.returncode == 130, text + err.decode()
    assert "Traceback" not in text and b"Traceback" not in err, text + err.decode()
    assert "demo stopped (Ctrl-C)" in text
    assert list(tmp.iterdir()) == []                              # no cart-demo-* (or cart-hw-*) folder
    assert _demo_processes(str(tmp)) == []
