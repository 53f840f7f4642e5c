"""The bench harness: a private Mosquitto and a gateway subprocess in a temporary directory."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cart_gateway
import paho.mqtt.client as mqtt

MOSQUITTO = "/usr/sbin/mosquitto"
# the gateway distribution's root (gateway/ in the tree), put first on the subprocess's path
PKG_ROOT = Path(cart_gateway.__file__).resolve().parents[1]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Env:
    """A private broker and a gateway subprocess in a temporary directory."""

    def __init__(self, tmp: Path, detector: bool = False, carts=("c001", "c002"), port: int | None = None,
                 sync: str = "FULL"):
        """`port`: use that (already running) broker instead of starting one; `sync`: sqlite_synchronous."""
        self.tmp = tmp
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.broker = None
        if port is None:
            conf = tmp / "mosquitto.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                            "max_inflight_messages 0\nmax_queued_messages 1000000\nset_tcp_nodelay true\n")
            self.broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
        self._wait_port(self.port)
        self.config = tmp / "gw.toml"
        self.config.write_text("\n".join([
            'gateway_id = "gw1"', f'state_dir = "{tmp / "state"}"', f"metrics_port = {self.metrics_port}",
            'log_level = "warning"', "batch_max = 500", f'sqlite_synchronous = "{sync}"',
            "[mqtt]", f"port = {self.port}", "[carts]", f"known = {json.dumps(list(carts))}",
            "[detector]", f"enabled = {'true' if detector else 'false'}", "queue_size = 64",
            "[frames]", "max_in_progress = 64",
            # synthetic boards send a movement every 100 ms: one weight event is one movement here
            # (the engine merges settles of one action otherwise, issue 12)
            "[reconcile]", "merge_gap_ms = 0"]) + "\n")
        self.gw: subprocess.Popen | None = None

    @staticmethod
    def _wait_port(port: int, timeout: float = 10.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listening on port {port}")

    def start_gateway(self, profile: str | None = None) -> None:
        """`profile`: run it under cProfile (its core thread), the stats written to that file at a clean stop."""
        env = dict(os.environ, PYTHONPATH=str(PKG_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        prof = ["-m", "cProfile", "-o", profile] if profile else []
        self.gw = subprocess.Popen([sys.executable, *prof, "-m", "cart_gateway.cli", "run", "--config", str(self.config)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "gw.log", "ab"))

    def gateway_cpu_s(self) -> float | None:
        """CPU seconds (user + system) the gateway process has used so far: its own cost, which a
        loaded machine does not inflate as it does wall time. None where /proc is not there."""
        try:
            fields = Path(f"/proc/{self.gw.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AttributeError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime, stime

    def wait_online(self, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.metrics()
            if m.get("cart_gateway_mqtt_connected") == 1.0:
                return
            time.sleep(0.1)
        raise RuntimeError("gateway did not connect; see " + str(self.tmp / "gw.log"))

    def metrics(self) -> dict[str, float]:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = out.get(k, 0.0) + float(v)
                base = k.split("{")[0]
                if "{" in k:
                    out[base] = out.get(base, 0.0) + float(v)
        return out

    def stop_gateway(self) -> None:
        """A clean stop (SIGTERM): the broker keeps the gateway's session and queues for it."""
        if self.gw and self.gw.poll() is None:
            self.gw.terminate()
            self.gw.wait(30)

    def kill9(self) -> None:
        if self.gw and self.gw.poll() is None:
            self.gw.send_signal(signal.SIGKILL)
            self.gw.wait()

    def stop(self) -> None:
        if self.gw and self.gw.poll() is None:
            self.gw.terminate()
            try:
                self.gw.wait(10)
            except subprocess.TimeoutExpired:
                self.gw.kill()
                self.gw.wait()
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            self.broker.wait()
            self.broker = None

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.tmp / "state" / "gateway.sqlite3"))


def client(port: int, cid: str, on_message=None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    c.max_inflight_messages_set(1000)
    from cart_gateway.mqtt_client import _nodelay
    c.on_socket_open = _nodelay
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")
