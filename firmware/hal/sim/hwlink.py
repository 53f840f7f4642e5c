# Hardware link client for virtual boards (docs/architecture.md, "The hardware
# link"). The supervisor plays the chips: it sends HX711 conversions
# (`s <int>`), camera frames (`f <n>` + n bytes) and stills (`S <n>` + n
# bytes, the high-resolution capture of §7.1); we send watchdog feeds,
# resets and hello. Every buffer is bounded and sized once.
import os
import socket
import struct
import asyncio
from array import array
from micropython import const

_SAMPLES = const(64)        # ~0.8 s of conversions at 80/s
_LINE_MAX = const(48)       # longest line we accept (`S 524288`, `s -8388608`)
_FRAMES = const(3)          # queued frames
_FRAME_MAX = const(131072)  # protocol §7
_STILL_MAX = const(524288)  # protocol §7.1
_RX = const(512)


class _Samples:
    # A ring of conversions; the newest overwrite the oldest if the reader
    # stalls, as a real HX711 only holds its latest result.
    def __init__(self):
        self.buf = array("i", [0] * _SAMPLES)
        self.head = 0
        self.n = 0
        self.overruns = 0

    def put(self, v):
        if self.n == _SAMPLES:
            self.head = (self.head + 1) % _SAMPLES
            self.n -= 1
            self.overruns += 1
        self.buf[(self.head + self.n) % _SAMPLES] = v
        self.n += 1

    def take_sample(self):
        if not self.n:
            return None
        v = self.buf[self.head]
        self.head = (self.head + 1) % _SAMPLES
        self.n -= 1
        return v


class Link:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The unix port takes a raw sockaddr_un: family (native u16), path, NUL.
        self.s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0")
        self.s.setblocking(False)
        self.samples = _Samples()
        self.frames = []
        self.frames_dropped = 0
        self.still = None       # the latest still the sensor would deliver at still resolution
        self.stills_in = 0
        self.bad_lines = 0
        self._rx = bytearray(_RX)
        self._line = bytearray(_LINE_MAX)
        self._ll = 0
        self._frame = None   # frame being received
        self._is_still = False
        self._fpos = 0
        self.closed = False

    def send(self, line):
        # Non-blocking: a full socket drops the line (a feed is resent soon).
        try:
            self.s.send(line.encode() + b"\n")
        except OSError:
            pass

    def take_sample(self):
        return self.samples.take_sample()

    def take_frame(self):
        return self.frames.pop(0) if self.frames else None

    def take_still(self):
        # The latest still, once: the supervisor renders the scene at still resolution.
        st, self.still = self.still, None
        return st

    def _on_line(self, n):
        ln = self._line
        try:
            if n > 2 and ln[0] == 0x73 and ln[1] == 0x20:      # "s <int>"
                self.samples.put(int(bytes(ln[2:n])))
            elif n > 2 and ln[0] in (0x66, 0x53) and ln[1] == 0x20:    # "f <n>", "S <n>"
                size = int(bytes(ln[2:n]))
                still = ln[0] == 0x53
                if not 0 < size <= (_STILL_MAX if still else _FRAME_MAX):
                    raise ValueError
                self._frame = bytearray(size)
                self._is_still = still
                self._fpos = 0
            else:
                self.bad_lines += 1
        except ValueError:
            self.bad_lines += 1

    def _feed(self, mv, n):
        i = 0
        while i < n:
            if self._frame is not None:
                take = min(n - i, len(self._frame) - self._fpos)
                self._frame[self._fpos:self._fpos + take] = mv[i:i + take]
                self._fpos += take
                i += take
                if self._fpos == len(self._frame) and self._is_still:
                    self.still = self._frame   # a newer still replaces an unread one
                    self.stills_in += 1
                    self._frame = None
                elif self._fpos == len(self._frame):
                    if len(self.frames) >= _FRAMES:
                        self.frames.pop(0)
                        self.frames_dropped += 1
                    self.frames.append(self._frame)
                    self._frame = None
                continue
            c = mv[i]
            i += 1
            if c == 0x0A:
                self._on_line(self._ll)
                self._ll = 0
            elif self._ll < _LINE_MAX:
                self._line[self._ll] = c
                self._ll += 1
            else:
                self._ll = 0        # overlong line: drop it
                self.bad_lines += 1

    async def poll(self):
        mv = memoryview(self._rx)
        while not self.closed:
            try:
                n = self.s.readinto(self._rx)
            except OSError:
                n = None            # EAGAIN: nothing to read
            if n == 0:
                # The supervisor went away: the "hardware" is gone.
                self.closed = True
                break
            if n:
                self._feed(mv, n)
                continue
            await asyncio.sleep_ms(5)


_link = None


def link():
    global _link
    if _link is None:
        _link = Link(os.getenv("CART_SIM_HW"))
    return _link
