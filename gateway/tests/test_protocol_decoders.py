"""Bad input for every decoder in protocol/: each is rejected with ProtocolError naming what was wrong."""
import binascii
import json

import pytest

from cart_gateway import protocol as P
from cart_bench.testkit import Board, frame_chunks

SCALE = P.parse_topic("carts/c001/scale/evt")
CAM = P.parse_topic("carts/c001/cam/evt")


def js(d) -> bytes:
    return json.dumps(d).encode()


def weight() -> dict:
    return json.loads(Board("c001").weight(100.0, unsettled_seq=None))


def raises(fn, *args, match: str):
    with pytest.raises(P.ProtocolError) as e:
        fn(*args)
    assert match in str(e.value), str(e.value)
    return str(e.value)


# ---------------------------------------------------------------- topics
@pytest.mark.parametrize("topic, match", [
    ("carts/C001/scale/evt", "cart id"),
    ("carts/c001/oven/evt", "board"),
    ("carts/c001/scale/frame", "message kind"),
    ("carts/c001/scale/bogus", "message kind"),
    ("gateway/GW/status", "gateway id"),
    ("gateway/gw1/unknown", "topic tree"),
    ("other/x/y", "topic tree"),
    ("carts/c001", "topic tree"),
])
def test_parse_topic_rejects(topic, match):
    raises(P.parse_topic, topic, match=match)


# ---------------------------------------------------------------- envelope (size, JSON, v)
@pytest.mark.parametrize("payload, match", [
    (b"x" * 1025, "1024-byte limit"),
    (b"{bad", "not JSON"),
    (b"\xff", "not JSON"),
    (b'"str"', "JSON object"),
    (b"{}", "'v'"),
    (js(dict(weight(), v=2)), "'v'"),
])
def test_event_envelope_rejects(payload, match):
    raises(P.decode_event, SCALE, payload, match=match)


# ---------------------------------------------------------------- common header fields (§3)
@pytest.mark.parametrize("field, value, match", [
    ("cart", "c002", "'cart'"),
    ("board", "cam", "'board'"),
    ("epoch", 0, "'epoch'"),
    ("epoch", 2**32, "'epoch'"),
    ("mono_ms", -1, "'mono_ms'"),
    ("synced", True, "wall_ms is required"),
    ("wall_ms", 1700000000000, "wall_ms must be null"),
    ("seq", 0, "'seq'"),
    ("seq", "one", "'seq'"),
])
def test_common_fields_reject(field, value, match):
    d = weight()
    d[field] = value
    raises(P.decode_event, SCALE, js(d), match=match)


# ---------------------------------------------------------------- each event type (§6)
@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(type="teleport"), "'type'"),
    (lambda d: d.pop("delta_g"), "'delta_g'"),
    (lambda d: d.update(noise_g=-1), "'noise_g'"),
    (lambda d: d.update(settle_ms=-5), "'settle_ms'"),
    (lambda d: d["window"].pop("n"), "'window.n'"),
    (lambda d: d["window"].update(std_g=-1.0), "'window.std_g'"),
    (lambda d: d["window"].update(unsettled_seq=0), "'window.unsettled_seq'"),
    (lambda d: d.update(total_g="heavy"), "'total_g'"),
    (lambda d: d.update(hold="maybe"), "'hold'"),
    (lambda d: d.update(hold=1), "'hold'"),
])
def test_weight_event_rejects(mutate, match):
    d = weight()
    mutate(d)
    raises(P.decode_event, SCALE, js(d), match=match)


def test_weight_event_hold_flag_is_optional():
    # §6.1 `hold`: absent from firmware before issue 14, steady or suspect after.
    d = weight()
    d.pop("hold", None)
    assert P.decode_event(SCALE, js(d)).hold is None
    for v in ("steady", "suspect"):
        assert P.decode_event(SCALE, js(dict(d, hold=v))).hold == v


