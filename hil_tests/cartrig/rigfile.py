"""Read a rig file (TOML, see hil_tests/rigs/) into a RigSpec. Every error
names the file and the key."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from cartrig.resources import (BoardSpec, BrokerSpec, Limits, ManualPower, RelayPort, RigSpec,
                               SerialPort, UhubctlPort, VirtualPower)

RIGS = Path(__file__).resolve().parents[1] / "rigs"


class RigFileError(ValueError):
    pass


def resolve(name_or_path: str) -> Path:
    """`virtual` -> hil_tests/rigs/virtual.toml; anything else is a path."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = RIGS / f"{name_or_path}.toml"
    if not p.exists():
        known = ", ".join(sorted(x.stem for x in RIGS.glob("*.toml")))
        raise RigFileError(f"--rig {name_or_path}: no rig file {p} (rigs in {RIGS}: {known})")
    return p


def _req(d: dict, key: str, where: str, typ=str):
    if key not in d:
        raise RigFileError(f"{where}: missing key {key!r}")
    v = d[key]
    if typ is float and isinstance(v, int):
        v = float(v)
    if not isinstance(v, typ):
        raise RigFileError(f"{where}.{key}: expected {typ.__name__}, got {v!r}")
    return v


def _power(d: dict, where: str, virtual: bool):
    kind = d.get("kind", "virtual" if virtual else "manual")
    if kind == "virtual":
        if not virtual:
            raise RigFileError(f"{where}.power: kind 'virtual' on a board with a serial port")
        return VirtualPower()
    if kind == "uhubctl":
        return UhubctlPort(_req(d, "hub", f"{where}.power"), _req(d, "port", f"{where}.power", int),
                           float(d.get("off_s", 2.0)))
    if kind == "relay":
        return RelayPort(_req(d, "on", f"{where}.power"), _req(d, "off", f"{where}.power"),
                         float(d.get("off_s", 2.0)))
    if kind == "manual":
        return ManualPower()
    raise RigFileError(f"{where}.power.kind: {kind!r} is not one of virtual, uhubctl, relay, manual")


def _secret(d: dict, key: str) -> str | None:
    # Passwords stay out of rig files: name an environment variable instead.
    env = d.get(key + "_env")
    if env:
        if env not in os.environ:
            raise RigFileError(f"environment variable {env} (from {key}_env) is not set")
        return os.environ[env]
    return d.get(key)


def _calibration(bd: dict, where: str):
    cal = bd.get("calibration")
    if cal is None:
        return None
    if not (isinstance(cal, list) and len(cal) == 2 and isinstance(cal[0], int)
            and isinstance(cal[1], (int, float)) and cal[1] != 0):
        raise RigFileError(f"{where}.calibration: expected [offset, counts_per_g], got {cal!r}")
    return int(cal[0]), float(cal[1])


def load(path: Path) -> RigSpec:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RigFileError(f"{path}: {e}") from None
    rig = data.get("rig", {})
    kind = rig.get("kind", "bench")
    if kind not in ("virtual", "bench"):
        raise RigFileError(f"{path}: rig.kind {kind!r} is not virtual or bench")
    b = data.get("broker", {})
    broker = BrokerSpec(host=b.get("host", "127.0.0.1"), port=int(b.get("port", 0)),
                        control=b.get("control", "local" if kind == "virtual" else "manual"),
                        stop_cmd=b.get("stop_cmd", ""), start_cmd=b.get("start_cmd", ""),
                        user=b.get("user"), password=_secret(b, "password"), ca_file=b.get("ca_file"),
                        provisioned=bool(b.get("provisioned", False)))
    if broker.control not in ("local", "command", "manual"):
        raise RigFileError(f"{path}: broker.control {broker.control!r} is not local, command or manual")
    if broker.control == "command" and not (broker.stop_cmd and broker.start_cmd):
        raise RigFileError(f"{path}: broker.control 'command' needs stop_cmd and start_cmd")
    boards = []
    for i, cart in enumerate(data.get("carts", [])):
        cw = f"{path.name}: carts[{i}]"
        cid = _req(cart, "id", cw)
        for j, bd in enumerate(cart.get("boards", [])):
            w = f"{cw}.boards[{j}]"
            port = bd.get("port", "virtual")
            virtual = port == "virtual"
            if virtual and kind != "virtual":
                raise RigFileError(f"{w}.port: 'virtual' in a bench rig; give a pyserial URL")
            wifi = None
            if "wifi_ssid" in bd:
                wifi = (bd["wifi_ssid"], _secret(bd, "wifi_password") or "")
            boards.append(BoardSpec(
                cart=cid, name=_req(bd, "name", w), board=_req(bd, "board", w),
                port=None if virtual else SerialPort(port, int(bd.get("baud", 115200))),
                power=_power(bd.get("power", {}), w, virtual),
                load=bd.get("load", "virtual" if virtual else "operator"),
                wifi=wifi, credentials=bd.get("credentials"), ca_pem=bd.get("ca_pem"), tls=bd.get("tls"),
                calibration=_calibration(bd, w)))
    if not boards:
        raise RigFileError(f"{path}: no [[carts]] with [[carts.boards]]")
    weights = {w["name"]: float(_req(w, "grams", f"{path.name}: weights", float)) for w in data.get("weights", [])}
    lim = data.get("limits", {})
    try:
        limits = Limits(**{k: float(v) for k, v in lim.items()})
    except TypeError as e:
        raise RigFileError(f"{path}: [limits]: {e}") from None
    cal = rig.get("calibration_weight")
    if cal is not None and cal not in weights:
        raise RigFileError(f"{path}: rig.calibration_weight {cal!r} is not one of the [[weights]]")
    return RigSpec(name=rig.get("name", path.stem), kind=kind, broker=broker, boards=boards,
                   weights=weights, limits=limits, calibration_weight=cal)
