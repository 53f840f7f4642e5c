# Frame chunks, docs/protocol.md §7. Pure logic: runs identically under
# MicroPython and CPython.
#
# A chunk is one MQTT payload: a 24-byte header (`>2sBBIIHHII`) then the
# chunk's bytes. The runtime publishes one contiguous buffer per chunk
# (rt.publish_frame_chunk(buf)), so a FrameSlot stores a frame already laid out
# as [header0|data0][header1|data1]...: loading a frame is the one copy it gets
# (out of the camera's frame buffer, which the driver must get back quickly),
# and each chunk is then a memoryview slice of the slot, with its header packed
# in place by struct.pack_into. Nothing is allocated per chunk.
import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

HEADER_FMT = ">2sBBIIHHII"
HEADER_LEN = const(24)
MAGIC = b"CF"
VER = const(1)
FMT_JPEG = const(1)
CHUNK_DEFAULT = const(1024)
CHUNK_MAX = const(4096)
COUNT_MAX = const(64)
FRAME_MAX = const(131072)
# A still (§7.1): one high-resolution JPEG after a placement, for barcodes and
# the crop classifier. `fmt`'s high nibble is its resolution code (0 = a burst
# frame); its limits are larger: 1..524288 bytes in at most 128 chunks.
STILL_MAX = const(524288)
STILL_COUNT_MAX = const(128)
RESOLUTIONS = {1: (640, 480), 2: (800, 600), 3: (1024, 768), 4: (1280, 1024), 5: (1600, 1200)}
RES_NAMES = {"VGA": 1, "SVGA": 2, "XGA": 3, "SXGA": 4, "UXGA": 5}


def still_fmt(res):
    # The fmt byte of a still at resolution code `res` (RESOLUTIONS).
    if res not in RESOLUTIONS:
        raise FramingError("still resolution code %r: must be one of %r (§7.1)" % (res, sorted(RESOLUTIONS)))
    return (res << 4) | FMT_JPEG


class FramingError(ValueError):
    pass


def chunk_count(size, chunk_size):
    # §7: count = ceil(size / chunk_size)
    return (size + chunk_size - 1) // chunk_size


def check_chunk_size(chunk_size):
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= CHUNK_MAX:
        raise FramingError("chunk_size %r: must be an integer 1..%d (§7)" % (chunk_size, CHUNK_MAX))


def check_frame_size(size, chunk_size, capacity=FRAME_MAX, limit=FRAME_MAX, what="frame", count_max=COUNT_MAX):
    # Raise FramingError naming the limit that `size` breaks (limit: FRAME_MAX, or STILL_MAX for a still).
    if size < 1:
        raise FramingError("%s is empty (size 0; §7 needs 1..%d bytes)" % (what, limit))
    if size > limit:
        raise FramingError("%s size %d bytes exceeds the §7 limit of %d bytes" % (what, size, limit))
    n = chunk_count(size, chunk_size)
    if n > count_max:
        raise FramingError("%s size %d bytes needs %d chunks of %d bytes; §7 allows at most %d"
                           % (what, size, n, chunk_size, count_max))
    if size > capacity:
        raise FramingError("%s size %d bytes exceeds this slot's capacity of %d bytes"
                           % (what, size, capacity))


def pack_header(buf, offset, epoch, frame, index, count, size, crc, fmt=FMT_JPEG):
    struct.pack_into(HEADER_FMT, buf, offset, MAGIC, VER, fmt, epoch, frame, index,
                     count, size, crc)


class FrameSlot:
    """One preallocated frame, stored as ready-to-publish chunks.

    max_size bounds the frame (and the RAM: ceil(max_size/chunk_size) *
    (24 + chunk_size) bytes, allocated once here). still_res: None for burst
    frames, else the resolution code of the stills this slot carries (§7.1)."""

    def __init__(self, chunk_size=CHUNK_DEFAULT, max_size=FRAME_MAX, still_res=None):
        check_chunk_size(chunk_size)
        self.fmt = FMT_JPEG if still_res is None else still_fmt(still_res)
        self.limit = FRAME_MAX if still_res is None else STILL_MAX
        self.what = "frame" if still_res is None else "still"
        self.count_max = COUNT_MAX if still_res is None else STILL_COUNT_MAX
        if not isinstance(max_size, int) or not 1 <= max_size <= self.limit:
            raise FramingError("max_size %r: must be an integer 1..%d (§7)" % (max_size, self.limit))
        slots = chunk_count(max_size, chunk_size)
        if slots > self.count_max:
            slots = self.count_max
        self.chunk_size = chunk_size
        self.stride = HEADER_LEN + chunk_size
        self.capacity = min(max_size, slots * chunk_size)
        self.buf = bytearray(slots * self.stride)
        self.mv = memoryview(self.buf)
        self.clear()

    def clear(self):
        self.epoch = 0
        self.frame = 0
        self.size = 0
        self.count = 0
        self.crc = 0

    def load(self, src, epoch, frame):
        """Copy the JPEG in `src` (bytes, bytearray or memoryview) into the slot
        and pack every chunk header. Raises FramingError (slot left empty) when
        the frame breaks a §7 limit or the slot's capacity."""
        self.clear()
        size = len(src)
        check_frame_size(size, self.chunk_size, self.capacity, self.limit, self.what, self.count_max)
        if not 1 <= epoch <= 0xFFFFFFFF or not 1 <= frame <= 0xFFFFFFFF:
            raise FramingError("epoch %r / frame %r: must be 1..2^32-1 (§7)" % (epoch, frame))
        src = memoryview(src)
        cs = self.chunk_size
        stride = self.stride
        mv = self.mv
        crc = 0
        o = 0  # offset in src
        d = HEADER_LEN  # offset of the current chunk's data in the slot
        while o < size:
            n = size - o
            if n > cs:
                n = cs
            part = src[o:o + n]
            mv[d:d + n] = part
            crc = crc32(part, crc)
            o += n
            d += stride
        crc &= 0xFFFFFFFF
        count = chunk_count(size, cs)
        for i in range(count):
            pack_header(self.buf, i * stride, epoch, frame, i, count, size, crc, self.fmt)
        self.epoch = epoch
        self.frame = frame
        self.size = size
        self.count = count
        self.crc = crc

    def chunk(self, i):
        # The i-th chunk payload (header + data) as a memoryview into the slot.
        if not 0 <= i < self.count:
            raise IndexError("chunk %d of %d" % (i, self.count))
        start = i * self.stride
        n = self.size - i * self.chunk_size
        if n > self.chunk_size:
            n = self.chunk_size
        return self.mv[start:start + HEADER_LEN + n]


def encode(frame_bytes, epoch, frame, chunk_size=CHUNK_DEFAULT, still_res=None):
    # Convenience for tools and tests: the list of chunk payloads as bytes.
    # Allocates; firmware publishes from a FrameSlot instead.
    limit = FRAME_MAX if still_res is None else STILL_MAX
    slot = FrameSlot(chunk_size, max(1, min(len(frame_bytes), limit)), still_res)
    if len(frame_bytes) > limit:
        check_frame_size(len(frame_bytes), chunk_size, limit, limit, slot.what, slot.count_max)
    slot.load(frame_bytes, epoch, frame)
    return [bytes(slot.chunk(i)) for i in range(slot.count)]
