"""`cart-gateway replay --truth truth.json` scores the replay against the
truth of a `cart-sim trace` with the bench's own scoring: the replay of the
simulator's messages gets the simulator's figures."""
import json
import os
import subprocess
import sys

import pytest

from cart_flash.fsimage import ROOT
from cart_sim.cli import main as sim_main

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("gateway", "tools", "firmware/lib")))


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace")
    mp = pytest.MonkeyPatch()
    mp.setenv("CART_SIM_CACHE", str(tmp_path_factory.mktemp("poolcache")))
    assert sim_main(["trace", "--scenario", "default", "--baskets", "3", "--seed", "4", "--out", str(out)]) == 0
    mp.undo()
    return out


def _replay(trace_dir, config, *extra):
    return subprocess.run([sys.executable, "-m", "cart_gateway.cli", "replay", str(trace_dir / "trace.jsonl"),
                           "--config", str(config), "--out", str(trace_dir / "r.json"), *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def test_replay_scored_against_truth_matches_the_simulator(trace_dir, tmp_path):
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[carts]\npattern = "s[0-9]{5}"\n')
    r = _replay(trace_dir, cfg, "--truth", str(trace_dir / "truth.json"))
    assert r.returncode == 0, r.stderr
    truth = json.loads((trace_dir / "truth.json").read_text())
    score = json.loads((trace_dir / "r.json").read_text())["score"]
    for k in ("baskets", "items", "human_reviews_per_1000_baskets", "shopper_prompts_per_100_items",
              "wrong_baskets_per_1000", "overcharged_baskets_per_1000", "checkout_refused_baskets"):
        assert score[k] == truth["summary"][k], k
    assert "shopper_prompts_per_100_items: " in r.stderr and "goal <= 2: " in r.stderr
    assert "wrong_baskets_per_1000: " in r.stderr and "goal <= 1: " in r.stderr


def test_documented_example_config_refuses_simulated_carts(trace_dir):
    r = _replay(trace_dir, ROOT / "gateway" / "systemd" / "gateway.toml")
    assert r.returncode == 1
    assert "refused carts: s00000, s00001, s00002" in r.stderr and "pattern = 'c[0-9]{3}'" in r.stderr
    assert len(r.stderr.splitlines()) < 10, r.stderr


def test_truth_that_is_not_a_truth_file(trace_dir, tmp_path):
    bad = tmp_path / "truth.json"
    bad.write_text("[]")
    r = _replay(trace_dir, ROOT / "gateway" / "systemd" / "gateway.toml", "--truth", str(bad))
    assert r.returncode == 2 and "not a truth.json from cart-sim trace" in r.stderr
    assert "Traceback" not in r.stderr
