"""One board on the rig (labgrid's target): its drivers, looked up by the
protocol a test needs, and the few board-level actions tests use."""
from __future__ import annotations

from cartrig.protocols import ConsoleProtocol, FlashProtocol, LoadProtocol, PowerProtocol, ResetProtocol


class Board:
    def __init__(self, spec, definition: dict, monitor, drivers: list, vb=None):
        self.spec = spec
        self.cart = spec.cart
        self.role = definition["role"]
        self.definition = definition
        self.name = f"{spec.cart}/{spec.name}"
        self.monitor = monitor
        self.drivers = drivers
        self.vb = vb                    # the VirtualBoard, on a virtual rig only
        self.base_config: dict = {}     # what the strategy flashes by default
        self.flashed_config: dict | None = None
        self.online = False

    def get(self, protocol):
        for d in self.drivers:
            if isinstance(d, protocol):
                return d
        raise LookupError(f"board {self.name} has no driver for {protocol.__name__}")

    @property
    def console(self) -> ConsoleProtocol:
        return self.get(ConsoleProtocol)

    @property
    def power(self) -> PowerProtocol:
        return self.get(PowerProtocol)

    @property
    def load(self) -> LoadProtocol:
        return self.get(LoadProtocol)

    def flash(self, config: dict) -> None:
        self.get(FlashProtocol).flash(config)
        self.flashed_config = config
        self.online = False

    def reset(self) -> None:
        try:
            self.get(ResetProtocol).reset()
        except LookupError:
            self.power.cycle()
        self.online = False

    # ---- over the broker
    @property
    def topic(self) -> str:
        return f"carts/{self.cart}/{self.role}"

    def cmd(self, name: str, args: dict | None = None, timeout: float = 30.0) -> dict:
        return self.monitor.command(self.cart, self.role, name, args, timeout)

    def wait_online(self, since: int, timeout: float, mode: str | None = "normal") -> dict:
        """The first live birth after `since` (retained copies do not count)."""
        m = self.monitor.wait_msg(since, self.topic + "/status",
                                  lambda d: d.get("state") == "online", timeout,
                                  f"{self.name} online")
        st = m.json()
        if m.retain:
            raise AssertionError(f"{self.name}: only a retained birth seen")
        if mode and st.get("mode") != mode:
            raise AssertionError(f"{self.name} came online in mode {st.get('mode')} ({st.get('reason')}), expected {mode}")
        self.online = True
        return st

    def events(self, since: int) -> list[dict]:
        return [m.json() for m in self.monitor.since(since, self.topic + "/evt")]

    def timed_events(self, since: int) -> list[tuple[float, dict]]:
        return [(m.t, m.json()) for m in self.monitor.since(since, self.topic + "/evt")]
