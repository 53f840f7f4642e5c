"""Broker outages: stop and start the private Mosquitto (virtual rig), run
commands (a bench with the gateway's Mosquitto), or ask the operator."""
from __future__ import annotations

import subprocess


class LocalBrokerDriver:
    def __init__(self, broker):
        self.broker = broker   # cart_testing.broker.Broker

    def stop(self) -> None:
        self.broker.stop()

    def start(self) -> None:
        self.broker.start()


class CommandBrokerDriver:
    def __init__(self, stop_cmd: str, start_cmd: str):
        self.stop_cmd, self.start_cmd = stop_cmd, start_cmd

    def _run(self, cmd: str) -> None:
        subprocess.run(cmd, shell=True, check=True, capture_output=True)

    def stop(self) -> None:
        self._run(self.stop_cmd)

    def start(self) -> None:
        self._run(self.start_cmd)


class ManualBrokerDriver:
    def __init__(self, prompt=input):
        self.prompt = prompt

    def stop(self) -> None:
        self.prompt("[rig] stop the broker (or unplug the gateway's network), then press Enter ")

    def start(self) -> None:
        self.prompt("[rig] start the broker again, then press Enter ")
