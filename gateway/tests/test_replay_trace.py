"""`cart-gateway replay`: the live handlers on a recorded trace, deterministic, no broker."""
import json
import subprocess
import sys

from gwcore import JPEG, JUICE, KETCHUP
from gwhelp import ROOT

from cart_gateway.protocol import trace_line
from cart_bench.testkit import Board, answer, checkout, frame_chunks


def make_trace(path):
    t = 1_700_000_000_000
    lines = [json.dumps({"trace": 1, "created_ms": t, "source": "test"})]
    scale, cam = Board("c001"), Board("c001", "cam", mono_ms=90_000)

    def add(topic, payload, dt=60):
        nonlocal t
        t += dt
        lines.append(trace_line(t, topic, 1, False, payload))

    # 1: ketchup, weight only (decided on the timer after the 1.5 s wait)
    for topic, p in scale.movement(KETCHUP[1]):
        add(topic, p)
    # 2: juice with a capture burst of 2 frames, then the weight
    add(scale.topic, scale.unsettled(), 2000)
    useq = scale.seq
    add(cam.topic, cam.capture([1, 2], ref=f"c001/scale/1/{useq}"))
    for n in (1, 2):
        for ch in frame_chunks(cam.epoch, n, JPEG):
            add("carts/c001/cam/frame", ch, 5)
    w = scale.weight(JUICE[1], unsettled_seq=useq)
    add(scale.topic, w)
    add(scale.topic, w, 10)                            # QoS 1 redelivery: same identity
    add("carts/c001/screen/answer", answer("c001-p1", "a1", sku=KETCHUP[0]), 3000)
    add("carts/c001/screen/answer", answer("c001-p2", "a2", sku=JUICE[0]), 500)
    add("carts/c001/checkout", checkout("r1"), 3000)
    add("carts/c001/scale/evt", b"garbage", 10)
    path.write_text("\n".join(lines) + "\n")


def run_replay(tmp_path, trace, name):
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "unused"}"\n[carts]\nknown = ["c001"]\n[detector]\nenabled = false\n')
    out = tmp_path / f"{name}.json"
    r = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "replay", str(trace), "--config", str(cfg),
                        "--out", str(out)], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "gateway")},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def test_replay_is_deterministic_and_reports_baskets_receipts_prompts_reviews(tmp_path):
    trace = tmp_path / "t.jsonl"
    make_trace(trace)
    a = run_replay(tmp_path, trace, "a")
    b = run_replay(tmp_path, trace, "b")
    ta, tb = a.pop("timing"), b.pop("timing")
    assert a == b                                     # same trace, same result
    assert ta["decisions"] and all("processing_ms" in d for d in ta["decisions"])
    assert a["trace"]["records"] > 10
    for key in ("baskets", "receipts", "prompts", "reviews", "prompts_issued", "decisions"):
        assert key in a
    assert not (tmp_path / "unused").exists()         # replay never touches the configured state dir


def test_replay_result_content(tmp_path):
    trace = tmp_path / "t.jsonl"
    make_trace(trace)
    res = run_replay(tmp_path, trace, "a")
    (rec,) = res["receipts"]
    assert rec["ok"] and rec["req_id"] == "r1" and rec["cart"] == "c001"
    assert sorted(ln["sku"] for ln in rec["lines"]) == sorted([KETCHUP[0], JUICE[0]])
    assert rec["total_cents"] == 279 + 229
    assert [p["prompt_id"] for p in res["prompts_issued"]] == ["c001-p1", "c001-p2"]
    assert res["baskets"]["c001"]["lines"] == []      # a fresh basket after checkout
    assert res["reviews"] == []
    outcomes = [d["outcome"] for d in res["decisions"]]
    assert outcomes == ["ask", "ask", "answer", "answer"], outcomes
    assert len(res["timing"]["decisions"]) == len(res["decisions"])
    assert {d["outcome"] for d in res["timing"]["decisions"]} >= {"ask", "answer"}


def test_replay_of_a_cart_sim_trace_charges_what_the_simulators_gateway_charged(tmp_path):
    """A trace from the virtual store (real JPEG frames, lost chunks, answers, verdicts, checkouts)
    replayed with the real detector gives the receipts the simulator's in-process gateway issued
    (the same service, driven in process by cart_sim.fastsim): the detector adds nothing of its own."""
    r = subprocess.run([sys.executable, "-m", "cart_sim.cli", "trace", "--baskets", "2", "--seed", "3",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": f"{ROOT / 'gateway'}:{ROOT / 'tools'}:{ROOT / 'firmware/lib'}"})
    assert r.returncode == 0, r.stderr
    truth = json.loads((tmp_path / "truth.json").read_text())
    cfg = tmp_path / "gw.toml"   # the config's gateway id is gw1: the trace header's ("sim") is used
    cfg.write_text(f'state_dir = "{tmp_path / "unused"}"\n[carts]\npattern = "s[0-9]+"\n')
    out = tmp_path / "result.json"
    r = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "replay", str(tmp_path / "trace.jsonl"),
                        "--config", str(cfg), "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={"PYTHONPATH": str(ROOT / "gateway")})
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert (res["trace"]["gateway_id"], res["trace"]["gateway_id_from"]) == ("sim", "trace header")
    assert any(r["status"] == "closed" and r["verdict"] for r in res["reviews"]) or not res["reviews"]
    got = {x["cart"]: x["total_cents"] for x in res["receipts"] if x["ok"]}
    assert got == {b["cart"]: b["charged_cents"] for b in truth["baskets"]}


def _verdict_trace(path, header_extra: dict, gw_in_topic: str):
    """A weight-only movement the shopper answers 'none of these' -> review; a verdict sent to
    `gateway/<gw_in_topic>/review/verdict` settles it."""
    from cart_bench.testkit import verdict
    t = 1_700_000_000_000
    lines = [json.dumps(dict({"trace": 1, "created_ms": t, "source": "test"}, **header_extra))]
    scale = Board("c001")
    for topic, p in scale.movement(KETCHUP[1]):
        t += 60
        lines.append(trace_line(t, topic, 1, False, p))
    t += 2000
    lines.append(trace_line(t, "carts/c001/screen/answer", 1, False, answer("c001-p1", "a1", none=True)))
    t += 500
    lines.append(trace_line(t, f"gateway/{gw_in_topic}/review/verdict", 1, False,
                            verdict("c001-r1", "v1", KETCHUP[0], 1)))
    path.write_text("\n".join(lines) + "\n")


def _replay(tmp_path, trace, *extra):
    cfg = tmp_path / "gw.toml"         # the config says gw1
    cfg.write_text(f'state_dir = "{tmp_path / "unused"}"\n[carts]\nknown = ["c001"]\n[detector]\nenabled = false\n')
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "replay", str(trace), "--config", str(cfg),
                        "--out", str(out), *extra], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "gateway")},
                       capture_output=True, text=True, timeout=120)
    return r, (json.loads(out.read_text()) if r.returncode == 0 else None)


