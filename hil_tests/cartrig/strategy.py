"""Get a board into a known state (labgrid's strategy): "off", "flashed",
"online". Reflashing and rebooting cost seconds, so the strategy does only
what the wanted state needs: a board already online with the same config is
left alone."""
from __future__ import annotations


class BoardStrategy:
    def __init__(self, board, limits):
        self.board = board
        self.limits = limits
        self.state = "unknown"

    def transition(self, state: str, config: dict | None = None) -> dict | None:
        b = self.board
        cfg = config or b.base_config
        if state == "off":
            b.power.off()
            self.state = "off"
            return None
        if b.flashed_config != cfg:
            b.power.off()
            b.flash(cfg)
            self.state = "flashed"
        if state == "flashed":
            return None
        if state != "online":
            raise ValueError(f"unknown state {state!r}")
        if self.state == "online" and b.online:
            return None
        since = b.monitor.mark()
        b.console.clear()
        if self.state in ("off", "flashed", "unknown"):
            b.power.cycle()
        else:
            b.reset()
        st = b.wait_online(since, self.limits.online_timeout_s)
        self.state = "online"
        return st

    def dirty(self) -> None:
        """A test changed the board's running state: reboot before the next test."""
        self.state = "dirty"
        self.board.online = False
