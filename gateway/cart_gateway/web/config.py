"""The web service's configuration (TOML, strict like the gateway's: unknown keys are rejected).

It names the gateway's own config file, from which it takes the state directory
(SQLite + frames), the gateway id, the catalogue and the broker address; its own
keys are the listening address, TLS, sessions and its broker credentials.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import ConfigError, GatewayConfig, format_errors, load_config, read_toml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebMqtt(_Strict):
    """The web service's own broker account (role `web`, docs/web.md lists its ACL)."""
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(None, description="default: the username, else web-<gw>")
    cafile: Path | None = Field(None, description="the store CA, when the broker listens with TLS")
    host: str | None = Field(None, description="default: the gateway config's mqtt.host")
    port: int | None = Field(None, ge=1, le=65535, description="default: the gateway config's mqtt.port")


class WebConfig(_Strict):
    gateway_config: Path = Field(Path("/etc/cart-gateway/gateway.toml"))
    listen: str = Field(..., description="the store LAN address to listen on (private or loopback, no wildcard)")
    port: int = Field(8443, ge=1, le=65535)
    tls_cert: Path = Field(..., description="server certificate signed by the store CA (PEM)")
    tls_key: Path = Field(..., description="its private key (PEM)")
    state_dir: Path = Field(Path("/var/lib/cart-gateway-web"), description="accounts, sessions, audit log")
    session_idle_s: int = Field(1800, ge=30, le=86400, description="a session unused this long expires")
    session_max_s: int = Field(43200, ge=60, le=7 * 86400, description="a session expires this long after login")
    login_max_failures: int = Field(5, ge=1, le=100, description="failed logins per account before a lock-out")
    login_lockout_s: int = Field(600, ge=1, le=86400)
    verdict_wait_s: float = Field(2.0, gt=0, le=10, description="wait this long for the gateway to apply a verdict")
    timezone: str = Field("UTC", description="the store's time zone, for 'today' in the figures")
    mqtt: WebMqtt = Field(default_factory=WebMqtt)

    @field_validator("listen")
    @classmethod
    def _lan_only(cls, v: str) -> str:
        try:
            ip = ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address (give the store LAN address)") from None
        if ip.is_unspecified:
            raise ValueError(f"{v}: a wildcard would listen on every interface; give the store LAN address")
        if not (ip.is_private or ip.is_loopback):
            raise ValueError(f"{v} is not a private (store LAN) or loopback address")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo
        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _session_order(self):
        if self.session_idle_s > self.session_max_s:
            raise ValueError("session_idle_s must not exceed session_max_s")
        return self


def load_web_config(path) -> tuple[WebConfig, GatewayConfig]:
    """The web config and the gateway config it names; ConfigError names the file and key."""
    p = Path(path)
    try:
        web = WebConfig.model_validate(read_toml(p))
    except ValidationError as e:
        raise ConfigError(format_errors(e, str(p), "web configuration")) from None
    gw_path = web.gateway_config if web.gateway_config.is_absolute() else p.parent / web.gateway_config
    return web, load_config(gw_path)
