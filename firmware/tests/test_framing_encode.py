# docs/protocol.md §7 frame chunks: the firmware encoder (cartfw.framing) run
# inside the real micropython binary must produce the same bytes as under
# CPython, and a reference decoder written here from the spec must reassemble
# them.
import binascii
import io
import json
import random
import struct

import pytest
from PIL import Image, ImageDraw

from camera_mpy import run_mpy
from cartfw import framing

pytestmark = pytest.mark.micropython

HDR = ">2sBBIIHHII"


def reference_reassemble(chunks, chunk_size):
    """Spec §7, independent of the firmware code: returns (epoch, frame, bytes)."""
    assert chunks, "no chunks"
    heads = [struct.unpack(HDR, c[:24]) for c in chunks]
    magic, ver, fmt, epoch, frame, _, count, size, crc = heads[0]
    assert (magic, ver, fmt) == (b"CF", 1, 1)
    assert 1 <= count <= 64 and 1 <= size <= 131072
    assert count == -(-size // chunk_size) == len(chunks)
    data = bytearray()
    for i, (h, c) in enumerate(zip(heads, chunks)):
        assert h[:5] == (b"CF", 1, 1, epoch, frame) and h[5] == i
        assert h[6:] == (count, size, crc)
        body = c[24:]
        want = chunk_size if i < count - 1 else size - (count - 1) * chunk_size
        assert len(body) == want, "chunk %d carries %d bytes, want %d" % (i, len(body), want)
        data += body
    assert len(data) == size
    assert binascii.crc32(bytes(data)) & 0xFFFFFFFF == crc
    return epoch, frame, bytes(data)


def jpeg_bytes(seed=1, size=(320, 240), quality=80):
    rnd = random.Random(seed)
    im = Image.new("RGB", size, (200, 190, 170))
    d = ImageDraw.Draw(im)
    for _ in range(40):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        d.rectangle([x, y, x + rnd.randrange(10, 60), y + rnd.randrange(10, 40)],
                    fill=tuple(rnd.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


# (name, size or jpeg, chunk_size)
CASES = [
    ("one_byte", 1, 1024),
    ("exact_chunk", 1024, 1024),
    ("chunk_plus_one", 1025, 1024),
    ("max_at_1024", 65536, 1024),  # 64 chunks of 1024
    ("max_frame", 131072, 2048),  # 128 KiB in 64 chunks of 2048
    ("small_chunks", 5000, 256),
    ("big_chunks", 9000, 4096),
    ("jpeg_qvga", "jpeg", 1024),
]

MPY_ENCODE = r"""
import json
from cartfw.framing import FrameSlot
cases = json.load(open("cases.json"))
for c in cases:
    with open(c["name"] + ".in", "rb") as f:
        src = f.read()
    slot = FrameSlot(c["chunk_size"], max(len(src), 1))
    slot.load(src, c["epoch"], c["frame"])
    with open(c["name"] + ".out", "wb") as f:
        for i in range(slot.count):
            ch = slot.chunk(i)
            f.write(len(ch).to_bytes(2, "big"))
            f.write(ch)
print("ok", len(cases))
"""


def split_out(blob):
    out, i = [], 0
    while i < len(blob):
        n = int.from_bytes(blob[i:i + 2], "big")
        out.append(blob[i + 2:i + 2 + n])
        i += 2 + n
    return out


def test_micropython_and_cpython_encode_identical_bytes(tmp_path):
    rnd = random.Random(7)
    cases = []
    frames = {}
    for k, (name, size, cs) in enumerate(CASES):
        data = jpeg_bytes() if size == "jpeg" else bytes(rnd.randrange(256) for _ in range(size))
        frames[name] = data
        (tmp_path / (name + ".in")).write_bytes(data)
        cases.append({"name": name, "chunk_size": cs, "epoch": 3 + k, "frame": 1 + 1000 * k})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    assert run_mpy(MPY_ENCODE, tmp_path, heap="2M").split() == ["ok", str(len(cases))]
    for c in cases:
        mpy_chunks = split_out((tmp_path / (c["name"] + ".out")).read_bytes())
        cpy_chunks = framing.encode(frames[c["name"]], c["epoch"], c["frame"], c["chunk_size"])
        assert mpy_chunks == cpy_chunks, c["name"]
        epoch, frame, data = reference_reassemble(mpy_chunks, c["chunk_size"])
        assert (epoch, frame, data) == (c["epoch"], c["frame"], frames[c["name"]]), c["name"]


@pytest.mark.parametrize("size,cs,count,last", [(1, 1024, 1, 1), (1024, 1024, 1, 1024),
                                                 (1025, 1024, 2, 1), (131072, 2048, 64, 2048),
                                                 (131071, 2048, 64, 2047)])
def test_boundary_sizes_cpython(size, cs, count, last):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    chunks = framing.encode(data, 1, 1, cs)
    assert len(chunks) == count
    assert len(chunks[-1]) == 24 + last
    assert reference_reassemble(chunks, cs)[2] == data


def test_rejects_oversize_and_empty_cpython():
    with pytest.raises(framing.FramingError, match="131073 bytes exceeds the §7 limit of 131072"):
        framing.encode(bytes(131073), 1, 1, 4096)
    with pytest.raises(framing.FramingError, match="needs 65 chunks of 1024 bytes; §7 allows at most 64"):
        framing.encode(bytes(65537), 1, 1, 1024)
    with pytest.raises(framing.FramingError, match="empty"):
        framing.encode(b"", 1, 1)
    with pytest.raises(framing.FramingError, match="chunk_size 5000"):
        framing.FrameSlot(5000)
    slot = framing.FrameSlot(1024, 4096)
    with pytest.raises(framing.FramingError, match="capacity of 4096"):
        slot.load(bytes(4097), 1, 1)
    with pytest.raises(framing.FramingError, match="frame 0"):
        slot.load(b"x", 1, 0)


MPY_LIMITS = r"""
import gc
from cartfw.framing import FrameSlot, FramingError
def err(fn):
    try:
        fn()
        return "accepted"
    except FramingError as e:
        return str(e)
big = FrameSlot(4096, 131072)
print("E1", err(lambda: big.load(bytearray(131073), 1, 1)))
print("E2", err(lambda: FrameSlot(1024).load(bytearray(65537), 1, 1)))
print("E3", err(lambda: big.load(b"", 1, 1)))
print("OK4", err(lambda: big.load(bytearray(131072), 1, 1)), big.count)
# A rejected frame leaves the slot empty; the next good frame is whole.
print("C5", err(lambda: big.load(bytearray(131073), 1, 2)), big.count)
# Reuse: a big then a small frame, no stale bytes in the small one's chunk.
s = FrameSlot(1024, 65536)
s.load(b"\xff" * 65536, 2, 1)
s.load(b"ab", 2, 2)
print("R6", s.count, bytes(s.chunk(0)[24:]))
# Publishing walks memoryview slices: allocation stays far below the frame size.
s.load(bytearray(65536), 2, 3)
gc.collect()
a0 = gc.mem_alloc()
total = 0
for i in range(s.count):
    total += len(s.chunk(i))
a1 = gc.mem_alloc()
print("A7", total, a1 - a0)
"""


def test_limits_and_no_copy_under_micropython(tmp_path):
    lines = dict(l.split(" ", 1) for l in run_mpy(MPY_LIMITS, tmp_path, heap="1M").splitlines())
    assert "131073 bytes exceeds the §7 limit of 131072" in lines["E1"]
    assert "needs 65 chunks of 1024 bytes; §7 allows at most 64" in lines["E2"]
    assert "empty" in lines["E3"]
    assert lines["OK4"] == "accepted 32"
    assert lines["C5"].endswith(" 0") and "exceeds" in lines["C5"]
    assert lines["R6"] == "1 b'ab'"
    total, alloc = map(int, lines["A7"].split())
    assert total == 65536 + 64 * 24
    # 64 memoryview objects at most, never a copy of the 64 KiB frame
    assert alloc < 64 * 64, alloc
