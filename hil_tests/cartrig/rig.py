"""A live rig built from a RigSpec: the broker, the monitor, and a Board per
rig-file entry with its drivers. A virtual rig builds VirtualBoards whose
consoles are ptys: the tests read them through the same pyserial driver as a
/dev/ttyUSB0."""
from __future__ import annotations

from pathlib import Path

from cart_flash.boardconfig import load_credentials, make_config
from cart_flash.fsimage import load_board
from cartrig.drivers.broker import CommandBrokerDriver, LocalBrokerDriver, ManualBrokerDriver
from cartrig.drivers.console import SerialConsoleDriver
from cartrig.drivers.flash import CartFlashDriver, VirtualFlashDriver
from cartrig.drivers.load import OperatorLoadDriver, VirtualLoadDriver
from cartrig.drivers.power import (ManualPowerDriver, RelayPowerDriver, UhubctlPowerDriver,
                                   VirtualPowerDriver)
from cartrig.monitor import Monitor
from cartrig.resources import ManualPower, RelayPort, RigSpec, UhubctlPort
from cartrig.strategy import BoardStrategy
from cartrig.target import Board

# Settings every rig board runs with: fast reconnects (a 30 s outage must not
# end in a 60 s backoff step), test hooks for the watchdog test, a short
# stable period so the boot-loop counter clears between tests, and telemetry
# every 10 s for the soak's heap figures.
RIG_SETTINGS = {"backoff_max_s": 4, "test_hooks": True, "stable_s": 5, "tele_s": 10, "wdt_ms": 3000}


class Rig:
    def __init__(self, spec: RigSpec, workdir: Path, prompt=input):
        self.spec = spec
        self.workdir = workdir
        self.prompt = prompt
        self.broker = None
        self.boards: dict[str, Board] = {}
        self.strategies: dict[str, BoardStrategy] = {}
        self._closers = []

    def start(self) -> "Rig":
        s = self.spec
        host, port = s.broker.host, s.broker.port
        user, password = s.broker.user, s.broker.password
        self.credentials = None  # a provisioned private broker's users, for the virtual boards
        if s.broker.control == "local" and port == 0:
            from cart_testing.broker import Broker, SecureBroker
            # persistence on, as on the gateway Pi: the monitor's session (and
            # queued QoS 1 messages) survive the outage test's restart
            if s.broker.provisioned:
                carts = sorted({b.cart for b in s.boards})
                self.broker = SecureBroker(self.workdir, carts=carts, gateway="gw1", bench=["rig"],
                                           persistence=True).start()
                self.credentials = self.broker.users
                user, password = "bench-rig", self.broker.users["bench-rig"]
            else:
                self.broker = Broker(self.workdir, persistence=True).start()
            port = self.broker.port
            self._closers.append(self.broker.stop)
            self.broker_control = LocalBrokerDriver(self.broker)
        elif s.broker.control == "command":
            self.broker_control = CommandBrokerDriver(s.broker.stop_cmd, s.broker.start_cmd)
        else:
            self.broker_control = ManualBrokerDriver(self.prompt)
        self.broker_addr = (host, port)
        self.monitor = Monitor(host, port, user, password, s.broker.ca_file)
        self._closers.append(self.monitor.close)
        for seed, spec in enumerate(s.boards, start=1):
            board = self._virtual(spec, seed) if spec.port is None else self._real(spec)
            self.boards[board.name] = board
            self.strategies[board.name] = BoardStrategy(board, s.limits)
        return self

    def _config(self, spec, board: Board, calibration=None) -> dict:
        creds = load_credentials(Path(spec.credentials)) if spec.credentials else self.credentials
        cfg = make_config(spec.board, spec.cart, broker=self.broker_addr, wifi=spec.wifi,
                          credentials=creds, calibration=calibration, tls=spec.tls)
        cfg.update(RIG_SETTINGS)
        return cfg

    def _virtual(self, spec, seed: int) -> Board:
        from cart_sim.virtual_board import VirtualBoard
        vb = VirtualBoard(spec.board, spec.cart, self.broker_addr, self.workdir / f"{spec.cart}-{spec.name}",
                          seed=seed)
        self._closers.append(vb.close)
        console = SerialConsoleDriver(vb.console_path, name=f"{spec.cart}/{spec.name}")
        self._closers.insert(0, console.close)
        drivers = [console, VirtualPowerDriver(vb), VirtualFlashDriver(vb)]
        if vb.cell is not None:
            drivers.append(VirtualLoadDriver(vb.cell))
        board = Board(spec, vb.definition, self.monitor, drivers, vb=vb)
        cal = (vb.cell.offset, vb.cell.counts_per_g) if vb.cell is not None else None
        board.base_config = self._config(spec, board, cal)
        return board

    def _real(self, spec) -> Board:
        definition = load_board(spec.board)
        console = SerialConsoleDriver(spec.port.url, spec.port.baud, name=f"{spec.cart}/{spec.name}")
        self._closers.insert(0, console.close)
        name = f"{spec.cart}/{spec.name}"
        if isinstance(spec.power, UhubctlPort):
            power = UhubctlPowerDriver(spec.power)
        elif isinstance(spec.power, RelayPort):
            power = RelayPowerDriver(spec.power)
        elif isinstance(spec.power, ManualPower):
            power = ManualPowerDriver(spec.power, self.prompt, name)
        else:
            raise ValueError(f"{name}: power {spec.power!r} is not for a real board")
        drivers = [console, power, CartFlashDriver(spec.board, spec.cart, spec.port.url, console, spec.ca_pem)]
        if definition["role"] == "scale":
            drivers.append(OperatorLoadDriver(name, self.prompt))
        board = Board(spec, definition, self.monitor, drivers)
        board.base_config = self._config(spec, board, spec.calibration)
        return board

    def scale_boards(self) -> list[Board]:
        return [b for b in self.boards.values() if b.role == "scale"]

    def close(self) -> None:
        for fn in self._closers:
            try:
                fn()
            except Exception:
                pass
