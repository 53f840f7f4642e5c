"""A chain in miniature on loopback: the central broker (TLS, the ACL of
`cart-fleet central`) and store brokers bridged to it with the bridge
`cart-flash provision --fleet` writes (docs/fleet.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cart_testing.broker import Broker, SecureBroker


class CentralBroker(Broker):
    """The central broker: TLS listener on 127.0.0.1 with the chain CA's certificate,
    `cart-fleet central` users and ACL, persistence on (sessions survive a restart).
    extra_users / extra_acl: test-only users (an auditor)."""

    def __init__(self, tmp: Path, stores=("s001", "s002"), consumers: int = 2, port=None,
                 extra_users: dict[str, str] | None = None, extra_acl: str = ""):
        from cart_flash import provision
        from cart_fleet import central
        super().__init__(tmp, port, persistence=True)
        self.prov = tmp / "central-prov"
        self.tls = tmp / "chain-tls"
        if not (self.tls / "ca.pem").exists():
            provision.make_ca(self.tls, "chain-ca")
            provision.make_server_cert(self.tls, self.tls, ["127.0.0.1"])
        self.ca = self.tls / "ca.pem"
        creds = central.provision_central(self.prov, central.Chain(tuple(stores), consumers))
        self.users = dict(creds["users"])
        if extra_users:
            self.users.update(extra_users)
            provision.write_passwd(self.prov / "mosquitto.passwd", self.users)
        if extra_acl:
            with open(self.prov / "mosquitto.acl", "a") as f:
                f.write("\n" + extra_acl + "\n")

    def store_credentials(self, store: str) -> Path:
        return self.prov / f"store-{store}.json"

    def _security(self) -> str:
        from cart_fleet import central
        t = self.tls
        text = central.broker_conf(self.port, self.prov / "mosquitto.passwd", self.prov / "mosquitto.acl",
                                   bind="127.0.0.1", tls=(t / "ca.pem", t / "server.pem", t / "server.key"))
        return text

    def _limits(self) -> str:
        return ""     # central.broker_conf's own


class BridgedStoreBroker(SecureBroker):
    """A store broker as the Pi runs it, plus the fleet bridge to `central`
    (persistence on: the bridge's queue survives a store broker restart).
    bridge_conf: replace the generated bridge text (a test of a bad bridge)."""

    def __init__(self, tmp: Path, central: CentralBroker, store: str = "s001", gateway: str = "gw1",
                 carts=("c001", "c002"), bridge_conf: str | None = None, **kw):
        tmp = tmp / f"store-{store}"
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp, carts=carts, gateway=gateway, persistence=True, **kw)
        from cart_flash import provision
        self.store_id, self.gateway_id = store, gateway
        self.central = central
        user, password = provision.load_fleet_credentials(central.store_credentials(store))
        link = provision.FleetLink(store, "127.0.0.1", central.port, user, password, str(central.ca))
        self.bridge_text = bridge_conf if bridge_conf is not None else provision.bridge_conf(link, gateway)

    def _security(self) -> str:
        return super()._security() + "\n" + self.bridge_text

    def _limits(self) -> str:
        # as gateway/systemd/mosquitto.conf (the Pi's): the bridge's queue limit
        return "max_inflight_messages 100\nmax_queued_messages 20000\nmax_queued_bytes 0\nset_tcp_nodelay true\n"


def fleet_record(gateway: str, cart: str, receipt_id: str, day: str, issued_ms: int, items: int = 3,
                 prompts: int = 0, reviews: int = 0, total_cents: int = 1234) -> bytes:
    """A receipt's ledger record as gateway/cart_gateway/fleet.py writes it (for load without a gateway)."""
    lines = [{"line_id": f"l{i}", "sku": f"sku{i}", "name": "x", "qty": 1, "weight_g": 100.0,
              "unit_price_cents": 100, "price_cents": 100} for i in range(items)]
    return json.dumps({"v": 1, "gateway": gateway, "cart": cart, "day": day, "published_ms": issued_ms,
                       "receipt": {"receipt_id": receipt_id, "req_id": "r-" + receipt_id, "lines": lines,
                                   "total_cents": total_cents, "issued_ms": issued_ms},
                       "basket": {"items": items, "lines": items, "prompts": prompts, "reviews": reviews,
                                  "accepted": items}}, sort_keys=True).encode()


