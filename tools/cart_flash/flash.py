"""Flash one board: the plan (a list of steps, printable for --dry-run) and
its execution. Targets: a serial port (pyserial URL) for a real board, or
`dir:PATH` for a virtual board's flash directory."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cartfw
from cart_flash import device, repl
from cart_flash.errors import FlashError
from cart_flash.fsimage import build_fs, load_board
from cart_flash.online import StatusWatch

FW_VERSION = cartfw.VERSION
STAGED = ["lib", "main.py", "boot.py", "config.json"]


@dataclass
class Job:
    board: str
    cart: str
    target: str            # "/dev/ttyUSB0", "rfc2217://host:port", "socket://…", or "dir:PATH"
    config: dict
    image: str | None = None   # MicroPython base image to write first (esptool)
    boot: bool = False         # dir: targets: start a virtual board and verify it online
    verify: bool = True        # real boards: wait for the birth on the broker
    timeout: float = 60.0      # for the REPL and for coming online
    broker_user: str | None = None   # how *we* log in to verify (not the board's login)
    broker_password: str | None = None
    broker_ca: str | None = None
    ca_pem: str | None = None  # local CA file copied to the board as broker.ca_file


@dataclass
class Step:
    title: str
    run: Callable[[], object]
    commands: list[list[str]] = field(default_factory=list)

    def describe(self) -> str:
        lines = [self.title]
        lines += ["    $ " + " ".join(c) for c in self.commands]
        return "\n".join(lines)


def _run_cmd(cmd: list[str], cwd: Path | None = None, what: str = "") -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        out = (r.stderr or r.stdout).strip().splitlines()[-5:]
        raise FlashError(f"{what or cmd[2]} failed (exit {r.returncode}): " + " | ".join(out))


class Flasher:
    def __init__(self, job: Job, log: Callable[[str], None] = print):
        self.job = job
        self.log = log
        self.definition = load_board(job.board)
        self.result: dict = {}
        self.staged = list(STAGED)
        self._staging_dir: Path | None = None
        b = job.config["broker"]
        if b.get("tls") and b.get("ca_file"):
            self.staged.append(b["ca_file"])

    @property
    def is_dir(self) -> bool:
        return self.job.target.startswith("dir:")

    def plan(self) -> list[Step]:
        return self._dir_plan() if self.is_dir else self._serial_plan()

    def run(self) -> dict:
        self.check()
        try:
            for i, step in enumerate(self.plan(), 1):
                self.log(f"[{i}] {step.title}")
                step.run()
        finally:
            if self._staging_dir is not None:
                shutil.rmtree(self._staging_dir, ignore_errors=True)
                self._staging_dir = None
        return self.result

    # ------------------------------------------------------------ checks before any step
    def problems(self) -> list[str]:
        """What would make this plan fail before it touched anything: missing tools,
        a TLS config without the CA file to copy. --dry-run lists them; run() refuses."""
        j, out = self.job, []
        b = j.config["broker"]
        if b.get("tls") and b.get("ca_file"):
            if not j.ca_pem:
                out.append(f"the {j.board} config has tls: true (broker {b['host']}:{b['port']}): give --ca-pem "
                           f"with the store CA (ca.pem from `cart-flash tls`), copied to the board as "
                           f"{b['ca_file']}; or --no-tls for a plain-MQTT broker")
            elif not Path(j.ca_pem).is_file():
                out.append(f"--ca-pem {j.ca_pem}: no such file")
        if not self.is_dir:
            tools = (["esptool"] if j.image else []) + ["mpremote"]
            missing = [t for t in tools if not device.tool_installed(t)]
            if missing:
                out.append(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                           f"pip install -e '.[flash]' (or pip install {' '.join(missing)})")
        return out

    def check(self) -> None:
        found = self.problems()
        if found:
            raise FlashError("cannot flash " + f"{self.job.cart}/{self.job.board}: " + "; ".join(found))

    # ------------------------------------------------------------ dir:
    def _dir_plan(self) -> list[Step]:
        j = self.job
        fs = Path(j.target[4:])
        if not j.target[4:]:
            raise FlashError("--target dir: needs a path, e.g. dir:c001-scale")
        steps = [Step(f"build the {j.board} filesystem image ({self._image_what()}) into {fs}",
                      lambda: (build_fs(j.board, fs, j.config, mpy=True), self._copy_ca(fs)))]
        if j.boot:
            steps.append(Step(f"boot a virtual board on {fs} and wait up to {j.timeout:.0f} s for "
                              f"carts/{j.cart}/{self.definition['role']}/status online, fw {FW_VERSION}",
                              lambda: self._boot_virtual(fs)))
        return steps

    def _image_what(self) -> str:
        d = self.definition
        return (f".mpy files by mpy-cross -march={d['mpy_march']}, config.json for cart {self.job.cart}"
                + (f", {self.job.config['broker']['ca_file']}" if len(self.staged) > len(STAGED) else ""))

    def _boot_virtual(self, fs: Path) -> None:
        from cart_sim.virtual_board import VirtualBoard
        b = self.job.config["broker"]
        vb = VirtualBoard(self.job.board, self.job.cart, (b["host"], b["port"]), fs, config=self.job.config)
        try:
            self._watch_and(lambda: vb.power_on())
        finally:
            vb.close()

    # ------------------------------------------------------------ serial
    def _serial_plan(self) -> list[Step]:
        """The image is built (and checked) first: nothing touches the board
        until it exists, so a build failure never leaves an erased board."""
        j, d = self.job, self.definition
        staging = self._staging()
        steps = [Step(f"build the {j.board} filesystem image ({self._image_what()}) in a staging folder",
                      lambda: self._stage(staging))]
        if j.image:
            cmds = device.esptool_cmds(d, j.target, j.image)
            offsets = ", ".join(f"{name} at {off}" for name, off in (d["flash"].get("offsets") or {}).items())
            steps.append(Step(f"write the MicroPython base image {j.image} with esptool: "
                              f"{'erase the whole flash, then ' if len(cmds) > 1 else ''}write {offsets}",
                              lambda: self._esptool(cmds), cmds))
        steps.append(Step(f"wait for the REPL on {j.target}; check chip {device.expected_chip(d)}, "
                          f"MicroPython {d['micropython']}, .mpy version (sys.implementation._mpy)",
                          self._check_device))
        cp, reset = device.mpremote_cmds(j.target, self.staged)
        steps.append(Step(f"copy {', '.join(self.staged)} to the board with mpremote",
                          lambda: self._mpremote(cp, staging), [cp]))
        if j.verify:
            b = j.config["broker"]
            steps.append(Step(f"reset the board; wait up to {j.timeout:.0f} s for carts/{j.cart}/{d['role']}/status "
                              f"online with fw {FW_VERSION} on {b['host']}:{b['port']}",
                              lambda: self._watch_and(lambda: self._mpremote(reset, staging)), [reset]))
        else:
            steps.append(Step("reset the board", lambda: self._mpremote(reset, staging), [reset]))
        return steps

    def _staging(self) -> Path:
        # named now (for the plan), made by the build step, removed by run()
        if self._staging_dir is None:
            self._staging_dir = Path(tempfile.gettempdir()) / f"cart-flash-{self.job.cart}-{self.job.board}-{os.getpid()}"
        return self._staging_dir

    def _stage(self, fs: Path) -> None:
        build_fs(self.job.board, fs, self.job.config, mpy=True)
        self._copy_ca(fs)

    def _copy_ca(self, fs: Path) -> None:
        # The board verifies the broker against this file (config broker.ca_file).
        b = self.job.config["broker"]
        if b.get("tls") and b.get("ca_file"):
            if not self.job.ca_pem:
                raise FlashError(f"config broker.ca_file is {b['ca_file']!r}: give --ca-pem with the store CA to copy")
            shutil.copy(self.job.ca_pem, fs / b["ca_file"])

    def _esptool(self, cmds: list[list[str]]) -> None:
        for c in cmds:
            _run_cmd(c, what=f"esptool {c[-1] if c[-1] == 'erase_flash' else 'write_flash'}")

    def _mpremote(self, cmd: list[str], cwd: Path) -> None:
        _run_cmd(cmd, cwd=cwd, what="mpremote " + cmd[5])

    def _check_device(self) -> None:
        d = self.definition
        deadline = time.monotonic() + self.job.timeout
        while True:  # right after esptool the board is still booting
            try:
                info = repl.query_device(self.job.target, timeout=min(5.0, self.job.timeout))
                break
            except repl.NoPort:
                raise
            except FlashError:
                if time.monotonic() + 1 > deadline:
                    raise
                time.sleep(1)
        device.check_chip(d, info["machine"])
        device.check_version(d, info["version"])
        info["arch"] = device.check_mpy(info["mpy"])
        self.result["device"] = info
        self.log(f"    device: MicroPython {'.'.join(map(str, info['version']))}, {info['machine']}, "
                 f".mpy v{info['mpy'] & 0xFF}, arch {info['arch']}")

    def _watch_and(self, start: Callable[[], object]) -> None:
        j = self.job
        b = j.config["broker"]
        w = StatusWatch(b["host"], b["port"], j.cart, self.definition["role"],
                        user=j.broker_user, password=j.broker_password, ca_file=j.broker_ca)
        try:
            t0 = time.monotonic()
            start()
            st = w.wait_online(FW_VERSION, j.timeout)
            self.result["status"] = st
            if st.get("mode") == "safe":
                raise FlashError(f"board came online in SAFE MODE: {st.get('reason')}")
            self.result["online_s"] = round(time.monotonic() - t0, 2)
            self.log(f"    online: fw {st['fw']}, epoch {st['epoch']}, mode {st['mode']} "
                     f"after {self.result['online_s']} s")
        finally:
            w.close()
