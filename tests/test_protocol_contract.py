"""The contract (docs/protocol.md): what the firmware encodes inside the real
micropython binary, the gateway decodes; and what breaks the contract, the
gateway rejects with an error naming the field."""
import binascii
import json
from pathlib import Path

import pytest

from cart_gateway import protocol as P
from cart_testing.mpy import run_micropython

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "firmware" / "lib"

SCRIPT = r"""
import binascii
from cartfw import proto, framing
clock = (4266, None, False)
synced = (5000, 1764000000123, True)
def out(kind, b):
    print(kind, binascii.hexlify(b).decode())
out("evt", proto.encode_event("c001", "scale", 3, 17, "weight", {
    "delta_g": 412.0, "total_g": 1523.5, "noise_g": 0.41, "settle_ms": 237,
    "window": {"n": 19, "pre_g": 1111.5, "post_g": 1523.5, "min_g": 1100.0,
               "max_g": 1530.0, "std_g": 50.1, "dur_ms": 100, "unsettled_seq": 16},
    "hold": "suspect"}, clock))
out("evt", proto.encode_event("c001", "scale", 3, 16, "unsettled", {"total_g": 1111.5}, synced))
out("evt", proto.encode_error("c001", "scale", 3, 18, "hx711_timeout", "no conversion for 500 ms", clock))
out("evt", proto.encode_event("c001", "cam", 2, 5, "capture", {"trigger": "unsettled",
    "ref": "c001/scale/3/16", "frames": [7, 8, 9], "frame_ms": [100, 200, 300]}, clock))
out("status", proto.encode_status("c001", "scale", 3, clock, True))
out("status", proto.encode_status("c001", "scale", 3, clock, False, "safe", "crash loop"))
out("tele", proto.encode_tele("c001", "scale", 3, clock, {"heap_free": 20000, "heap_peak": 80000,
    "uptime_s": 60, "rssi": None, "journal_depth": 0, "journal_dropped": 0, "reconnects": 1,
    "reset_cause": "power_on"}))
frame = bytes(range(256)) * 10 + b"end"
for c in framing.encode(frame, 2, 7, 1024):
    out("frame", c)
out("still_evt", proto.encode_event("c001", "cam", 2, 6, "capture", {"trigger": "settled",
    "ref": "c001/scale/3/16", "frames": [10], "frame_ms": [900], "still": {"w": 1600, "h": 1200}}, clock))
for c in framing.encode(bytes(range(256)) * 40, 2, 10, 4096, 5):
    out("still", c)
"""


@pytest.fixture(scope="module")
def firmware_output():
    r = run_micropython(SCRIPT, [LIB])
    assert r.returncode == 0, r.stderr + r.stdout
    return [(line.split()[0], binascii.unhexlify(line.split()[1])) for line in r.stdout.splitlines()]


def test_firmware_events_decode_in_the_gateway(firmware_output):
    evts = [P.decode_event(P.parse_topic("carts/c001/scale/evt" if b'"scale"' in b else "carts/c001/cam/evt"), b)
            for kind, b in firmware_output if kind == "evt"]
    weight, unsettled, error, capture = evts
    assert isinstance(weight, P.WeightEvent) and weight.event_id == "c001/scale/3/17"
    assert weight.delta_g == 412.0 and weight.window.unsettled_seq == 16
    assert weight.hold == "suspect"
    assert unsettled.synced and unsettled.wall_ms == 1764000000123
    assert error.code == "hx711_timeout"
    assert capture.frames == [7, 8, 9] and capture.ref == "c001/scale/3/16"


def test_firmware_status_and_telemetry_decode(firmware_output):
    t = P.parse_topic("carts/c001/scale/status")
    online, offline = [P.decode_status(t, b) for k, b in firmware_output if k == "status"]
    assert online.state == "online" and offline.mode == "safe" and offline.reason == "crash loop"
    (tele,) = [P.decode_telemetry(P.parse_topic("carts/c001/scale/tele"), b)
               for k, b in firmware_output if k == "tele"]
    assert tele.heap_free == 20000


def test_firmware_frame_chunks_reassemble(firmware_output):
    chunks = [P.decode_frame_chunk(b) for k, b in firmware_output if k == "frame"]
    assert len(chunks) == 3 and chunks[0].size == 2563
    asm = P.FrameAssembler(chunks[0], started=0.0)
    results = [asm.add(c) for c in reversed(chunks)]  # out of order is fine
    assert results[-1] == bytes(range(256)) * 10 + b"end"


