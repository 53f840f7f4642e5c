"""proto.py runs identically under MicroPython and CPython: the same calls
give the same decoded payloads, the same sizes and the same errors."""
import json

import pytest

from mp import run_cpython, run_mp

pytestmark = pytest.mark.micropython

SCRIPT = r'''
import json
from cartfw import proto
clk = (12345, 1700000000000, True)
out = []
def show(name, b):
    out.append([name, len(b), json.loads(b)])
show("event", proto.encode_event("c001", "scale", 3, 17, "weight",
     {"delta_g": 512.25, "total_g": 1012.5, "noise_g": 0.75, "settle_ms": 420,
      "window": {"n": 40, "pre_g": 500.25, "post_g": 1012.5, "min_g": 499.0, "max_g": 1013.0,
                 "std_g": 0.5, "dur_ms": 600, "unsettled_seq": 16}}, clk))
show("unsynced", proto.encode_event("c001", "cam", 1, 1, "capture",
     {"trigger": "unsettled", "ref": "c001/scale/3/16", "frames": [1, 2], "frame_ms": [10, 20]},
     (5, 1700000000000, False)))
show("error", proto.encode_error("c001", "scale", 2, 9, "journal_full", "x" * 300, clk))
show("birth", proto.encode_status("c001", "scale", 2, clk, True, "safe", "config broker.port: bad"))
show("will", proto.encode_status("c001", "scale", 2, clk, False))
show("tele", proto.encode_tele("c001", "scale", 2, clk, {"heap_free": 1000, "rssi": None}))
show("res", proto.encode_cmd_result("a1", True, {"offset": 5}))
show("reserr", proto.encode_cmd_result("a1", False, error="nope"))
out.append(["cmd", list(proto.decode_cmd(b'{"v":1,"id":"x1","cmd":"tare","args":{}}'))])
for bad in [b'nope', b'[]', b'{"v":2,"id":"a","cmd":"x"}', b'{"v":1,"id":"","cmd":"x"}',
            b'{"v":1,"id":"a","cmd":7}', b'{"v":1,"id":"a","cmd":"x","args":[1]}', b"{" + b" " * 5000 + b"}"]:
    try:
        proto.decode_cmd(bad)
        out.append(["accepted?", bad[:20].decode()])
    except proto.ProtoError as e:
        out.append(["rejected", str(e)])
try:
    proto.encode_event("c001", "scale", 1, 1, "weight", {"pad": "z" * 2000}, clk)
except proto.ProtoError as e:
    out.append(["too big", str(e)])
try:
    proto.encode_event("c001", "scale", 1, 1, "weight", {"seq": 3}, clk)
except proto.ProtoError as e:
    out.append(["reserved", str(e)])
out.append(["ids", [proto.valid_id(s) for s in ["c001", "a", "-a", "A1", "a" * 32, "a" * 33, "c-1"]]])
out.append(["identity", proto.identity("c001", "scale", 3, 17), proto.topic("c001", "cam", "frame")])
print(json.dumps(out))
'''


def test_proto_same_under_both(tmp_path):
    mp = json.loads(run_mp(SCRIPT, tmp_path))
    cp = json.loads(run_cpython(SCRIPT, tmp_path))
    assert mp == cp
    d = {row[0]: row for row in mp}
    ev = d["event"][2]
    assert ev["seq"] == 17 and ev["type"] == "weight" and ev["epoch"] == 3 and ev["v"] == 1
    assert ev["wall_ms"] == 1700000000000 and ev["synced"] is True
    assert d["unsynced"][2]["wall_ms"] is None and d["unsynced"][2]["synced"] is False
    assert len(d["error"][2]["detail"]) == 200
    assert d["birth"][2]["mode"] == "safe" and d["birth"][2]["state"] == "online"
    assert d["will"][2]["state"] == "offline"
    rej = [r[1] for r in mp if r[0] == "rejected"]
    assert len(rej) == 7
    for field, msg in zip(["cmd:", "cmd:", "cmd.v", "cmd.id", "cmd.cmd", "cmd.args", "cmd:"], rej):
        assert msg.startswith(field), msg
    assert "exceeds 1024" in d["too big"][1]
    assert d["ids"][1] == [True, True, False, False, True, False, True]
