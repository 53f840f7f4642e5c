"""`cart-gateway replay` says in one summary what it accepted and refused, and
fails when the config accepts none of the trace's carts (instead of a line per
message and exit 0)."""
import json
import os
import subprocess
import sys

from gwhelp import ROOT
from test_replay_trace import make_trace


def _replay(tmp_path, carts: str, *extra):
    trace = tmp_path / "t.jsonl"
    make_trace(trace)
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"[carts]\n{carts}\n[detector]\nenabled = false\n")
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "replay", str(trace), "--config", str(cfg),
                        "--out", str(out), *extra], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "gateway")),
                       capture_output=True, text=True, timeout=120)
    return r, out


def test_all_carts_refused_is_one_summary_and_a_failure(tmp_path):
    r, out = _replay(tmp_path, 'known = ["c999"]')
    assert r.returncode == 1, r.stderr
    err = r.stderr.splitlines()
    assert not any("is not in carts.known" in ln for ln in err), r.stderr     # no line per message
    assert any(ln.startswith("replay: ") and "0 carts and 0 messages accepted, 1 carts and" in ln for ln in err), r.stderr
    assert "refused carts: c001: cart not in the config's carts.known / carts.pattern (known = ['c999']" in r.stderr
    assert "accepted none of the trace's carts" in r.stderr
    res = json.loads(out.read_text())
    assert res["summary"]["carts_refused"] == ["c001"] and res["summary"]["nothing_accepted"]


def test_accepted_trace_summary_counts_the_refused_message(tmp_path):
    r, out = _replay(tmp_path, 'known = ["c001"]')
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    n = res["trace"]["records"]
    assert f"replay: {n} messages from 1 carts: 1 carts and {n - 1} messages accepted, 0 carts and 1 messages refused" \
        in r.stderr
    assert "refused messages: 1 malformed message, e.g. carts/c001/scale/evt" in r.stderr
    assert res["summary"]["messages_refused"] == {"malformed": 1}