def test_firmware_still_decodes_with_its_resolution(firmware_output):
    (b,) = [b for k, b in firmware_output if k == "still_evt"]
    ev = P.decode_event(P.parse_topic("carts/c001/cam/evt"), b)
    assert ev.trigger == "settled" and ev.still.w == 1600 and ev.frames == [10]
    chunks = [P.decode_frame_chunk(b) for k, b in firmware_output if k == "still"]
    assert len(chunks) == 3 and all(c.still and (c.width, c.height) == (1600, 1200) for c in chunks)
    asm = P.FrameAssembler(chunks[0], started=0.0)
    assert [asm.add(c) for c in chunks][-1] == bytes(range(256)) * 40


def test_still_capture_event_rules():
    base = {"v": 1, "cart": "c001", "board": "cam", "epoch": 1, "seq": 2, "mono_ms": 10, "wall_ms": None,
            "synced": False, "type": "capture", "ref": None, "frame_ms": [1]}
    t = P.parse_topic("carts/c001/cam/evt")
    for bad, why in (({"trigger": "settled", "frames": [1]}, "field 'still' is required"),
                     ({"trigger": "settled", "frames": [1, 2], "frame_ms": [1, 2], "still": {"w": 1600, "h": 1200}},
                      "exactly one frame"),
                     ({"trigger": "command", "frames": [1], "still": {"w": 0, "h": 1200}}, "still")):
        with pytest.raises(P.ProtocolError, match=why):
            P.decode_event(t, json.dumps({**base, **bad}).encode())


# ----------------------------------------------------------- bad input

def _weight(**over):
    d = {"v": 1, "cart": "c001", "board": "scale", "epoch": 1, "seq": 2, "mono_ms": 10,
         "wall_ms": None, "synced": False, "type": "weight", "delta_g": 1.0, "total_g": 1.0,
         "noise_g": 0.5, "settle_ms": 100,
         "window": {"n": 1, "pre_g": 0, "post_g": 1, "min_g": 0, "max_g": 1, "std_g": 0, "dur_ms": 1}}
    d.update(over)
    return json.dumps(d).encode()


EVT = P.parse_topic("carts/c001/scale/evt")


@pytest.mark.parametrize("payload, field", [
    (b"not json", "not JSON"),
    (b"[1,2]", "JSON object"),
    (b'{"type":"weight"}', "'v'"),
    (_weight(v=2), "'v'"),
    (_weight(type="teleport"), "'type'"),
    (_weight(delta_g="heavy"), "'delta_g'"),
    (_weight(seq=0), "'seq'"),
    (_weight(epoch=-1), "'epoch'"),
    (_weight(noise_g=-1), "'noise_g'"),
    (_weight(window={"n": 1}), "'window."),
    (_weight(synced=True), "wall_ms"),
    (_weight(wall_ms=5), "wall_ms"),
    (_weight(cart="c002"), "'cart'"),
    (_weight(board="cam"), "'board'"),
    (_weight(pad="x" * 2000), "1024-byte limit"),
])
def test_bad_event_is_rejected_naming_the_field(payload, field):
    with pytest.raises(P.ProtocolError) as e:
        P.decode_event(EVT, payload)
    assert field in str(e.value)


@pytest.mark.parametrize("topic, part", [
    ("carts/C001/scale/evt", "cart id"),
    ("carts/c001/wheel/evt", "board"),
    ("carts/c001/scale/frame", "kind"),
    ("carts/c001/scale/bogus", "kind"),
    ("shop/x", "topic tree"),
])
def test_bad_topic_is_rejected(topic, part):
    with pytest.raises(P.ProtocolError, match=part):
        P.parse_topic(topic)


def test_topics_parse():
    assert P.parse_topic("carts/c001/basket") == P.Topic("basket", cart="c001")
    assert P.parse_topic("carts/c001/cam/frame") == P.Topic("frame", cart="c001", board="cam")
    assert P.parse_topic("carts/c001/scale/cmd/res").kind == "cmd/res"
    assert P.parse_topic("gateway/gw1/review/verdict") == P.Topic("review/verdict", gw="gw1")


def _chunk(**over):
    f = dict(magic=b"CF", ver=1, fmt=1, epoch=1, frame=1, index=0, count=1, size=3,
             crc=binascii.crc32(b"abc"))
    f.update(over)
    return P.CHUNK_HEADER.pack(*f.values()) + b"abc"