def test_replay_takes_the_gateway_id_from_the_trace_header_or_the_option(tmp_path):
    trace = tmp_path / "t.jsonl"
    _verdict_trace(trace, {"gateway_id": "store7"}, "store7")
    r, res = _replay(tmp_path, trace)
    assert r.returncode == 0, r.stderr
    assert (res["trace"]["gateway_id"], res["trace"]["gateway_id_from"]) == ("store7", "trace header")
    assert [x["status"] for x in res["reviews"]] == ["closed"]           # the verdict was applied
    assert [ln["sku"] for ln in res["baskets"]["c001"]["lines"]] == [KETCHUP[0]]
    # the option wins; with another id the verdict is not ours and the review stays open
    r, res = _replay(tmp_path, trace, "--gateway-id", "gw9")
    assert r.returncode == 0, r.stderr
    assert (res["trace"]["gateway_id"], res["trace"]["gateway_id_from"]) == ("gw9", "option")
    assert [x["status"] for x in res["reviews"]] == ["open"] and res["baskets"]["c001"]["lines"][0]["sku"] is None
    r, _ = _replay(tmp_path, trace, "--gateway-id", "Bad Id")
    assert r.returncode == 2 and "--gateway-id 'Bad Id'" in r.stderr


def test_replay_refuses_a_trace_whose_header_gateway_id_is_invalid(tmp_path):
    """Not silently ignored: falling back to another id would drop every verdict as other_gateway."""
    trace = tmp_path / "t.jsonl"
    for bad in ("Store 7", 7):
        _verdict_trace(trace, {"gateway_id": bad}, "store7")
        r, _ = _replay(tmp_path, trace)
        assert r.returncode == 2, r.stderr
        assert "trace line 1: field 'gateway_id'" in r.stderr and repr(bad) in r.stderr


def test_replay_without_a_header_id_uses_the_one_id_in_the_trace_topics(tmp_path):
    trace = tmp_path / "t.jsonl"
    _verdict_trace(trace, {}, "sim")
    r, res = _replay(tmp_path, trace)
    assert r.returncode == 0, r.stderr
    assert (res["trace"]["gateway_id"], res["trace"]["gateway_id_from"]) == ("sim", "trace topics")
    assert [x["status"] for x in res["reviews"]] == ["closed"]


def test_skipping_idle_ticks_gives_what_ticking_every_one_gives(tmp_path):
    """Replay skips the timer's grid points while nothing waits on time (Gateway.timer_pending)
    and ticks the last one: the same decisions, at the same times, as ticking each grid point."""
    from cart_gateway.config import parse_config
    from cart_gateway.protocol import read_trace
    from cart_gateway.replay import Replayer

    class EveryTick(Replayer):
        def ticks_until(self, next_tick, t_ms, on_publish=None):
            while t_ms >= next_tick:
                self.tick(next_tick)
                next_tick += self.tick_ms
            return next_tick

    trace = tmp_path / "t.jsonl"
    make_trace(trace)
    with open(trace, encoding="utf-8") as f:
        _, recs = read_trace(f)
    import dataclasses
    k = next(i for i, r in enumerate(recs) if r.topic.endswith("/checkout"))
    # ten minutes of nothing between the last answer and the checkout
    recs = recs[:k] + [dataclasses.replace(r, t_ms=r.t_ms + 600_000) for r in recs[k:]]
    results, ticks = [], []
    for cls in (Replayer, EveryTick):
        cfg = parse_config({"gateway_id": "gw1", "state_dir": str(tmp_path / cls.__name__),
                            "carts": {"known": ["c001"]}, "detector": {"enabled": False}})
        rp = cls(cfg, tmp_path / cls.__name__)
        n = [0]
        orig = rp.gw.tick
        rp.gw.tick = lambda t, _o=orig: (n.__setitem__(0, n[0] + 1), _o(t))[1]
        res = rp.run(recs)
        rp.gw.store.close()
        res.pop("timing")
        results.append(res)
        ticks.append(n[0])
    assert results[0] == results[1]
    assert [d["outcome"] for d in results[0]["decisions"]][:2] == ["ask", "ask"]
    assert ticks[0] < ticks[1] / 10, ticks     # the idle stretches were skipped
