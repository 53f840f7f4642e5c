"""The gateway as a real process (`python -m cart_gateway.cli run`), for
end-to-end tests, the demo and benchmarks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .procs import stop_process

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, port: int, state_dir: Path, carts=("c001", "c002", "c003"),
                 detector: bool = False, tick_ms: int = 100, username: str | None = None,
                 password: str | None = None) -> Path:
    login = [f'username = "{username}"', f'password = "{password}"'] if username else []
    path.write_text("\n".join([
        'gateway_id = "gw1"', f'state_dir = "{state_dir}"', f"tick_ms = {tick_ms}",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", *login,
        "[carts]", "known = [" + ", ".join(f'"{c}"' for c in carts) + "]",
        "[detector]", f"enabled = {str(detector).lower()}", ""]))
    return path


class GatewayProcess:
    def __init__(self, config: Path, log: Path):
        self.config, self.log = config, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "GatewayProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "gateway"), env.get("PYTHONPATH", "")])
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cart_gateway.cli", "run", "--config", str(self.config)],
                                     env=env, stdout=out, stderr=out, cwd=str(ROOT))
        return self

    def stop(self, timeout: float = 10) -> int | None:
        stop_process(self.proc, timeout)
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
