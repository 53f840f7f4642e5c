"""Hostile input for every decoder in protocol/ (issue 11.7): random bytes, random JSON and
valid shapes with hostile values (NaN, ±Inf, ±1e308, huge ints, deep nesting, wrong types).
Nothing but ProtocolError may escape, and what decodes stays inside the protocol's ranges.
max_examples are chosen so the whole file runs in well under a minute on the 2-core box."""
import binascii
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cart_gateway import protocol as P
from cart_bench.testkit import Board, frame_chunks

ROOT = Path(__file__).resolve().parents[2]
# CART_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps `make test` quick
N = int(os.environ.get("CART_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALE, CAM = P.parse_topic("carts/c001/scale/evt"), P.parse_topic("carts/c001/cam/evt")
HEAD = {"v": 1, "cart": "c001", "board": "scale", "inst": "0123456789abcdef", "epoch": 3, "mono_ms": 5000,
        "wall_ms": None, "synced": False}
_b = Board("c001")
VALID = {
    "weight": (lambda p: P.decode_event(SCALE, p), json.loads(_b.weight(350.2, unsettled_seq=1))),
    "unsettled": (lambda p: P.decode_event(SCALE, p), dict(HEAD, seq=4, type="unsettled", total_g=12.5)),
    "capture": (lambda p: P.decode_event(CAM, p),
                dict(HEAD, board="cam", seq=2, type="capture", trigger="unsettled", ref="c001/scale/3/4",
                     frames=[1, 2], frame_ms=[10, 20])),
    "error": (lambda p: P.decode_event(SCALE, p), dict(HEAD, seq=5, type="error", code="hx711", detail="x")),
    "status": (lambda p: P.decode_status(P.parse_topic("carts/c001/scale/status"), p),
               dict(HEAD, state="online", fw="0.1.0", mode="normal", reason=None)),
    "tele": (lambda p: P.decode_telemetry(P.parse_topic("carts/c001/scale/tele"), p),
             dict(HEAD, heap_free=1000, heap_peak=2000, uptime_s=5, rssi=-60, journal_depth=0,
                  journal_dropped=0, reconnects=0, reset_cause="power_on", fw="0.1.0")),
    "command": (P.decode_command, {"v": 1, "id": "c1", "cmd": "tare", "args": {"n": 1}}),
    "command result": (P.decode_command_result, {"v": 1, "id": "c1", "ok": True, "result": {"a": 1.5}}),
    "answer": (P.decode_answer, {"v": 1, "prompt_id": "c001-p1", "answer_id": "a1", "choice": {"sku": "S1"}}),
    "checkout": (P.decode_checkout, {"v": 1, "req_id": "r1"}),
    "verdict": (P.decode_verdict, {"v": 1, "review_id": "c001-r1", "verdict_id": "v1", "sku": "S1", "qty": 1,
                                   "adds": [{"sku": "S1", "qty": 1}], "removes": []}),
    "basket": (lambda p: P.decode_output("basket", p),
               {"v": 1, "cart": "c001", "version": 3, "updated_ms": 10, "total_cents": 100, "open_prompts": 0,
                "open_reviews": 0, "lines": [{"line_id": "L1", "sku": "S1", "name": "n", "qty": 1, "weight_g": 350.2,
                                              "unit_price_cents": 100, "price_cents": 100, "status": "accepted"}]}),
    "prompt": (lambda p: P.decode_output("prompt", p),
               {"v": 1, "prompt_id": "c001-p1", "kind": "pick", "text": "t", "created_ms": 1,
                "options": [{"sku": "S1", "name": "n"}]}),
    "receipt": (lambda p: P.decode_output("receipt", p),
                {"v": 1, "req_id": "r1", "ok": True, "receipt_id": "x", "lines": [], "total_cents": 0, "issued_ms": 1}),
    "review request": (lambda p: P.decode_output("review request", p),
                       {"v": 1, "review_id": "c001-r1", "cart": "c001", "created_ms": 1, "frames": [], "reason": "r",
                        "candidates": [{"sku": "S1", "score": 0.5}], "weight": {"delta_g": 1.0}}),
    "review queue": (lambda p: P.decode_output("review queue", p),
                     {"v": 1, "reviews": [{"review_id": "c001-r1", "cart": "c001", "created_ms": 1}]}),
    "gateway status": (lambda p: P.decode_output("gateway status", p),
                       {"v": 1, "gw": "gw1", "state": "online", "version": "0.1.0"}),
    "screen state": (lambda p: P.decode_output("screen state", p), {"v": 1, "prompts": []}),
}
DECODERS = sorted(VALID)

HOSTILE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 2**63, -2**63, 10**30, 2**53 + 1, -1, 0,
                     True, None, "", "x" * 300, [], {}, [[[[[]]]]], "NaN"]),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=40))

JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def only_protocol_errors(decode, payload: bytes):
    try:
        msg = decode(payload)
    except P.ProtocolError:
        return None
    _in_range(msg.model_dump())
    return msg


FREE_FORM = {"args", "result", "weight"}     # JSON objects the protocol does not type (§9, §13)


def _in_range(v, path="payload", free=False):
    """What decodes is finite and of sane magnitude (every field, nested): typed fields within
    the protocol's ranges, free-form ones at least finite and within ±2^63."""
    if isinstance(v, float):
        assert math.isfinite(v) and (free or abs(v) <= 1e7), f"{path} = {v!r} decoded"
    elif isinstance(v, int) and not isinstance(v, bool):
        assert abs(v) <= (2**63 if free else 2**53), f"{path} = {v!r} decoded"
    elif isinstance(v, dict):
        for k, x in v.items():
            _in_range(x, f"{path}.{k}", free or k in FREE_FORM)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _in_range(x, f"{path}[{i}]", free)


def _paths(obj, prefix=()):
    """Every field path of a payload (dict keys and list indexes), for hostile replacement."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _replace(obj, path, value):
    obj = json.loads(json.dumps(obj))
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return obj


# ---------------------------------------------------------------- the valid shapes decode
@pytest.mark.parametrize("kind", DECODERS)
def test_every_valid_sample_decodes(kind):
    decode, sample = VALID[kind]
    assert only_protocol_errors(decode, json.dumps(sample).encode()) is not None


# ---------------------------------------------------------------- fuzz
@FUZZ
@given(kind=st.sampled_from(DECODERS), data=st.binary(max_size=1200))
def test_random_bytes(kind, data):
    only_protocol_errors(VALID[kind][0], data)


@FUZZ
@given(kind=st.sampled_from(DECODERS), obj=JSON)
def test_random_json(kind, obj):
    only_protocol_errors(VALID[kind][0], json.dumps(obj).encode())
    if isinstance(obj, dict):            # random fields on a valid message
        only_protocol_errors(VALID[kind][0], json.dumps(dict(VALID[kind][1], **obj)).encode())


@settings(max_examples=3 * N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(DECODERS), value=HOSTILE)
def test_valid_shapes_with_hostile_values(data, kind, value):
    decode, sample = VALID[kind]
    path = data.draw(st.sampled_from(_paths(sample)))
    payload = json.dumps(_replace(sample, path, value), allow_nan=True).encode()
    only_protocol_errors(decode, payload)


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("nest", [b"[" * 1024, b'{"a":' * 600 + b"1" + b"}" * 600, b"[" * 70000])
def test_deep_nesting_is_a_protocol_error(kind, nest):
    with pytest.raises(P.ProtocolError):
        VALID[kind][0](nest)
    deep = json.dumps(VALID[kind][1])[:-1].encode() + b',"extra":' + b"[" * 900 + b"]" * 900 + b"}"
    only_protocol_errors(VALID[kind][0], deep)


@FUZZ
@given(topic=st.text(max_size=60) | st.lists(st.sampled_from(["carts", "c001", "scale", "cam", "evt", "frame",
                                                                 "gateway", "gw1", "review", "verdict", "", "\n",
                                                                 "C001", "x" * 40]), max_size=6).map("/".join))
def test_parse_topic(topic):
    try:
        t = P.parse_topic(topic)
    except P.ProtocolError:
        return
    for part in (t.cart, t.gw):
        assert part is None or P.ID_RE.fullmatch(part), topic


@FUZZ
@given(data=st.binary(max_size=200), header=st.tuples(
    st.binary(min_size=2, max_size=2) | st.just(b"CF"), st.integers(0, 255), st.integers(0, 255),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)))
def test_frame_chunks_and_their_assembly(data, header):
    for payload in (data, P.CHUNK_HEADER.pack(*header) + data):
        try:
            ch = P.decode_frame_chunk(payload)
        except P.ProtocolError:
            continue
        asm = P.FrameAssembler(ch, 0)
        for c in (ch, ch):
            try:
                asm.add(c)
            except P.ProtocolError:
                break


@FUZZ
@given(lines=st.lists(st.text(max_size=80) | JSON.map(json.dumps), max_size=5), value=HOSTILE,
       field=st.sampled_from(["t_ms", "topic", "qos", "retain", "payload", "payload_b64"]))
def test_trace_reader(lines, value, field):
    good = {"t_ms": 1, "topic": "carts/c001/scale/evt", "qos": 1, "retain": False, "payload": "{}"}
    for body in (lines, [json.dumps({"trace": 1})] + lines,
                 [json.dumps({"trace": 1}), json.dumps(dict(good, **{field: value}), allow_nan=True)]):
        try:
            _, recs = P.read_trace(body)
        except P.ProtocolError:
            continue
        for r in recs:
            assert isinstance(r.payload, bytes) and 0 <= r.t_ms <= 2**53 and r.qos in (0, 1, 2)


# ---------------------------------------------------------------- named cases: the issue's findings
def _weight(**kw):
    d = VALID["weight"][1]
    return json.dumps(dict(d, **kw), allow_nan=True).encode()


@pytest.mark.parametrize("payload, field", [
    (_weight(delta_g=math.nan), "'delta_g'"),
    (_weight(total_g=math.inf), "'total_g'"),
    (_weight(delta_g=1e308), "'delta_g'"),
    (_weight(delta_g=-1e308), "'delta_g'"),
    (_weight(noise_g=math.inf), "'noise_g'"),
    (_weight(mono_ms=2**60), "'mono_ms'"),
    (_weight(wall_ms=2**60, synced=True), "'wall_ms'"),
    (_weight(settle_ms=10**12), "'settle_ms'"),
    (_weight(window=dict(VALID["weight"][1]["window"], pre_g=-math.inf)), "'window.pre_g'"),
    (_weight(window=dict(VALID["weight"][1]["window"], dur_ms=10**15)), "'window.dur_ms'"),
    (b'{"v":1,"x":' + b"[" * 1024, "payload"),
])
def test_hostile_weight_values_are_rejected_naming_the_field(payload, field):
    with pytest.raises(P.ProtocolError) as e:
        P.decode_event(SCALE, payload)
    assert field in str(e.value), str(e.value)


def test_unsettled_and_capture_ranges():
    for bad, field in ((dict(VALID["unsettled"][1], total_g=math.nan), "'total_g'"),
                       (dict(VALID["capture"][1], frame_ms=[10, 2**60]), "'frame_ms.1'"),
                       (dict(VALID["capture"][1], frames=[1, 2**40]), "'frames.1'")):
        with pytest.raises(P.ProtocolError) as e:
            P.decode_event(CAM if bad["board"] == "cam" else SCALE, json.dumps(bad, allow_nan=True).encode())
        assert field in str(e.value), str(e.value)


def test_trace_with_a_non_ascii_payload_b64_is_a_protocol_error_and_replay_exits_2(tmp_path):
    lines = [json.dumps({"trace": 1}), json.dumps({"t_ms": 1, "topic": "carts/c001/scale/evt", "qos": 1,
                                                   "retain": False, "payload_b64": "é"})]
    with pytest.raises(P.ProtocolError, match="payload_b64"):
        P.read_trace(lines)
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "s"}"\n[carts]\nknown = ["c001"]\n[detector]\nenabled = false\n')
    r = subprocess.run([sys.executable, "-m", "cart_gateway.cli", "replay", str(trace), "--config", str(cfg)],
                       cwd=ROOT, env={"PYTHONPATH": str(ROOT / "gateway")}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "payload_b64" in r.stderr and "Traceback" not in r.stderr


def test_a_lone_surrogate_in_a_trace_payload_is_a_protocol_error():
    line = '{"t_ms": 1, "topic": "t", "qos": 1, "retain": false, "payload": "\\ud800"}'
    with pytest.raises(P.ProtocolError, match="'payload'"):
        P.read_trace([json.dumps({"trace": 1}), line])


# ---------------------------------------------------------------- the board side's decoders (CPython)
@FUZZ
@given(data=st.binary(max_size=300) | JSON.map(lambda o: json.dumps(o).encode())
       | st.dictionaries(st.sampled_from(["v", "id", "cmd", "args"]), HOSTILE).map(
           lambda d: json.dumps(d, allow_nan=True).encode()))
def test_firmware_command_decoder_and_trigger_filter(data):
    from cartfw import proto
    from cartfw.camera.trigger import UnsettledFilter
    try:
        proto.decode_cmd(data)
    except proto.ProtoError:
        pass
    f = UnsettledFilter("c001")
    ref = f.feed(data)                         # counts bad input, never raises
    assert ref is None or ref.startswith("c001/scale/")


# ---------------------------------------------------------------- through the gateway's batch handler
@settings(max_examples=max(10, N // 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=HOSTILE)
def test_hostile_events_are_malformed_not_a_failed_batch(tmp_path_factory, data, value):
    """A hostile value is a `malformed` message: it never fails the batch (which would roll back
    and redo every message in it) and never becomes an internal error (issue 11.7)."""
    from gwcore import Harness
    h = Harness(tmp_path_factory.mktemp("fz"))
    kind = data.draw(st.sampled_from(["weight", "unsettled"]))
    sample = dict(VALID[kind][1], inst=None)
    path = data.draw(st.sampled_from(_paths(sample)))
    bad = json.dumps(_replace(sample, path, value), allow_nan=True).encode()
    good = Board("c001")
    items = [("msg", "carts/c001/scale/evt", p, h.t + i) for i, p in enumerate(
        [good.unsettled(), bad, good.weight(350.2, unsettled_seq=1)])]
    s = h.gw.store
    s.begin()
    h.gw.handle_batch(items)                       # BatchFailed would propagate here
    s.commit()
    assert h.count("bad", "internal_error") == 0 and h.count("bad", "rejected_by_engine") == 0
    h.gw.store.close()


@pytest.mark.parametrize("bad", [b"[" * 1024, _weight(total_g=math.inf, seq=9), _weight(delta_g=-1e308, seq=9),
                                 _weight(delta_g=1e308, seq=9)])
def test_the_issues_hostile_events_do_not_fail_the_batch(tmp_path, bad):
    from gwcore import Harness
    h = Harness(tmp_path)
    good = Board("c001")
    items = [("msg", "carts/c001/scale/evt", p, h.t + i) for i, p in enumerate(
        [good.unsettled(), bad, good.weight(350.2, unsettled_seq=1)])]
    s = h.gw.store
    s.begin()
    h.gw.handle_batch(items)                       # BatchFailed would propagate here
    s.commit()
    assert h.count("bad", "malformed") == 1 and h.gw.store.event_count() == 2
    assert all(abs(ln["weight_g"]) < 1e6 for ln in h.gw.carts["c001"].engine.basket()["lines"])
