"""A virtual board: the real firmware in a `micropython -X heapsize=<budget>`
process, with this supervisor playing the hardware (docs/architecture.md).

- flash: a directory, built by cart_flash.fsimage (the process's cwd);
- sensors: the hardware link, a Unix socket the sim HAL connects to
  (`CART_SIM_HW`); HX711 conversions come from cart_sim.physics at 80/s;
- console: the process's output relayed to a pty, readable with pyserial;
- power: power_off() is SIGKILL, power_on() boots again on the same flash;
- watchdog and reset: a board that stops feeding is killed and restarted,
  and `machine.reset()` (exit code 3) restarts it.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from cart_flash.fsimage import build_fs, config_template, load_board
from cart_sim.physics.hx711 import LoadCellModel
from cart_testing.mpy import micropython_bin

RESET_EXIT = 3  # the sim HAL's machine.reset() exit code


class VirtualBoard:
    def __init__(self, board: str, cart: str, broker: tuple[str, int], fs: Path,
                 seed: int = 0, config: dict | None = None, mpy: bool = True,
                 heap: int | None = None):
        self.definition = load_board(board)
        # A device runs frozen bytecode from flash; the unix port loads it into the
        # heap, so the data budget is the device's and the code gets its own share.
        self.heap = heap or self.definition["heap_budget"] + self.definition.get("code_in_heap", 0)
        self.board, self.cart, self.broker = board, cart, broker
        self.role = self.definition["role"]
        self.fs = Path(fs)
        self.mpy = mpy
        self.cell = LoadCellModel(seed) if self.role == "scale" else None
        self._config = config
        self.restarts = 0
        self.wdt_resets = 0
        self.proc: subprocess.Popen | None = None
        self._want_on = False
        self._lock = threading.RLock()
        self._frames: list[bytes] = []
        self._still: bytes | None = None
        self._conn: socket.socket | None = None
        self._wdt_ms = 0
        self._last_feed = 0.0
        self._reset_cause = "power_on"
        self._requested_cause = None  # what the firmware said before resetting
        self._stop = threading.Event()

        self._sockdir = tempfile.mkdtemp(prefix="cart-hw-")  # short path: sun_path is 108 bytes
        self.hw_path = os.path.join(self._sockdir, "hw.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.hw_path)
        self._server.listen(1)
        self._server.settimeout(0.2)

        self._pty_master, self._pty_slave = os.openpty()
        tty.setraw(self._pty_slave)
        os.set_blocking(self._pty_master, False)
        self.console_path = os.ttyname(self._pty_slave)
        self.console_log = self.fs.parent / f"{self.fs.name}.console.log"

        for target in (self._accept_loop, self._sample_loop, self._supervise_loop):
            threading.Thread(target=target, daemon=True, name=f"vb-{cart}-{target.__name__}").start()

    # ------------------------------------------------------------ flash
    def default_config(self) -> dict:
        cfg = config_template(self.board)
        cfg["cart"] = self.cart
        cfg["broker"] = {**cfg.get("broker", {}), "host": self.broker[0], "port": self.broker[1], "tls": False}
        if self.cell is not None:
            # The calibration a bench would find for this load cell.
            cfg["calibration"] = {"offset": self.cell.offset, "scale": self.cell.counts_per_g}
        return cfg

    def flash(self, config: dict | None = None) -> None:
        cfg = config or self._config or self.default_config()
        build_fs(self.board, self.fs, cfg, mpy=self.mpy)

    # ------------------------------------------------------------ power
    def power_on(self) -> None:
        with self._lock:
            if not (self.fs / "main.py").exists():
                self.flash()
            self._want_on = True
            self._boot()

    def _boot(self) -> None:
        env = dict(os.environ)
        env.update(MICROPYPATH="lib:.frozen", CART_SIM_HW=self.hw_path,
                   CART_SIM_RESET_CAUSE=self._reset_cause)
        self._wdt_ms = 0
        with open(self.console_log, "ab") as log:
            log.write(f"--- boot ({self._reset_cause})\n".encode())
        self.proc = subprocess.Popen(
            [micropython_bin(), "-X", f"heapsize={self.heap}", "main.py"],
            cwd=self.fs, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        threading.Thread(target=self._relay_console, args=(self.proc,), daemon=True).start()

    def power_off(self) -> None:
        with self._lock:
            self._want_on = False
            self._kill()
            self._reset_cause = "power_on"

    def power_cycle(self, off_s: float = 0.2) -> None:
        self.power_off()
        time.sleep(off_s)
        self.power_on()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._drop_link()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.power_off()
        self._stop.set()
        self._server.close()
        for fd in (self._pty_master, self._pty_slave):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.unlink(self.hw_path)
            os.rmdir(self._sockdir)
        except OSError:
            pass

    # ------------------------------------------------------------ sensors
    def push_frame(self, jpeg: bytes) -> None:
        with self._lock:
            self._frames.append(bytes(jpeg))
            del self._frames[:-3]  # the camera keeps only the latest frames

    def push_still(self, jpeg: bytes) -> None:
        """The scene at still resolution (§7.1): what the sensor would give
        after switching to SXGA/UXGA; the board keeps only the latest."""
        with self._lock:
            self._still = bytes(jpeg)

    # ------------------------------------------------------------ threads
    def _drop_link(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def _send(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.sendall(data)
        except OSError:
            if conn is self._conn:
                self._drop_link()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(None)
            self._drop_link()
            self._conn = conn
            threading.Thread(target=self._read_link, args=(conn,), daemon=True).start()

    def _read_link(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._on_board_line(line.decode(errors="replace").split())
            buf = buf[-256:]  # a line longer than that is garbage

    def _on_board_line(self, words: list[str]) -> None:
        if not words:
            return
        if words[0] == "feed":
            self._last_feed = time.monotonic()
        elif words[0] == "wdt" and len(words) == 2 and words[1].isdigit():
            self._wdt_ms = int(words[1])
            self._last_feed = time.monotonic()
        elif words[0] == "reset" and len(words) >= 2:
            self._requested_cause = words[1]

    def _sample_loop(self) -> None:
        # One HX711 conversion every 12.5 ms of wall time, as the chip does.
        period = self.cell.period_ms / 1000 if self.cell else 0.05
        next_t = time.monotonic()
        while not self._stop.is_set():
            next_t += period
            if self._conn is not None:
                out = b""
                if self.cell is not None:
                    with self._lock:
                        raw = self.cell.next_raw()
                    if raw is not None:
                        out += b"s %d\n" % raw
                with self._lock:
                    frames, self._frames = self._frames, []
                    still, self._still = self._still, None
                for f in frames:
                    out += b"f %d\n" % len(f) + f
                if still is not None:
                    out += b"S %d\n" % len(still) + still
                if out:
                    self._send(out)
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()  # fell behind: do not burst

    def _supervise_loop(self) -> None:
        while not self._stop.is_set():
            time.sleep(0.05)
            with self._lock:
                if not self._want_on or self.proc is None:
                    continue
                code = self.proc.poll()
                if code is None:
                    if self._wdt_ms and time.monotonic() - self._last_feed > self._wdt_ms / 1000:
                        self.wdt_resets += 1
                        self._kill()
                        self._reset_cause = "wdt"
                        self.restarts += 1
                        self._boot()
                    continue
                # The process ended by itself: a reset request or a crash.
                self._drop_link()
                if code == RESET_EXIT:
                    self._reset_cause = self._requested_cause or "soft"
                else:
                    self._reset_cause = "panic"
                self._requested_cause = None
                self.restarts += 1
                time.sleep(0.1)
                self._boot()

    def _relay_console(self, proc: subprocess.Popen) -> None:
        with open(self.console_log, "ab", buffering=0) as log:
            for chunk in iter(lambda: proc.stdout.read1(4096), b""):
                log.write(chunk)
                try:
                    os.write(self._pty_master, chunk.replace(b"\n", b"\r\n"))
                except OSError:
                    pass  # nobody reading the port: a UART drops bytes too

    def console_text(self) -> str:
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

    def wait_console(self, needle: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.console_text():
                return True
            time.sleep(0.05)
        return False


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--broker {text!r}: expected HOST:PORT")
    return host, int(port)


def main_board(args: argparse.Namespace) -> int:
    """`cart-sim board`: one virtual board in the foreground until Ctrl-C."""
    fs = Path(args.fs)
    if not args.reflash and (fs / "main.py").exists():
        try:
            note = use_broker(fs, args.cart, args.broker)
        except ValueError as e:
            print(f"cart-sim: {e}", file=sys.stderr)
            return 2
        if note:
            print(note, flush=True)
    vb = VirtualBoard(args.board, args.cart, args.broker, fs, seed=args.seed)
    if args.reflash or not (fs / "main.py").exists():
        vb.flash()
    vb.power_on()
    print(f"virtual board {args.board} cart {args.cart}: flash {args.fs}, console {vb.console_path}, "
          f"hardware link {vb.hw_path}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with open(vb.console_log, "rb") as log:
            log.seek(0, 2)
            while not stop.is_set():
                chunk = log.read()
                if chunk:
                    os.write(1, chunk)
                stop.wait(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        vb.close()
    return 0


def use_broker(fs: Path, cart: str, broker: tuple[str, int]) -> str | None:
    """An existing flash keeps its code and journal; --broker is applied to its
    config.json (what the board connects to is what the command line says).
    Returns what changed, or None."""
    path = fs / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the board's config ({e}); give --reflash to rebuild it") from None
    if cfg.get("cart") != cart:
        raise ValueError(f"{fs} is the flash of cart {cfg.get('cart')!r}, not {cart!r}: give that --cart, "
                         f"another --fs, or --reflash to make it {cart}'s")
    b = cfg.setdefault("broker", {})
    old = (b.get("host"), b.get("port"))
    if old == tuple(broker):
        return None
    b["host"], b["port"] = broker
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cfg, indent=1))
    tmp.replace(path)
    return f"{fs}: broker {old[0]}:{old[1]} -> {broker[0]}:{broker[1]} in config.json (code and journal kept)"


def add_board_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True, help="board definition in boards/, e.g. sim-scale")
    p.add_argument("--cart", required=True, help="cart id, e.g. c001")
    p.add_argument("--broker", required=True, type=parse_broker, help="HOST:PORT of the MQTT broker")
    p.add_argument("--fs", required=True, help="directory that is the board's flash")
    p.add_argument("--seed", type=int, default=0, help="seed of the load cell's noise")
    p.add_argument("--reflash", action="store_true", help="rebuild the flash image even if present")
