"""`cart-sim trace`: a §14 trace whose replay reaches the in-process baskets."""
import importlib.util
import json

import pytest

from cart_gateway.catalogue import Catalogue
from cart_gateway.protocol import decode_frame_chunk, parse_topic, read_trace
from cart_sim.cli import main as cli_main
from cart_sim.gwfeed import GatewayFeed


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace")
    mp = pytest.MonkeyPatch()
    mp.setenv("CART_SIM_CACHE", str(tmp_path_factory.mktemp("poolcache")))
    assert cli_main(["trace", "--scenario", "default", "--baskets", "3", "--seed", "4", "--out", str(out)]) == 0
    mp.undo()
    return out


def _receipt_view(r):
    return {"ok": r.get("ok"), "total_cents": r.get("total_cents"),
            "lines": [{k: ln[k] for k in ("sku", "qty", "price_cents", "status")} for ln in r.get("lines", [])]}


def test_trace_is_protocol_section_14(trace_dir):
    with open(trace_dir / "trace.jsonl", encoding="utf-8") as f:
        header, recs = read_trace(f)
    assert header["trace"] == 1
    kinds = {parse_topic(r.topic).kind for r in recs}
    assert {"status", "evt", "frame", "checkout"} <= kinds
    chunks = [decode_frame_chunk(r.payload) for r in recs if r.topic.endswith("/cam/frame")]
    assert chunks and all(c.count >= 1 and c.size > 0 for c in chunks)
    truth = json.loads((trace_dir / "truth.json").read_text())
    assert len(truth["baskets"]) == 3 and truth["summary"]["baskets"] == 3


def test_replaying_the_trace_reaches_the_same_baskets(trace_dir):
    """Messages only (no simulator shortcuts, frames decoded and run through the real detector)."""
    with open(trace_dir / "trace.jsonl", encoding="utf-8") as f:
        _, recs = read_trace(f)
    feed = GatewayFeed(Catalogue.load())
    for r in recs:
        feed.handle(r.topic, r.payload, r.t_ms)
    truth = json.loads((trace_dir / "truth.json").read_text())
    for b in truth["baskets"]:
        assert _receipt_view(feed.receipts[b["cart"]]) == b["receipt"], b["cart"]


CALM_TOML = """
name = "calm"
description = "no pushing, bumping, leaning or resting hands: every `unsettled` is closed by a `weight` event"
[baskets]
mean_items = 3
[behaviour]
p_push = 0.0
p_bump = 0.0
p_lean = 0.0
p_hand_rest = 0.0
p_put_back = 0.0
think_s_min = 2.0
think_s_max = 4.0
[dishonest]
fraction = 0.0
"""


@pytest.mark.skipif(importlib.util.find_spec("cart_gateway.replay") is None,
                    reason="cart_gateway.replay (the gateway's replay, branch gwsvc) is not importable here")
def test_cart_gateway_replay_reaches_the_same_baskets(tmp_path, monkeypatch):
    """The real gateway service (cart_gateway.replay.replay_file) on the trace reaches the
    in-process receipts. A calm scenario: with pushes and knocks the firmware leaves
    `unsettled` windows open that the service never closes (docs/simulation.md, "Known
    integration issue"), which the in-process feed works around and the service does not."""
    from cart_gateway.config import parse_config
    from cart_gateway.replay import replay_file
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path / "cache"))
    sc = tmp_path / "calm.toml"
    sc.write_text(CALM_TOML)
    out = tmp_path / "tr"
    assert cli_main(["trace", "--scenario", str(sc), "--baskets", "2", "--seed", "6", "--out", str(out)]) == 0
    cfg = parse_config({"gateway_id": "sim", "state_dir": str(tmp_path / "state")})
    result = replay_file(str(out / "trace.jsonl"), cfg, str(tmp_path / "state"))
    truth = json.loads((out / "truth.json").read_text())
    got = {r["cart"]: r for r in result["receipts"]}
    for b in truth["baskets"]:
        assert b["receipt"]["ok"], b["cart"]
        assert b["cart"] in got, f"replay issued no receipt for {b['cart']}"
        assert _receipt_view(got[b["cart"]]) == b["receipt"], b["cart"]
