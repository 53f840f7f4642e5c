"""The board instance id (protocol §5, issue 11.2): minted from os.urandom at the first boot of
a fresh flash, kept across reboots, a new one after a full flash; every board payload carries it."""
import json
import os
import shutil

from mp import run_mp

SCRIPT = r"""
import os, json
try:
    os.mkdir("state")
except OSError:
    pass
from cartfw.runtime import board_instance
from cartfw import proto
a = board_instance()
b = board_instance()
proto.INSTANCE = a
ev = json.loads(proto.encode_event("c001", "scale", 1, 1, "unsettled", {"total_g": 0.0}, (5, None, False)))
st = json.loads(proto.encode_status("c001", "scale", 1, (5, None, False), True))
print(json.dumps({"a": a, "b": b, "ev": ev.get("inst"), "st": st.get("inst"),
                  "id": proto.identity("c001", "scale", 1, 1, a)}))
"""


def test_instance_id_is_minted_once_and_new_after_a_full_flash(tmp_path):
    first = json.loads(run_mp(SCRIPT, tmp_path))
    assert first["a"] == first["b"] and len(first["a"]) == 16 and not first["a"].strip("0123456789abcdef")
    assert first["ev"] == first["st"] == first["a"]
    assert first["id"] == f"c001/scale/{first['a']}/1/1"
    assert json.loads(run_mp(SCRIPT, tmp_path))["a"] == first["a"]          # a reboot keeps it
    shutil.rmtree(tmp_path / "state")                                        # a full flash
    assert json.loads(run_mp(SCRIPT, tmp_path))["a"] != first["a"]
    (tmp_path / "state" / "inst").write_text("not hex!")                      # a damaged file: a new id
    assert json.loads(run_mp(SCRIPT, tmp_path))["a"] not in ("not hex!", first["a"])
    assert os.path.exists(tmp_path / "state" / "inst")
