"""The journal record format and recovery, inside micropython and CPython:
a torn last record (truncated at every byte offset) is found by its CRC and
dropped; nothing before it is lost; corruption in the middle is detected."""
import pytest

from mp import run_cpython, run_mp

pytestmark = pytest.mark.micropython

TORN = r'''
import os
from cartfw.journal import Journal, frame, scan, HDR

def rmtree(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)

def payloads(j):
    out = []
    while True:
        r = j.peek()
        if r is None:
            return out
        j.sent(r[0])
        out.append(r[1])

recs = [b'{"seq":%d,"pad":"%s"}' % (i, b"x" * (i * 7 % 50)) for i in range(1, 6)]
j = Journal("jt", 65536, 65536)
for r in recs:
    j.append(r)
seg = "jt/s00000001.j"
with open(seg, "rb") as f:
    full = f.read()
last = len(frame(recs[-1]))
base = len(full) - last
ok = 0
for cut in range(base, len(full)):
    rmtree("jt")
    os.mkdir("jt")
    with open(seg, "wb") as f:
        f.write(full[:cut])
    j = Journal("jt", 65536, 65536)
    got = payloads(j)
    assert got == recs[:-1], (cut, len(got))
    assert os.stat(seg)[6] == base, (cut, os.stat(seg)[6])  # torn tail truncated
    assert j.torn == (1 if cut > base else 0)
    assert j.depth == 4
    j.append(b"after")  # appends cleanly after the repair
    j2 = Journal("jt", 65536, 65536)
    assert payloads(j2) == recs[:-1] + [b"after"]
    ok += 1
# a flipped byte inside the last record is a torn record too
rmtree("jt"); os.mkdir("jt")
bad = bytearray(full); bad[-3] ^= 0x55
with open(seg, "wb") as f:
    f.write(bad)
assert payloads(Journal("jt", 65536, 65536)) == recs[:-1]
# scan() agrees on the framing
r, valid, torn = scan(full)
assert [p for _, p in r] == recs and valid == len(full) and not torn
print("cuts", ok, "hdr", HDR, "crc", full[3:7].hex() if hasattr(full, "hex") else "")
'''


def test_torn_last_record_every_offset_micropython(tmp_path):
    out = run_mp(TORN, tmp_path)
    assert out.startswith("cuts ")
    n = int(out.split()[1])
    assert n > 30


def test_torn_record_same_under_cpython(tmp_path):
    (tmp_path / "mp").mkdir()
    (tmp_path / "cp").mkdir()
    assert run_mp(TORN, tmp_path / "mp") == run_cpython(TORN, tmp_path / "cp")


ACKS = r'''
import os
from cartfw.journal import Journal, JournalFull
j = Journal("ja", 6000, 1024)
n = 0
try:
    while True:
        j.append(b"e%04d" % n + b"y" * 120)
        n += 1
except JournalFull:
    pass
print("accepted", n, "dropped", j.dropped, "segs", len(j.segs))
# the reserve admits the journal_full error itself
j.append(b"journal_full", reserve_ok=True)
# ack half, persist, reopen: replay starts at the first unacked record
for i in range((n + 1) // 2):
    pos, p = j.peek(); j.sent(pos); j.ack(pos)
j.flush()
j2 = Journal("ja", 6000, 1024)
pos, p = j2.peek()
print("replay from", p[:5], "depth", j2.depth, "segs", len(j2.segs), "files", len(os.listdir("ja")))
# ack everything: segments are deleted, space comes back
while True:
    r = j2.peek()
    if r is None:
        break
    j2.sent(r[0]); j2.ack(r[0])
j2.flush()
j2.append(b"fits again")
print("depth", j2.depth, "files", sorted(os.listdir("ja")))
'''


def test_full_journal_refuses_and_ack_cursor_replays(tmp_path):
    (tmp_path / "mp").mkdir()
    (tmp_path / "cp").mkdir()
    out = run_mp(ACKS, tmp_path / "mp")
    assert out == run_cpython(ACKS, tmp_path / "cp")
    lines = out.splitlines()
    acc = int(lines[0].split()[1])
    assert 30 <= acc <= 40 and lines[0].split()[3] == "1"
    assert lines[1].startswith("replay from b'e%04d'" % ((acc + 1) // 2))
    assert lines[2].startswith("depth 1 ")
