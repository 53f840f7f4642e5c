# The outbox: an append-only journal of encoded events on flash, with a
# persisted ack cursor. Runs under MicroPython and CPython (relative paths).
#
# Layout of the journal directory:
#   s00000001.j ...   segment files, appended in order
#   cursor            "<segment> <offset>\n": first record not yet acknowledged
#                     (written via write-temp + rename)
# Record framing: b"\xa5" | len u16 BE | crc32(payload) u32 BE | payload
# A power cut can only tear the record being appended last; the CRC finds it
# and open() rewrites that segment without it.
import os
import struct
import binascii

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

MAGIC = const(0xA5)
HDR = const(7)
REC_MAX = const(1024)  # protocol §6 event limit
# Headroom kept back so that the one journal_full error of a full episode can
# itself be journaled.
RESERVE = const(1200)


class JournalFull(Exception):
    pass


def frame(payload):
    """Framed record bytes for payload (bytes)."""
    n = len(payload)
    if n == 0 or n > REC_MAX:
        raise ValueError("journal record: size %d not in 1..%d" % (n, REC_MAX))
    return struct.pack(">BHI", MAGIC, n, binascii.crc32(payload) & 0xFFFFFFFF) + payload


def scan(data):
    """Parse framed records from bytes. Returns (records, valid_len, bad).

    records: list of (offset, payload); valid_len: bytes of intact records from
    the start; bad: True if bytes after valid_len are not an intact record."""
    out = []
    off = 0
    n = len(data)
    while off < n:
        if n - off < HDR:
            return out, off, True
        magic, ln, crc = struct.unpack(">BHI", data[off:off + HDR])
        if magic != MAGIC or ln == 0 or ln > REC_MAX or off + HDR + ln > n:
            return out, off, True
        p = data[off + HDR:off + HDR + ln]
        if binascii.crc32(p) & 0xFFFFFFFF != crc:
            return out, off, True
        out.append((off, bytes(p)))
        off += HDR + ln
    return out, off, False


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return 0


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def read_int(path, default=0):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return default