# §6.1 `prov` / `replaces` (issue 14): a provisional reading and the final one that replaces it
@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(prov="yes"), "'prov'"),
    (lambda d: d.update(prov=1), "'prov'"),
    (lambda d: d.update(replaces=0), "'replaces'"),
    (lambda d: d.update(replaces=-3), "'replaces'"),
    (lambda d: d.update(replaces=2**32), "'replaces'"),
    (lambda d: d.update(replaces=3.5), "'replaces'"),
    (lambda d: d.update(replaces="3"), "'replaces'"),
    (lambda d: d.update(replaces=True), "'replaces'"),
    (lambda d: d.update(replaces=10), "must name an earlier event"),       # itself (forged)
    (lambda d: d.update(replaces=11), "must name an earlier event"),       # a later one
    (lambda d: d.update(replaces=4, prov=True), "prov and replaces together"),
])
def test_weight_event_rejects_bad_provisional_fields(mutate, match):
    d = dict(weight(), seq=10)
    mutate(d)
    raises(P.decode_event, SCALE, js(d), match=match)


@pytest.mark.parametrize("field, match", [("replaces", "'replaces'"), ("delta_g", "'delta_g'")])
def test_weight_event_rejects_nan_in_a_provisional_final(field, match):
    d = dict(weight(), seq=10, replaces=4)
    d[field] = float("nan")
    raises(P.decode_event, SCALE, json.dumps(d).encode(), match=match)


def test_weight_event_provisional_fields_are_optional():
    d = dict(weight(), seq=10)
    ev = P.decode_event(SCALE, js(d))
    assert ev.prov is False and ev.replaces is None     # firmware before issue 14: final, replaces nothing
    assert P.decode_event(SCALE, js(dict(d, prov=True))).prov is True
    assert P.decode_event(SCALE, js(dict(d, replaces=9))).replaces == 9


def test_unsettled_event_rejects_missing_total():
    d = json.loads(Board("c001").unsettled())
    del d["total_g"]
    raises(P.decode_event, SCALE, js(d), match="'total_g'")


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(trigger="sneeze"), "'trigger'"),
    (lambda d: d.update(frames=[]), "'frames'"),
    (lambda d: d.update(frames=list(range(1, 10)), frame_ms=[0] * 9), "'frames'"),
    (lambda d: d.update(frames=[0], frame_ms=[0]), "'frames.0'"),
    (lambda d: d.update(frame_ms=[1, 2, 3]), "frame_ms must have one entry per frame"),
])
def test_capture_event_rejects(mutate, match):
    d = json.loads(Board("c001", "cam").capture([1, 2], ref="c001/scale/1/1"))
    mutate(d)
    raises(P.decode_event, CAM, js(d), match=match)


def test_error_event_rejects_long_detail_and_empty_code():
    d = json.loads(Board("c001").unsettled())
    d.update(type="error", code="hx711_timeout", detail="x" * 201)
    raises(P.decode_event, SCALE, js(d), match="'detail'")
    d.update(code="", detail="")
    raises(P.decode_event, SCALE, js(d), match="'code'")


# ---------------------------------------------------------------- status, telemetry (§4, §8)
def _status(**kw):
    d = {"v": 1, "cart": "c001", "board": "scale", "epoch": 1, "mono_ms": 5, "wall_ms": None, "synced": False,
         "state": "online", "fw": "0.1.0", "mode": "normal", "reason": None}
    d.update(kw)
    return js(d)


@pytest.mark.parametrize("kw, match", [({"state": "asleep"}, "'state'"), ({"mode": "turbo"}, "'mode'"),
                                       ({"fw": None}, "'fw'")])
def test_status_rejects(kw, match):
    raises(P.decode_status, P.parse_topic("carts/c001/scale/status"), _status(**kw), match=match)


def test_telemetry_rejects_negative_counters():
    d = json.loads(_status())
    d.update(heap_free=-1, uptime_s=1, journal_depth=0, journal_dropped=0, reconnects=0, reset_cause="pwr")
    raises(P.decode_telemetry, P.parse_topic("carts/c001/scale/tele"), js(d), match="'heap_free'")


# ---------------------------------------------------------------- commands, answers, checkout, verdicts
def test_command_rejects_oversize_and_long_id():
    raises(P.decode_command, b"{" + b" " * 4096 + b"}", match="4096-byte limit")
    raises(P.decode_command, js({"v": 1, "id": "x" * 41, "cmd": "tare"}), match="'id'")
    raises(P.decode_command_result, js({"v": 1, "id": "1"}), match="'ok'")


@pytest.mark.parametrize("choice, match", [
    ({"sku": "a", "barcode": "1"}, "exactly one"),
    ({}, "exactly one"),
    ({"personal": False}, "'choice.personal'"),
    ({"colour": "red"}, "'choice.colour'"),
])
def test_answer_rejects_bad_choice(choice, match):
    raises(P.decode_answer, js({"v": 1, "prompt_id": "p", "answer_id": "a", "choice": choice}), match=match)


