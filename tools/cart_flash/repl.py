"""A MicroPython raw REPL over any pyserial URL (/dev/ttyUSB0, rfc2217://,
socket://, loop://): enough to ask the device what it runs before we copy
code to it. mpremote does the copying; this only queries.

Raw REPL (docs.micropython.org, "raw REPL mode"): Ctrl-C interrupts the
running program, Ctrl-A enters raw mode (banner "raw REPL; CTRL-B to exit\r\n>"),
the code is sent then Ctrl-D; the device answers "OK", the output, \x04,
the error text, \x04, then ">".
"""
from __future__ import annotations

import time

import serial

from cart_flash.errors import FlashError, NoPort

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"


class Repl:
    def __init__(self, url: str, baud: int = 115200, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout
        try:
            self.ser = serial.serial_for_url(url, baudrate=baud, timeout=0.1)
        except (serial.SerialException, ValueError, OSError) as e:
            raise NoPort(f"cannot open serial port {url!r}: {e}. Is the board plugged in "
                         f"and the port right (ls /dev/ttyUSB* /dev/ttyACM*)?") from None

    def close(self) -> None:
        self.ser.close()

    def _read_until(self, marker: bytes, timeout: float, what: str) -> bytes:
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(marker):
            if time.monotonic() > deadline:
                tail = buf[-200:].decode(errors="replace")
                raise FlashError(f"{self.url}: no MicroPython REPL answer ({what}) within "
                                 f"{timeout:.0f} s; got {tail!r}. Is MicroPython flashed?")
            buf += self.ser.read(1)
        return buf

    def enter_raw(self) -> None:
        self.ser.write(b"\r\x03\x03")  # interrupt whatever runs (main.py)
        time.sleep(0.1)
        self.ser.reset_input_buffer()
        self.ser.write(b"\r\x01")
        self._read_until(RAW_BANNER, self.timeout, "entering the raw REPL")

    def exec(self, code: str) -> str:
        """Run `code` in the raw REPL; return what it printed, raise on an exception."""
        self.ser.write(code.encode() + b"\x04")
        self._read_until(b"OK", self.timeout, "code accepted")
        out = self._read_until(b"\x04", self.timeout, "output")[:-1]
        err = self._read_until(b"\x04", self.timeout, "error")[:-1]
        self._read_until(b">", self.timeout, "prompt")
        if err:
            raise FlashError(f"{self.url}: device raised: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace").strip()

    def exit_raw(self) -> None:
        self.ser.write(b"\x02")


QUERY = ("import sys,os\n"
         "print(repr((sys.implementation.version[:3], getattr(sys.implementation,'_mpy',0),"
         " os.uname().machine)))\n")


def query_device(url: str, baud: int = 115200, timeout: float = 5.0) -> dict:
    """{'version': (1, 23, 0), 'mpy': int, 'machine': str} from the device."""
    import ast
    r = Repl(url, baud, timeout)
    try:
        r.enter_raw()
        text = r.exec(QUERY)
        r.exit_raw()
    finally:
        r.close()
    try:
        version, mpy, machine = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise FlashError(f"{url}: unexpected answer to the version query: {text!r}") from None
    return {"version": tuple(version), "mpy": int(mpy), "machine": str(machine)}
