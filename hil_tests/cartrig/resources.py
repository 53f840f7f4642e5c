"""What the hardware is (labgrid's resource/): plain data from the rig file."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SerialPort:
    url: str              # pyserial URL: /dev/ttyUSB0, rfc2217://host:port, socket://host:port
    baud: int = 115200


@dataclass(frozen=True)
class UhubctlPort:
    hub: str              # uhubctl -l LOCATION
    port: int             # uhubctl -p PORT
    off_s: float = 2.0


@dataclass(frozen=True)
class RelayPort:
    on_cmd: str           # shell commands, e.g. "usbrelay R1_1=1"
    off_cmd: str
    off_s: float = 2.0


@dataclass(frozen=True)
class ManualPower:
    """An operator pulls and replugs the cable when asked."""


@dataclass(frozen=True)
class VirtualPower:
    """Power of a virtual board (SIGKILL / start)."""


@dataclass(frozen=True)
class BoardSpec:
    cart: str
    name: str              # role on the cart: scale or cam
    board: str             # definition in boards/
    port: SerialPort | None    # None for a virtual board (its pty is made at run time)
    power: object
    load: str = "none"     # "virtual", "operator" or "none"
    wifi: tuple[str, str] | None = None
    credentials: str | None = None
    ca_pem: str | None = None
    tls: bool | None = None
    calibration: tuple[int, float] | None = None   # (offset, counts/g) from an earlier bench calibration


@dataclass(frozen=True)
class BrokerSpec:
    host: str
    port: int              # 0: a private Mosquitto on a free port (virtual rig)
    control: str = "local"     # local | command | manual
    stop_cmd: str = ""
    start_cmd: str = ""
    user: str | None = None
    password: str | None = None
    ca_file: str | None = None
    # virtual rig: the private broker closed as in a store (cart-flash provision's
    # users and ACL, client ids bound to users); the rig logs in as bench-rig
    provisioned: bool = False


@dataclass(frozen=True)
class Limits:
    online_timeout_s: float = 30.0
    event_latency_s: float = 1.5
    delta_tolerance_g: float = 3.0
    delta_tolerance_pct: float = 1.0
    outage_s: float = 30.0
    soak_s: float = 600.0


@dataclass
class RigSpec:
    name: str
    kind: str                  # "virtual" or "bench"
    broker: BrokerSpec
    boards: list[BoardSpec]
    weights: dict[str, float] = field(default_factory=dict)   # name -> grams, on hand
    limits: Limits = field(default_factory=Limits)
    calibration_weight: str | None = None
