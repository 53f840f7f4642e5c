"""cart-flash's device checks over a serial line. The device side is a small
fake REPL peer on a pty: it answers the raw-REPL protocol as MicroPython does,
with the version, .mpy and machine we choose."""
import os
import threading
import tty

import pytest

from cart_flash import device, repl
from cart_flash.errors import FlashError, NoPort, WrongChip, WrongMicroPython
from cart_flash.flash import Flasher, Job
from cart_flash.fsimage import load_board

MPY_V6_XTENSAWIN = 6 | (3 << 8) | (10 << 10)


class FakeRepl:
    """Plays a MicroPython board's raw REPL on the master side of a pty."""

    def __init__(self, version=(1, 24, 1), mpy=MPY_V6_XTENSAWIN,
                 machine="Generic ESP32 module with ESP32", silent=False):
        self.answer = repr((version, mpy, machine)).encode()
        self.silent = silent
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.received = b""
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            self._serve2()
        except OSError:  # the test closed the pty
            pass

    def _serve2(self):
        code = b""
        raw = False
        while not self._stop:
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            self.received += data
            if self.silent:
                continue
            for ch in data:
                b = bytes([ch])
                if b == b"\x01":
                    raw, code = True, b""
                    os.write(self.master, b"\r\nraw REPL; CTRL-B to exit\r\n>")
                elif b == b"\x02":
                    raw = False
                    os.write(self.master, b"\r\nMicroPython v1.24.1\r\n>>> ")
                elif b == b"\x04" and raw:
                    os.write(self.master, b"OK" + self.answer + b"\r\n\x04\x04>")
                    code = b""
                elif raw:
                    code += b

    def close(self):
        self._stop = True
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def fake():
    peers = []

    def make(**kw):
        p = FakeRepl(**kw)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()


def test_query_reads_version_mpy_and_machine(fake):
    p = fake()
    info = repl.query_device(p.path, timeout=3)
    assert info == {"version": (1, 24, 1), "mpy": MPY_V6_XTENSAWIN, "machine": "Generic ESP32 module with ESP32"}
    assert b"sys.implementation" in p.received  # the query really went over the line


def test_good_device_passes_all_checks(fake):
    p = fake()
    f = Flasher(Job(board="cart-scale-esp32", cart="c001", target=p.path, config={"broker": {}}, timeout=3),
                log=lambda s: None)
    f._check_device()
    assert f.result["device"]["arch"] == "xtensawin"


def test_no_port_is_a_clear_error():
    with pytest.raises(NoPort, match="cannot open serial port '/dev/ttyNOPE0'.*plugged in"):
        repl.query_device("/dev/ttyNOPE0", timeout=1)


def test_wrong_chip_is_refused(fake):
    p = fake(machine="ESP32S3 module with ESP32S3")
    f = Flasher(Job(board="cart-scale-esp32", cart="c001", target=p.path, config={"broker": {}}, timeout=3),
                log=lambda s: None)
    with pytest.raises(WrongChip, match="board cart-scale-esp32 is an ESP32 but the device says 'ESP32S3 module"):
        f._check_device()


def test_rp2040_board_expects_rp2040():
    device.check_chip(load_board("cart-scale-rp2040w"), "Raspberry Pi Pico W with RP2040")
    with pytest.raises(WrongChip):
        device.check_chip(load_board("cart-scale-rp2040w"), "Generic ESP32 module with ESP32")


def test_old_micropython_is_refused(fake):
    p = fake(version=(1, 20, 0))
    f = Flasher(Job(board="cart-scale-esp32", cart="c001", target=p.path, config={"broker": {}}, timeout=3),
                log=lambda s: None)
    with pytest.raises(WrongMicroPython, match=r"MicroPython 1\.20\.0 on the device; board cart-scale-esp32 needs >=1\.23"):
        f._check_device()


def test_mpy_major_mismatch_is_refused(fake):
    p = fake(mpy=5 | (10 << 10))
    f = Flasher(Job(board="cart-scale-esp32", cart="c001", target=p.path, config={"broker": {}}, timeout=3),
                log=lambda s: None)
    with pytest.raises(WrongMicroPython, match=r"device loads \.mpy v5\.0 but mpy-cross here writes v6\."):
        f._check_device()


def test_silent_device_times_out_naming_the_port(fake):
    p = fake(silent=True)
    with pytest.raises(FlashError, match=r"no MicroPython REPL answer \(entering the raw REPL\)"):
        repl.query_device(p.path, timeout=1)


def test_required_version_parses_board_json():
    assert device.required_version(load_board("cart-cam-esp32s3")) == (1, 23, 0)
    with pytest.raises(FlashError, match="no '>=X.Y' requirement"):
        device.required_version({"name": "x", "micropython": "any"})
