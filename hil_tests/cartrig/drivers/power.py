"""Power control: a USB hub port (uhubctl), a relay (any on/off command),
an operator, or a virtual board's supply."""
from __future__ import annotations

import subprocess
import time

from cartrig.resources import ManualPower, RelayPort, UhubctlPort


def _sh(cmd: list[str] | str, what: str) -> None:
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{what} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()}")


class UhubctlPowerDriver:
    """USB port power switching on hubs that support it (uhubctl's list)."""

    def __init__(self, res: UhubctlPort):
        self.res = res

    def _set(self, action: str) -> None:
        _sh(["uhubctl", "-l", self.res.hub, "-p", str(self.res.port), "-a", action, "-r", "10"],
            f"uhubctl {action} {self.res.hub}.{self.res.port}")

    def on(self) -> None:
        self._set("on")

    def off(self) -> None:
        self._set("off")

    def cycle(self) -> None:
        self.off()
        time.sleep(self.res.off_s)
        self.on()


class RelayPowerDriver:
    def __init__(self, res: RelayPort):
        self.res = res

    def on(self) -> None:
        _sh(self.res.on_cmd, "relay on")

    def off(self) -> None:
        _sh(self.res.off_cmd, "relay off")

    def cycle(self) -> None:
        self.off()
        time.sleep(self.res.off_s)
        self.on()


class ManualPowerDriver:
    """Asks the operator (needs `pytest -s` so the prompt reaches the terminal)."""

    def __init__(self, res: ManualPower, prompt=input, board: str = ""):
        self.prompt, self.board = prompt, board

    def on(self) -> None:
        self.prompt(f"[rig] plug in the power of {self.board}, then press Enter ")

    def off(self) -> None:
        self.prompt(f"[rig] unplug the power of {self.board}, then press Enter ")

    def cycle(self) -> None:
        self.off()
        self.on()


class VirtualPowerDriver:
    def __init__(self, vb):
        self.vb = vb

    def on(self) -> None:
        self.vb.power_on()

    def off(self) -> None:
        self.vb.power_off()

    def cycle(self) -> None:
        self.vb.power_cycle()
