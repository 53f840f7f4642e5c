"""The interfaces tests ask for (labgrid's protocol/). A test never knows
whether a driver is a USB hub, a relay, an operator or a virtual board."""
from __future__ import annotations

import re
from typing import Protocol, runtime_checkable


@runtime_checkable
class ConsoleProtocol(Protocol):
    def expect(self, pattern: str | re.Pattern, timeout: float = 10.0) -> re.Match: ...
    def clear(self) -> None: ...
    def text(self) -> str: ...
    def release(self) -> None: ...   # let another tool (mpremote) use the port
    def reopen(self) -> None: ...


@runtime_checkable
class PowerProtocol(Protocol):
    def on(self) -> None: ...
    def off(self) -> None: ...
    def cycle(self) -> None: ...


@runtime_checkable
class ResetProtocol(Protocol):
    def reset(self) -> None: ...


@runtime_checkable
class FlashProtocol(Protocol):
    def flash(self, config: dict) -> None: ...


@runtime_checkable
class LoadProtocol(Protocol):
    """Puts a load on a scale board: a reference weight, or a virtual cell."""
    def set_load(self, grams: float, what: str = "") -> None: ...


@runtime_checkable
class BrokerControlProtocol(Protocol):
    def stop(self) -> None: ...
    def start(self) -> None: ...
