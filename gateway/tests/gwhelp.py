"""Helpers for the gateway service tests: config, a gateway process, an MQTT watcher."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def write_config(tmp: Path, port: int, **extra) -> Path:
    lines = ['gateway_id = "gw1"', f'state_dir = "{tmp / "state"}"', f'tick_ms = {extra.pop("tick_ms", 100)}']
    for k, v in extra.pop("top", {}).items():
        lines.append(f"{k} = {json.dumps(v)}")
    lines += ["[mqtt]", f"port = {port}", "[carts]", 'known = ["c001", "c002"]',
              "[detector]", f"enabled = {str(extra.pop('detector', False)).lower()}"]
    p = tmp / "gw.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def start_gateway(config: Path, env_extra: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "gateway"))
    env.update(env_extra or {})
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([PY, "-m", "cart_gateway.cli", "run", "--config", str(config)],
                            env=env, stdout=out, stderr=out, cwd=str(ROOT))


class Watcher:
    """Subscribes to everything; keeps the last payload per topic and all messages."""

    def __init__(self, port: int, topics=("#",)):
        self.last: dict[str, bytes] = {}
        self.all: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._msg
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in topics]
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _msg(self, c, u, m):
        with self.lock:
            self.last[m.topic] = m.payload
            self.all.append((m.topic, m.payload))

    def json(self, topic: str):
        with self.lock:
            p = self.last.get(topic)
        return json.loads(p) if p else None

    def wait(self, pred, timeout: float = 10.0, what: str = "condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = pred()
            if r:
                return r
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last: {sorted(self.last)}")

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def publisher(port: int, client_id: str = "test-pub") -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
