"""The PUBLISH packet built in one buffer is byte for byte the one built by
concatenating its parts (MQTT 3.1.1 §3.3), under CPython and micropython."""
from pathlib import Path

import pytest

from cart_testing.mpy import run_micropython

ROOT = Path(__file__).resolve().parents[2]
CHECK = """
import struct
from cartfw import mqtt
for qos, pid, reps in ((0, 0, 1), (1, 7, 40), (1, 300, 2000)):
    tb = b"carts/c001/scale/evt"
    msg = b'{"a":1}' * reps
    n = 2 + len(tb) + len(msg) + (2 if qos else 0)
    fixed = 0x30 | (qos << 1)
    want = bytes((fixed,)) + mqtt._remlen(n) + mqtt._str(tb) + (struct.pack(">H", pid) if qos else b"") + msg
    assert bytes(mqtt._publish_packet(fixed, tb, pid, msg, n)) == want, (qos, pid, reps)
print("same")
"""


def test_publish_packet_under_cpython():
    ns = {}
    exec(CHECK, ns)


@pytest.mark.micropython
def test_publish_packet_under_micropython(tmp_path):
    r = run_micropython(CHECK, [ROOT / "firmware" / "lib"], heap="256k", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split()[-1] == "same", r.stdout + r.stderr