class Journal:
    def __init__(self, root="journal", max_bytes=65536, segment_bytes=8192):
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0  # events refused because the journal was full
        self.corrupt = 0  # records lost to corruption (not a torn tail)
        self.torn = 0  # torn tails removed at open
        self._cursor_dirty = 0
        self.errors = 0  # flash writes that failed (read-only, full, I/O error)
        self.fault = None  # the last of them: (where, exception)
        self.open()

    def _failed(self, where, e):
        # The flash refused a write. Never fatal: what is journaled stays
        # readable and is still sent; the runtime reports the fault.
        self.errors += 1
        self.fault = (where, e)

    # -- paths
    def _seg(self, n):
        return "%s/s%08d.j" % (self.root, n)

    def _segments(self):
        out = []
        try:
            names = os.listdir(self.root)
        except OSError:
            return out
        for name in names:
            if name[0] == "s" and name.endswith(".j"):
                try:
                    out.append(int(name[1:-2]))
                except ValueError:
                    pass
        out.sort()
        return out

    def open(self):
        try:
            if not _exists(self.root):
                os.mkdir(self.root)
            for name in os.listdir(self.root):  # leftovers of an interrupted rename
                if name.endswith(".tmp"):
                    os.remove(self.root + "/" + name)
        except OSError as e:
            self._failed("open", e)
        segs = self._segments()
        cur = self._read_cursor()
        if cur is None or (segs and cur[0] < segs[0]):
            cur = (segs[0], 0) if segs else (1, 0)
        # Drop segments wholly before the cursor (acked, deletion interrupted).
        for s in segs:
            if s < cur[0]:
                try:
                    os.remove(self._seg(s))
                except OSError as e:
                    self._failed("open", e)
        segs = [s for s in segs if s >= cur[0]]
        if segs:
            self.wseg = segs[-1]
            try:
                self._repair(segs[-1])
            except OSError as e:
                # A torn tail that cannot be cut off: append to a new segment,
                # never after it (readers stop at the damage).
                self._failed("repair", e)
                self.wseg += 1
                segs.append(self.wseg)
        else:
            self.wseg = cur[0]
        self.wsize = _size(self._seg(self.wseg))
        self.segs = segs if segs else [self.wseg]
        self.cur = cur
        self.rpos = cur  # read position of the publisher (next record to send)
        self.total = 0
        for s in self.segs:
            self.total += _size(self._seg(s))
        self.depth = self._count_pending()

    def _repair(self, s):
        # Rewrite the last segment without a torn tail (atomically).
        p = self._seg(s)
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            return
        recs, valid, bad = scan(data)
        if bad:
            self.torn += 1
            write_atomic(p, data[:valid])

    def _read_cursor(self):
        try:
            with open(self.root + "/cursor") as f:
                a, b = f.read().split()
            return int(a), int(b)
        except (OSError, ValueError):
            return None

    def _count_pending(self):
        n = 0
        for s in self.segs:
            off0 = self.cur[1] if s == self.cur[0] else 0
            for off, _ in self._records(s):
                if off >= off0:
                    n += 1
        return n

    def _records(self, s):
        try:
            with open(self._seg(s), "rb") as f:
                data = f.read()
        except OSError:
            return []
        recs, valid, bad = scan(data)
        if bad and s != self.wseg:
            self.corrupt += 1  # mid-journal damage: skip the rest of the segment
        return recs

    # -- writing
    def append(self, payload, reserve_ok=False):
        """Append one encoded event. Raises JournalFull (and counts it) when the
        journal is at max_bytes; reserve_ok lets the journal_full error use the
        reserved headroom."""
        rec = frame(payload)
        limit = self.max_bytes if reserve_ok else self.max_bytes - RESERVE
        if self.total + len(rec) > limit:
            self.dropped += 1
            raise JournalFull()
        if self.wsize and self.wsize + len(rec) > self.segment_bytes:
            self.wseg += 1
            self.segs.append(self.wseg)
            self.wsize = 0
        try:
            with open(self._seg(self.wseg), "ab") as f:
                f.write(rec)
        except OSError as e:
            self._failed("append", e)
            # A partial record may be on flash now. Count its bytes, and put
            # the next record in a new segment so that none follows damage.
            torn = _size(self._seg(self.wseg)) - self.wsize
            if torn > 0:
                self.total += torn
                self.wseg += 1
                self.segs.append(self.wseg)
                self.wsize = 0
            raise
        self.wsize += len(rec)
        self.total += len(rec)
        self.depth += 1

    # -- reading for publish
    def peek(self):
        """(pos, payload) of the next record to publish, or None. pos is an
        opaque token for ack(). Reads just that record: bounded RAM."""
        while True:
            s, off = self.rpos
            if s > self.wseg:
                return None
            r = self._read_at(s, off)
            if r is not None:
                return (s, off + HDR + len(r)), r
            if s >= self.wseg:
                return None
            self.rpos = (s + 1, 0)

    def _read_at(self, s, off):
        try:
            with open(self._seg(s), "rb") as f:
                f.seek(off)
                h = f.read(HDR)
                if not h:
                    return None
                if len(h) == HDR:
                    magic, ln, crc = struct.unpack(">BHI", h)
                    if magic == MAGIC and 0 < ln <= REC_MAX:
                        p = f.read(ln)
                        if len(p) == ln and binascii.crc32(p) & 0xFFFFFFFF == crc:
                            return p
        except OSError:
            return None
        self.corrupt += 1  # damaged mid-journal: the rest of this segment is skipped
        return None

    def sent(self, pos):
        # The publisher moves on; the cursor moves only on ack().
        self.rpos = pos

    def rewind(self):
        # After a reconnect: replay everything not yet acknowledged, in order.
        self.rpos = self.cur

    def ack(self, pos, persist_every=16):
        """The record ending at pos was acknowledged (PUBACK)."""
        self.cur = pos
        if self.depth > 0:
            self.depth -= 1
        if self.rpos < pos:
            self.rpos = pos
        self._cursor_dirty += 1
        if self._cursor_dirty >= persist_every or self.depth == 0:
            self.flush()

    def flush(self):
        """Persist the cursor and delete fully acknowledged segments. Until it
        runs, a reboot replays a few acked events: duplicates with the same
        identity, which receivers drop (protocol §5). Bounds flash wear."""
        if not self._cursor_dirty:
            return
        s, off = self.cur
        if s < self.wseg and off >= _size(self._seg(s)):
            s, off = s + 1, 0
            self.cur = (s, off)
        try:
            write_atomic(self.root + "/cursor", b"%d %d\n" % (s, off))
            self._cursor_dirty = 0
        except OSError as e:
            # Read-only or full flash: keep the cursor in RAM (a reboot then
            # replays acked events, which receivers drop as duplicates) and
            # still delete acked segments: that frees room on a full flash,
            # and open() restarts at the first segment left.
            self._failed("cursor", e)
        self._drop_acked(s)

    def _drop_acked(self, s):
        while len(self.segs) > 1 and self.segs[0] < s:
            old = self.segs.pop(0)
            self.total -= _size(self._seg(old))
            try:
                os.remove(self._seg(old))
            except OSError:
                pass
