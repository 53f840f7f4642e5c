"""config.json for one board: the board's template plus the cart's identity,
Wi-Fi, broker, credentials and calibration, validated by the firmware's own
validator (cartfw.config runs under CPython too), so a bad config is refused
here rather than sending the board to safe mode."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from cart_flash.errors import FlashError
from cart_flash.fsimage import config_template, load_board
from cartfw import config as fwconfig
from cartfw import proto as fwproto


def parse_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise FlashError(f"--broker {text!r}: expected HOST:PORT")
    return host, int(port)


def username(cart: str, role: str) -> str:
    # The MQTT user of a board is its client id (protocol §1): cart-<cart>-<board>.
    return f"cart-{cart}-{role}"


def load_credentials(path: Path) -> dict[str, str]:
    """The JSON written by `cart-flash provision`: {"users": {name: password}}."""
    try:
        return json.loads(Path(path).read_text())["users"]
    except (OSError, ValueError, KeyError) as e:
        raise FlashError(f"--credentials {path}: cannot read users from it ({e})") from None


def make_config(board_name: str, cart: str, *, broker: tuple[str, int] | None = None,
                wifi: tuple[str, str] | None = None, credentials: dict[str, str] | None = None,
                calibration: tuple[int, float] | None = None, tls: bool | None = None,
                ca_file: str | None = None, overrides: dict | None = None) -> dict:
    if not fwproto.valid_id(cart):
        raise FlashError(f"--cart {cart!r} is not a valid cart id: 1-32 lower-case letters, digits and '-', "
                         f"starting with a letter or digit (e.g. c001)")
    board = load_board(board_name)
    cfg = copy.deepcopy(config_template(board_name))
    cfg["cart"] = cart
    cfg["board"] = board["role"]
    b = cfg.setdefault("broker", {})
    if broker:
        b["host"], b["port"] = broker
    if tls is not None:
        b["tls"] = tls
        if not tls:
            b.pop("ca_file", None)
    if ca_file:
        b["ca_file"] = ca_file
    user = username(cart, board["role"])
    if credentials is not None:
        if user not in credentials:
            raise FlashError(f"no credentials for MQTT user {user} in the credentials file; "
                             f"run cart-flash provision with this cart")
        b["user"], b["password"] = user, credentials[user]
    elif b.get("user"):
        b["user"] = user
    if wifi:
        cfg["wifi"] = {"ssid": wifi[0], "password": wifi[1]}
    if calibration:
        cfg["calibration"] = {"offset": int(calibration[0]), "scale": float(calibration[1])}
    for key, value in (overrides or {}).items():
        cfg[key] = value
    for where in ("wifi.password", "broker.password"):
        sect, field = where.split(".")
        if (cfg.get(sect) or {}).get(field) == "CHANGE-ME":
            raise FlashError(f"config {where} is still the template's CHANGE-ME; "
                             f"give --wifi / --credentials")
    try:
        fwconfig.validate(cfg, need_wifi=board["family"] != "sim")
    except fwconfig.ConfigError as e:
        raise FlashError(f"refusing to flash an invalid config: {e}") from None
    return cfg
