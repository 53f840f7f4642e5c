"""Console over any pyserial URL, with pytest-embedded-style expect().

A background reader keeps the bytes (and reopens the port when it vanishes,
as a USB-serial adapter does while its board is power-cycled), so nothing
printed during a reboot is missed between two expects."""
from __future__ import annotations

import re
import threading
import time

import serial


class ExpectTimeout(AssertionError):
    pass


class SerialConsoleDriver:
    def __init__(self, url: str, baud: int = 115200, name: str = ""):
        self.url, self.baud, self.name = url, baud, name or url
        self._buf = bytearray()
        self._pos = 0           # expect() searches from here
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._released = threading.Event()
        self._ser = None
        self._thread = threading.Thread(target=self._reader, daemon=True, name=f"console-{self.name}")
        self._open()
        self._thread.start()

    def _open(self) -> None:
        self._ser = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1)

    def _reader(self) -> None:
        while not self._stop.is_set():
            if self._released.is_set() or self._ser is None:
                time.sleep(0.05)
                continue
            try:
                data = self._ser.read(4096)
            except (serial.SerialException, OSError):
                self._ser = None
                self._reopen_later()
                continue
            if data:
                with self._lock:
                    self._buf += data.replace(b"\r\n", b"\n")

    def _reopen_later(self) -> None:
        while not self._stop.is_set() and not self._released.is_set():
            try:
                self._open()
                return
            except (serial.SerialException, OSError):
                time.sleep(0.2)

    def text(self) -> str:
        with self._lock:
            return self._buf.decode(errors="replace")

    def clear(self) -> None:
        """Forget what was printed so far: the next expect sees only new output."""
        with self._lock:
            self._pos = len(self._buf)

    def expect(self, pattern, timeout: float = 10.0) -> re.Match:
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern.pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                m = rx.search(self._buf, self._pos)
                if m:
                    self._pos = m.end()
                    return _Match(m)
                tail = self._buf[max(self._pos, len(self._buf) - 600):].decode(errors="replace")
            if time.monotonic() > deadline:
                raise ExpectTimeout(f"console {self.name}: {pattern!r} not seen within {timeout:.0f} s; "
                                    f"last output:\n{tail}")
            time.sleep(0.05)

    def release(self) -> None:
        self._released.set()
        time.sleep(0.15)
        if self._ser is not None:
            self._ser.close()
            self._ser = None

    def reopen(self) -> None:
        self._open()
        self._released.clear()

    def pulse_reset(self) -> None:
        """ESP32 dev boards: RTS drives EN low through the auto-reset circuit."""
        if self._ser is not None:
            self._ser.rts = True
            time.sleep(0.1)
            self._ser.rts = False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        if self._ser is not None:
            self._ser.close()


class _Match:
    """The match, decoded: .group(n) as str."""

    def __init__(self, m: re.Match):
        self._m = m

    def group(self, *n):
        g = self._m.group(*n)
        if isinstance(g, tuple):
            return tuple(x.decode(errors="replace") if x is not None else None for x in g)
        return g.decode(errors="replace") if g is not None else None
