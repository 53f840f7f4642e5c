"""A chain in miniature on loopback: the central broker (TLS, the ACL of
`cart-fleet central`) and store brokers bridged to it with the bridge
`cart-flash provision --fleet` writes (docs/fleet.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cart_testing.broker import Broker, SecureBroker, add_test_users
from cart_testing.procs import stop_process


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
        self.users = add_test_users(self.prov, creds["users"], extra_users, extra_acl)

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




class ConsumerProcess:
    """`cart-fleet consume` as a real process (so a test can kill -9 it)."""

    def __init__(self, tmp: Path, central: CentralBroker, dsn: str, n: int = 1, group: str = "ledger"):
        import sys
        self.user = f"ledger-{n}"
        pw = tmp / f"{self.user}.pw"
        pw.write_text(central.users[self.user])
        self.log = tmp / f"{self.user}.log"
        self.args = [sys.executable, "-m", "cart_fleet", "consume", "--broker", f"127.0.0.1:{central.port}",
                     "--db", dsn, "--client-id", self.user, "--group", group, "--user", self.user,
                     "--password-file", str(pw), "--ca", str(central.ca)]
        self.proc = None

    def start(self) -> "ConsumerProcess":
        import subprocess
        from cart_testing.gateway import ROOT
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tools"), str(ROOT / "gateway"), env.get("PYTHONPATH", "")])
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, env=env, stdout=out, stderr=out, cwd=str(ROOT))
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


class FleetRig:
    """One store (broker + bridge + the real gateway process) bridged to the central
    broker, `cart-fleet consume` processes and a real PostgreSQL, on loopback.
    `checkouts(...)` drives checkout load as an exit gate does; `truth()` is the
    gateway's own receipts, `ledger()` what reached PostgreSQL."""

    def __init__(self, tmp: Path, consumers: int = 2, carts=("c001", "c002", "c003", "c004")):
        from cart_testing.postgres import PostgresCluster
        self.tmp, self.carts = tmp, carts
        self.pg = PostgresCluster().start()
        self.central = CentralBroker(tmp, stores=("s001",), consumers=max(consumers, 2)).start()
        self.store = BridgedStoreBroker(tmp, self.central, carts=carts, exits=["gate1"], review=["desk1"]).start()
        self.consumers = [ConsumerProcess(tmp, self.central, self.pg.dsn, n) for n in range(1, consumers + 1)]
        self.gw_state = tmp / "gw-state"
        self.gateway = None
        self._exit = None
        self._sent: list[str] = []
        self._stop_load = None

    # ---------------------------------------------------------------- parts
    def start_gateway(self, timeout: float = 60):
        from cart_testing.gateway import GatewayProcess, write_config
        cfg = write_config(self.tmp / "gw.toml", self.store.port, self.gw_state, carts=self.carts,
                           username="gateway-gw1", password=self.store.users["gateway-gw1"])
        with open(cfg, "a") as f:       # records the link lost go again 5 s after sending (default 60)
            f.write("[fleet]\nresend_s = 5\nfigures_interval_s = 5\n")
        self.gateway = GatewayProcess(cfg, self.tmp / "gateway.log").start()
        self.wait_gateway_online(timeout)

    def wait_gateway_online(self, timeout: float = 60) -> None:
        import time
        from cart_testing.peer import Peer
        p = Peer(self.store.port, "review-desk1", self.store.users["review-desk1"])
        p.connect()
        try:
            p.sub(["gateway/gw1/status"])
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                for _, payload, _ in p.got(0.2):
                    if json.loads(payload).get("state") == "online":
                        return
            raise AssertionError(f"the gateway did not come online in {timeout} s; see {self.tmp}/gateway.log")
        finally:
            p.close()

    def start_consumers(self) -> None:
        for c in self.consumers:
            c.start()

    def close(self) -> None:
        self.stop_load()
        if self._exit is not None:
            self._exit.close()
        for c in self.consumers:
            c.stop()
        if self.gateway is not None:
            self.gateway.stop()
        self.store.stop()
        self.central.stop()
        self.pg.destroy()

    # ---------------------------------------------------------------- load
    def _exit_peer(self):
        from cart_testing.peer import Peer
        if self._exit is None:
            self._exit = Peer(self.store.port, "exit-gate1", self.store.users["exit-gate1"], client_id="exit-gate1")
            self._exit.c.reconnect_delay_set(0.1, 1)
            self._exit.connect()
        return self._exit

    def checkout(self, n: int, prefix: str) -> None:
        """n checkout requests now, round-robin over the carts (each pays an empty basket)."""
        ex = self._exit_peer()
        for i in range(n):
            req = f"{prefix}-{len(self._sent)}"
            ex.pub(f"carts/{self.carts[len(self._sent) % len(self.carts)]}/checkout",
                   json.dumps({"v": 1, "req_id": req}).encode())
            self._sent.append(req)

    def start_load(self, per_s: float, prefix: str = "q") -> None:
        """Checkouts at per_s in a thread until stop_load(); a publish that fails while the
        store broker is away is retried (the exit gate keeps asking)."""
        import threading
        import time
        self._stop_load = threading.Event()

        def run():
            ex = self._exit_peer()
            while not self._stop_load.is_set():
                req = f"{prefix}-{len(self._sent)}"
                cart = self.carts[len(self._sent) % len(self.carts)]
                try:
                    ex.pub(f"carts/{cart}/checkout", json.dumps({"v": 1, "req_id": req}).encode(), timeout=2)
                    self._sent.append(req)
                except (RuntimeError, ValueError):
                    time.sleep(0.2)
                    continue
                time.sleep(1.0 / per_s)
        self._load = threading.Thread(target=run, daemon=True)
        self._load.start()

    def stop_load(self) -> None:
        if self._stop_load is not None:
            self._stop_load.set()
            self._load.join(10)
            self._stop_load = None

    # ---------------------------------------------------------------- results
    def truth(self) -> dict[str, dict]:
        """receipt_id -> receipt, from the gateway's own SQLite (what the store issued)."""
        import sqlite3
        db = sqlite3.connect(self.gw_state / "gateway.sqlite3")
        try:
            rows = db.execute("SELECT receipt FROM receipts").fetchall()
        finally:
            db.close()
        out = {}
        for (r,) in rows:
            d = json.loads(r)
            if d.get("ok"):
                out[d["receipt_id"]] = d
        return out

    def ledger(self) -> list[tuple[str, str, int]]:
        """(receipt_id, req_id, deliveries) of every ledger row."""
        import psycopg
        with psycopg.connect(self.pg.dsn) as db:
            try:
                return db.execute("SELECT receipt_id, record->'receipt'->>'req_id', deliveries FROM receipts").fetchall()
            except psycopg.errors.UndefinedTable:
                return []

    def wait_ledger(self, timeout: float, issued: int = 1) -> tuple[dict, list]:
        """Until the gateway has issued at least `issued` receipts and every one it issued
        is in the ledger (or timeout)."""
        import time
        end = time.monotonic() + timeout
        while True:
            # the ledger first: a receipt issued between the two reads is then in the truth
            # and not yet in the rows (wait again), never in the rows only ("unknown")
            rows = self.ledger()
            truth = self.truth()
            if len(truth) >= issued and {r for r, _, _ in rows} >= set(truth) or time.monotonic() > end:
                return truth, rows
            time.sleep(0.5)


def losses(truth: dict, rows: list) -> dict:
    """lost: issued receipts not in the ledger; doubled: a checkout request in the ledger
    under two receipt ids, or a receipt id twice; copies: deliveries absorbed by the ledger."""
    ids = [r for r, _, _ in rows]
    reqs = [q for _, q, _ in rows]
    return {"issued": len(truth), "stored": len(rows), "lost": len(set(truth) - set(ids)),
            "doubled": (len(ids) - len(set(ids))) + (len(reqs) - len(set(reqs))),
            "unknown": len(set(ids) - set(truth)), "copies_absorbed": sum(d - 1 for _, _, d in rows)}
