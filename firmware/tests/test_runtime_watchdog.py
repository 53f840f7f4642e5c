"""The watchdog rule end to end, with a minimal supervisor in the test (a Unix
socket that receives `wdt <ms>` / `feed` and SIGKILLs a board that stops
feeding, then powers it on with CART_SIM_RESET_CAUSE=wdt), and a test
stand-in for hwlink.py:

- a blocked loop (`test_hang`) stops the feeds: the board is reset, comes back
  with reset_cause "wdt" and a new epoch;
- a dead broker does not: the client is in backoff, which is healthy, so the
  board keeps feeding for many watchdog periods."""
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from cart_testing.broker import ClosedPort
from fwtest import LOADGEN, Board, board_config

pytestmark = pytest.mark.micropython

STUB = Path(__file__).with_name("apps") / "hwlink_stub.py"


class Supervisor:
    def __init__(self, tmp: Path, board: Board):
        self.path = str(tmp / "hw.sock")
        self.board = board
        self.lines = []
        self.last_feed = None
        self.timeout_ms = None
        self.resets = 0
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(self.path)
        self.ls.listen(4)
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        f = c.makefile("r")
        for line in f:
            line = line.strip()
            self.lines.append(line)
            if line.startswith("wdt "):
                self.timeout_ms = int(line.split()[1])
                self.last_feed = time.time()
            elif line == "feed":
                self.last_feed = time.time()

    def _watch(self):
        while not self.stop:
            time.sleep(0.1)
            if self.timeout_ms and self.last_feed and self.board.alive():
                if (time.time() - self.last_feed) * 1000 > self.timeout_ms:
                    self.board.kill()  # the hardware watchdog resets the chip
                    self.resets += 1
                    self.timeout_ms = self.last_feed = None
                    self.board.env["CART_SIM_RESET_CAUSE"] = "wdt"
                    self.board.start()

    def close(self):
        self.stop = True
        self.ls.close()


def make(tmp_path, board_factory, port, **cfg):
    b = board_factory(app=LOADGEN, mpy=True)
    shutil.copy(STUB, b.flash / "lib" / "hwlink.py")
    sup = Supervisor(tmp_path, b)
    b.env["CART_SIM_HW"] = sup.path
    b.write_config(board_config(port, wdt_ms=2000, **cfg))
    return b, sup


def test_hung_loop_is_reset_by_watchdog(tmp_path, mosquitto, board_factory, subscriber_factory):
    sub = subscriber_factory(mosquitto.port)
    b, sup = make(tmp_path, board_factory, mosquitto.port, app={"rate_hz": 5, "count": 0})
    try:
        b.start()
        assert sub.wait(lambda: sub.on("/status"), 10), b.text()
        assert sub.wait(lambda: sup.lines.count("feed") >= 2, 10)
        assert any(l.startswith("hello scale c001 ") for l in sup.lines)
        sub.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "hang1", "cmd": "test_hang",
                                                        "args": {"ms": 60000}}))
        assert sub.wait(lambda: sup.resets == 1, 15), (b.text(), sup.lines[-5:])

        def reborn():
            for t, p, r in sub.on("/tele"):
                d = json.loads(p)
                if d["epoch"] == 2:
                    return d
        assert sub.wait(reborn, 15), b.text()
        assert reborn()["reset_cause"] == "wdt"
    finally:
        sup.close()


def test_dead_broker_does_not_trip_watchdog(tmp_path, board_factory):
    closed = ClosedPort()  # nothing listens, and nothing can start to: connect refused, backoff forever
    b, sup = make(tmp_path, board_factory, closed.port, backoff_max_s=4, app={"rate_hz": 2, "count": 0})
    try:
        b.start()
        time.sleep(12)  # six watchdog periods
        assert sup.resets == 0, b.text()
        assert b.alive()
        assert sup.lines.count("feed") >= 8
        assert "connect failed" in b.text()
    finally:
        sup.close()
        closed.close()
