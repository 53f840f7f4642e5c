"""Helpers for the gateway service tests: config, a gateway process, a publisher (and the shared Watcher)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from cart_testing.watch import Watcher  # noqa: F401  (the shared MQTT watcher; the service tests import it from here)

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
