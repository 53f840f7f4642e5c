"""Gateway configuration (TOML), validated with pydantic; unknown keys are rejected.

`load_config(path)` raises ConfigError whose text names the file, the key
path and what was wrong (see gateway/systemd/gateway.toml for an example).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator,
                      model_validator)

from .protocol import ID_RE
from .reconcile import ReconcileConfig


class ConfigError(ValueError):
    """The gateway config file is missing, not TOML, or has a bad key."""


class _Strict(BaseModel):
    # strict: `batch_max = "64"` is refused, not read as 64 (an int is still a valid float)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# TOML has no path type: a path is a string
PathStr = Annotated[Path, Strict(False)]


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(None, description="default gateway-<id> (protocol §1)")
    keepalive_s: int = Field(30, ge=5, le=600)
    session_expiry_s: int = Field(3600, ge=60, description="broker keeps our QoS 1 queue this long while we are away")
    username: str | None = None
    password: str | None = None
    reconnect_max_s: int = Field(10, ge=1, le=300)


class CartsConfig(_Strict):
    known: list[str] = Field(default_factory=list, description="cart ids accepted; empty = use pattern only")
    pattern: str | None = Field(None, description="regex a cart id must fully match (in addition to `known`)")

    @field_validator("known")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for c in v:
            if not ID_RE.match(c):
                raise ValueError(f"cart id {c!r} is not [a-z0-9][a-z0-9-]{{0,31}}")
        return v

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _some(self):
        if not self.known and self.pattern is None:
            raise ValueError("give `known` cart ids or a `pattern` (an empty list would accept no cart)")
        return self

    def accepts(self, cart: str) -> bool:
        if cart in self.known:
            return True
        return self.pattern is not None and re.fullmatch(self.pattern, cart) is not None


class FramesConfig(_Strict):
    max_in_progress: int = Field(16, ge=1, le=1024, description="frames being reassembled at once (all carts)")
    max_per_cart: int = Field(4, ge=1, le=64, description="frames being reassembled at once per cart (its cam board)")
    assembly_timeout_s: float = Field(5.0, gt=0, description="§7: drop a frame incomplete this long after its first chunk")
    burst_timeout_s: float = Field(5.0, gt=0, description="run detection with what arrived this long after the capture event")
    retention_s: float = Field(3600.0, gt=0, description="delete a frame this old unless an open review needs it")
    still_max_bytes: int = Field(393216, ge=1024, le=524288,
                                 description="§7.1: refuse (and count) a still larger than this")


class IngestConfig(_Strict):
    """The queue from the MQTT thread to the core thread (docs/gateway.md, Fair share)."""
    qos0_per_cart: int = Field(1000, ge=1, le=1_000_000, description="QoS 0 messages queued per cart; "
                               "more are dropped (counted): one cart's flood must not delay the others")
    qos0_rate_per_cart: float = Field(50.0, gt=0, le=1_000_000, description="QoS 0 messages a second per cart "
                                      "(burst: qos0_per_cart); boards send only telemetry at QoS 0")


class FleetConfig(_Strict):
    """What goes to head office over the store's bridge (docs/fleet.md)."""
    timezone: str = Field("UTC", description="the store's time zone: a receipt's business day")
    figures_interval_s: float = Field(60.0, ge=0, le=86400, description="figures and health this often; 0 = off")
    resend_s: float = Field(60.0, ge=1, le=86400, description="a receipt record the ledger has not acknowledged "
                            "this long after sending, while acks arrive, is sent again")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. Europe/Berlin)") from None
        return v


class RetentionConfig(_Strict):
    """How long the event log and the decision log keep rows (docs/gateway.md, Retention).

    Only rows of closed sessions (before the cart's last receipt) are ever pruned: an open
    basket's events and decisions, and so an open review's, stay whatever their age.
    Duplicate detection does not need the pruned rows (the per-epoch high seq and open
    gaps say which identities were received)."""
    events_days: float = Field(30.0, gt=0, description="delete events of closed sessions older than this")
    decisions_days: float = Field(90.0, gt=0, description="delete decisions of closed sessions older than this")
    prune_interval_s: float = Field(3600.0, ge=1, description="look for rows to prune this often (on the timer)")
    prune_batch: int = Field(5000, ge=1, le=1_000_000, description="most rows deleted per table per run (bounds a run's time)")
    gaps_per_board: int = Field(256, ge=1, le=100_000, description="open sequence gaps kept per board; over it the oldest are merged")


