"""`cart-sim bench` output: each figure beside its goal, the last stdout line one
JSON object, a progress bar with time left on a terminal's stderr only."""
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from cart_flash.fsimage import ROOT
from cart_sim.bench import GOALS, figure_lines


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return dict(os.environ, CART_SIM_CACHE=str(tmp_path_factory.mktemp("poolcache")),
                PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("gateway", "tools", "firmware/lib")))


def _bench(env, *args):
    return subprocess.run([sys.executable, "-m", "cart_sim.cli", "bench", "--baskets", "2", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_json_prints_exactly_one_json_object_and_no_progress(env):
    r = _bench(env, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and isinstance(json.loads(lines[0]), dict)
    assert "baskets" not in r.stderr and "\x1b[" not in r.stderr


def test_figures_are_printed_beside_their_goals(env):
    r = _bench(env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    out = json.loads(lines[-1])
    assert out["baskets"] == 2
    assert {"human_reviews_per_1000_baskets", "shopper_prompts_per_100_items", "wrong_baskets_per_1000",
            "wall_s"} <= set(out) & set(GOALS)
    for key in set(out) & set(GOALS):
        (line,) = [ln for ln in lines[:-1] if ln.strip().startswith(key + ":")]
        assert re.search(r"goal <= \d+.*: (met|MISSED)$", line), line
    assert "\x1b[" not in r.stdout and "\x1b[" not in r.stderr     # not a terminal: no bar
    assert "s left" in r.stderr                                        # plain progress lines instead


def test_goal_lines_say_met_or_missed():
    out = {"baskets": 2000, "wrong_baskets_per_1000": 0.5, "shopper_prompts_per_100_items": 3.1, "wall_s": 590.0}
    text = "\n".join(figure_lines(out))
    assert re.search(r"wrong_baskets_per_1000: 0.5 +goal <= 1: met", text)
    assert re.search(r"shopper_prompts_per_100_items: 3.1 +goal <= 2: MISSED", text)
    assert re.search(r"wall_s: 590.0 +goal <= 300 s per 1,000 baskets: met", text)   # 295 s per 1,000


def test_progress_bar_with_time_left_on_a_terminal(env):
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "cart_sim.cli", "bench", "--baskets", "3"],
                         stdout=subprocess.PIPE, stderr=slave, env=dict(env, COLUMNS="100"), cwd=ROOT)
    os.close(slave)
    seen = b""
    deadline = time.time() + 300
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif p.poll() is not None:
            break
    out, _ = p.communicate(timeout=60)
    os.close(master)
    assert p.returncode == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    assert re.search(r"baskets .*\d/3 \d+:\d\d:\d\d left \d+:\d\d:\d\d", text), text[-2000:]
    assert "\x1b[" not in out.decode()                 # the bar is never on stdout
    assert json.loads(out.decode().splitlines()[-1])["baskets"] == 3


def test_every_prompt_and_review_is_counted_with_its_cause(env):
    # issue 12: the floor attributed decision by decision (the decision log's `cause`)
    r = _bench(env, "--scenario", "hard", "--oracle", "vision,scale,shopper", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    causes = out["asks_and_reviews_by_cause"]
    assert "other" not in causes and causes, causes
    asks = sum(n for k, n in causes.items() if ": ask: " in k)
    reviews = sum(n for k, n in causes.items() if ": review: " in k)
    assert asks == sum(out["prompts_by_action"].values()) and reviews == sum(out["reviews_by_action"].values())
    assert all(re.fullmatch(r"[a-z_0-9+\[\]]+: (ask|review): \S.*", k) for k in causes), causes