@pytest.mark.parametrize("over, field", [
    (dict(magic=b"XX"), "'magic'"), (dict(ver=2), "'ver'"), (dict(fmt=9), "'fmt'"),
    (dict(epoch=0), "'epoch'"), (dict(frame=0), "'frame'"), (dict(count=65), "'count'"),
    (dict(index=1), "'index'"), (dict(size=200000), "'size'"),
])
def test_bad_frame_chunk_is_rejected(over, field):
    with pytest.raises(P.ProtocolError, match=field):
        P.decode_frame_chunk(_chunk(**over))


def test_frame_with_wrong_crc_is_rejected():
    c = P.decode_frame_chunk(_chunk(crc=1))
    with pytest.raises(P.ProtocolError, match="crc32"):
        P.FrameAssembler(c, 0.0).add(c)


def test_oversized_chunk_is_rejected():
    with pytest.raises(P.ProtocolError, match="4096-byte limit"):
        P.decode_frame_chunk(_chunk() + b"x" * 5000)


@pytest.mark.parametrize("decoder, payload, field", [
    (P.decode_answer, b'{"v":1,"prompt_id":"p1","answer_id":"a1","choice":{}}', "exactly one"),
    (P.decode_answer, b'{"v":1,"prompt_id":"p1","choice":{"sku":"S1"}}', "'answer_id'"),
    (P.decode_checkout, b'{"v":1}', "'req_id'"),
    (P.decode_verdict, b'{"v":1,"review_id":"r","verdict_id":"x","sku":null,"qty":-1}', "'qty'"),
    (P.decode_command, b'{"v":1,"id":"","cmd":"tare"}', "'id'"),
    (P.decode_command_result, b'{"v":1,"id":"c1"}', "'ok'"),
])
def test_bad_screen_review_and_command_messages(decoder, payload, field):
    with pytest.raises(P.ProtocolError, match=field):
        decoder(payload)


def test_trace_round_trip_and_bad_lines():
    lines = ['{"trace":1,"created_ms":1,"source":"test"}',
             P.trace_line(5, "carts/c001/scale/evt", 1, False, _weight()),
             P.trace_line(6, "carts/c001/cam/frame", 1, False, _chunk())]
    header, recs = P.read_trace(lines)
    assert header["source"] == "test" and recs[0].payload == _weight() and recs[1].payload == _chunk()
    with pytest.raises(P.ProtocolError, match="line 2: field 'topic'"):
        P.read_trace([lines[0], '{"t_ms":1,"qos":1,"retain":false,"payload":"{}"}'])
    with pytest.raises(P.ProtocolError, match="header"):
        P.read_trace([lines[1]])


# ------------------------------------------ what the gateway publishes

def test_gateway_outputs_decode(tmp_path):
    from cart_gateway.config import GatewayConfig
    from cart_gateway.service import Gateway
    from cart_bench.testkit import Board, checkout
    cfg = GatewayConfig(state_dir=tmp_path, detector={"enabled": False})
    gw = Gateway(cfg)
    outs = []
    b = Board("c001")
    t = 1000
    for topic, payload in b.movement(1124.1):
        t += 100
        outs += gw.handle(topic, payload, t)
    for _ in range(30):  # let the vision wait expire
        t += 200
        outs += gw.tick(t)
    outs += gw.handle("carts/c001/checkout", checkout("r1"), t + 10)
    kinds = {"carts/c001/basket": "basket", "carts/c001/screen/prompt": "prompt",
             "carts/c001/screen/state": "screen state", "carts/c001/receipt": "receipt",
             "gateway/gw1/review/new": "review request", "gateway/gw1/review/queue": "review queue"}
    seen = set()
    for o in outs:
        if o.topic in kinds:
            assert P.decode_output(kinds[o.topic], o.payload).v == 1
            seen.add(kinds[o.topic])
    assert {"basket", "receipt", "prompt", "screen state"} <= seen, seen


def test_bad_gateway_outputs_are_rejected():
    with pytest.raises(P.ProtocolError, match="'lines.0.status'"):
        P.decode_output("basket", json.dumps({"v": 1, "cart": "c001", "version": 1, "updated_ms": 0,
            "lines": [{"line_id": "L1", "sku": None, "name": "x", "qty": 1, "weight_g": 1.0,
                       "unit_price_cents": 0, "price_cents": 0, "status": "stolen"}],
            "total_cents": 0, "open_prompts": 0, "open_reviews": 0}).encode())
    with pytest.raises(P.ProtocolError, match="needs a reason"):
        P.decode_output("receipt", b'{"v":1,"req_id":"r","ok":false}')
    with pytest.raises(P.ProtocolError, match="'kind'"):
        P.decode_output("prompt", b'{"v":1,"prompt_id":"p","kind":"guess","text":"","options":[],"created_ms":0}')