class DetectorSection(_Strict):
    enabled: bool = True
    queue_size: int = Field(8, ge=1, le=256, description="capture bursts waiting for inference; a full queue drops (counted)")
    barcodes: bool = Field(True, description="read EAN-13 barcodes in frames with zxing-cpp")
    plugin: dict[str, Any] | None = Field(None, description="detector plugin config; default: the committed model on CPU")
    still_classifier: bool = Field(False, description="classify each still's item window (issue 13 part 2); "
                                   "off by default until a committed still model meets its goals "
                                   "(docs/model_card.md)")
    still_model_path: PathStr | None = Field(None, description="still.tflite (still_gallery.npz and still.calib.json "
                                          "beside it); default: the committed one under data/, if any")

    @field_validator("plugin")
    @classmethod
    def _plugin_typed(cls, v: dict | None) -> dict | None:
        """Typed by the plugin's own config class now, not at the first burst."""
        if v is not None:
            from .detectors.detector_types import config_adapter
            config_adapter.validate_python(v)   # its errors carry the key path (detector.plugin.<key>)
        return v


class RolloutConfig(_Strict):
    """Model and catalogue updates from head office (docs/fleet.md Rollout, protocol §17)."""
    public_keys: list[PathStr] = Field(default_factory=list, description="the chain's Ed25519 public keys (PEM) "
                                       "that sign updates; empty = rollout off (the gateway does not subscribe)")
    store: str | None = Field(None, description="<store> in fleet/in/<store>/rollout/...; default: gateway_id")
    holdout_dir: PathStr | None = Field(None, description="held-out scenes for the evaluation check; "
                                        "default: the packaged data/holdout")
    max_model_bytes: int = Field(8 << 20, ge=1024, description="refuse a model archive larger than this")
    max_catalogue_bytes: int = Field(64 << 20, ge=1024, description="refuse a catalogue file larger than this")
    transfer_timeout_s: float = Field(600.0, gt=0, description="an update not complete this long after its "
                                      "manifest fails (truncated)")
    eval_top1_margin: float = Field(0.05, ge=0, le=1, description="a new model may be this much worse in top-1 "
                                    "on the held-out scenes than the running one")
    eval_nll_margin: float = Field(0.15, ge=0, description="... and this much worse in mean -log p(true class)")
    max_dropped_share: float = Field(0.2, ge=0, le=1, description="refuse a catalogue that drops more than this "
                                     "share of the running SKUs")

    @field_validator("store")
    @classmethod
    def _store(cls, v: str | None) -> str | None:
        if v is not None and (not ID_RE.match(v) or v == "all"):
            raise ValueError(f"{v!r} is not [a-z0-9][a-z0-9-]{{0,31}} (and not 'all')")
        return v


class GatewayConfig(_Strict):
    gateway_id: str = Field("gw1", description="<gw> in gateway/<gw>/...")
    state_dir: PathStr = Field(Path("/var/lib/cart-gateway"), description="SQLite database and frames")
    catalogue: PathStr | None = Field(None, description="catalogue JSON; default: the packaged one")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    carts: CartsConfig = Field(default_factory=lambda: CartsConfig(pattern=r"[a-z0-9][a-z0-9-]{0,31}"))
    frames: FramesConfig = Field(default_factory=FramesConfig)
    detector: DetectorSection = Field(default_factory=DetectorSection)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    # The engine keeps only its 10 latest decisions in its state (persisted after every
    # message); the full decision log is the `decisions` table in SQLite.
    reconcile: ReconcileConfig = Field(default_factory=lambda: ReconcileConfig(log_limit=10))

    @field_validator("reconcile", mode="before")
    @classmethod
    def _reconcile_defaults(cls, v):
        if isinstance(v, dict):
            # strict like the rest of the file (ReconcileConfig itself also serves the simulator)
            v = ReconcileConfig.model_validate(v if "log_limit" in v else dict(v, log_limit=10), strict=True)
        return v
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus HTTP port; 0 = off")
    metrics_host: str = "127.0.0.1"
    tick_ms: int = Field(200, ge=10, le=5000, description="timer: lets event time pass, expires frames")
    batch_max: int = Field(64, ge=1, le=10000, description="messages per SQLite transaction (group commit)")
    sqlite_synchronous: str = Field("FULL", pattern="^(FULL|NORMAL)$")
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")

    @field_validator("gateway_id")
    @classmethod
    def _gw(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"{v!r} is not [a-z0-9][a-z0-9-]{{0,31}}")
        return v

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"gateway-{self.gateway_id}"


def format_errors(err: ValidationError, where: str, what: str = "configuration") -> str:
    lines = [f"{where}: invalid {what}"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict, where: str = "<config>") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e, where)) from None


def read_toml(p: Path) -> dict:
    """A TOML file's table; ConfigError names the file and what is wrong with it."""
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None


def load_config(path) -> GatewayConfig:
    p = Path(path)
    return parse_config(read_toml(p), str(p))