def test_answer_checkout_verdict_reject_missing_ids():
    raises(P.decode_answer, js({"v": 1, "prompt_id": "p", "choice": {"none": True}}), match="'answer_id'")
    raises(P.decode_checkout, js({"v": 1, "req_id": ""}), match="'req_id'")
    raises(P.decode_verdict, js({"v": 1, "review_id": "r", "verdict_id": "v", "sku": None, "qty": 1001}),
           match="'qty'")
    raises(P.decode_verdict, js({"v": 1, "review_id": "r", "verdict_id": "v", "qty": 1}), match="'sku'")


# ---------------------------------------------------------------- frame chunks (§7)
def chunk(**kw):
    f = dict(magic=b"CF", ver=1, fmt=1, epoch=1, frame=1, index=0, count=1, size=4, crc=0)
    f.update(kw)
    return P.CHUNK_HEADER.pack(f["magic"], f["ver"], f["fmt"], f["epoch"], f["frame"], f["index"],
                               f["count"], f["size"], f["crc"]) + b"data"


@pytest.mark.parametrize("payload, match", [
    (b"CF" + b"\0" * 20, "shorter than the 24-byte header"),
    (chunk() + b"x" * 4096, "4096-byte limit"),
    (chunk(magic=b"XX"), "'magic'"),
    (chunk(ver=2), "'ver'"),
    (chunk(fmt=7), "'fmt'"),
    (chunk(epoch=0), "'epoch'"),
    (chunk(frame=0), "'frame'"),
    (chunk(count=0), "'count'"),
    (chunk(count=65), "'count'"),
    (chunk(index=1, count=1), "'index'"),
    (chunk(size=0), "'size'"),
    (chunk(size=131073), "'size'"),
])
def test_frame_chunk_rejects(payload, match):
    raises(P.decode_frame_chunk, payload, match=match)


def test_frame_assembler_rejects_mismatch_overflow_and_bad_crc():
    data = bytes(range(200)) * 10
    chunks = [P.decode_frame_chunk(c) for c in frame_chunks(1, 1, data, chunk_size=1024)]
    asm = P.FrameAssembler(chunks[0], 0)
    assert asm.add(chunks[0]) is None and asm.add(chunks[0]) is None     # redelivery is harmless
    other = P.decode_frame_chunk(frame_chunks(1, 1, data[:-1], chunk_size=1024)[1])
    raises(asm.add, other, match="'count/size/crc32/fmt'")
    big = P.decode_frame_chunk(P.CHUNK_HEADER.pack(b"CF", 1, 1, 1, 1, 0, 2, 10, 0) + b"x" * 20)
    raises(P.FrameAssembler(big, 0).add, big, match="more than field 'size'")


def test_frame_assembler_rejects_bad_crc():
    data = b"hello frame"
    c = P.decode_frame_chunk(P.CHUNK_HEADER.pack(b"CF", 1, 1, 1, 1, 0, 1, len(data), 12345) + data)
    raises(P.FrameAssembler(c, 0).add, c, match="'crc32'")


# ---------------------------------------------------------------- traces (§14)
@pytest.mark.parametrize("lines, match", [
    ([], "no header"),
    (["not json"], "not JSON"),
    (["[1]"], "JSON object"),
    (['{"trace": 2}'], "'trace'"),
    (['{"trace": 1, "gateway_id": 7}'], "trace line 1: field 'gateway_id'"),
    (['{"trace": 1, "gateway_id": "Store 7"}'], "trace line 1: field 'gateway_id'"),
    (['{"trace": 1, "gateway_id": null}'], "trace line 1: field 'gateway_id'"),
    (['{"trace": 1}', '{"t_ms": "x", "topic": "a", "qos": 1, "retain": false, "payload": "{}"}'], "'t_ms'"),
    (['{"trace": 1}', '{"t_ms": 1, "topic": "a", "qos": 1, "retain": false}'], "'payload'"),
    (['{"trace": 1}', '{"t_ms": 1, "topic": "a", "qos": 1, "retain": false, "payload_b64": "@@@"}'],
     "'payload_b64'"),
])
def test_read_trace_rejects(lines, match):
    raises(P.read_trace, lines, match=match)
