"""Broker security for a store: per-client MQTT credentials, the Mosquitto
password file and ACL, and TLS certificates (a store CA and the broker's cert).

Every MQTT user has one role; `grants()` is the whole ACL of a role (protocol
§2 names the topics; docs/install-pi.md §Broker has the same table). Mosquitto
refuses any topic the ACL does not grant (default deny), and every listener has
`use_username_as_clientid true`: a client's id *is* its user name, so one
client's password cannot take over another client's session (issue 11 §3).

Roles (user name: what it may do):
- board `cart-<cart>-<board>`: writes its own status/evt/tele/cmd/res (the
  camera also its frame topic); reads its own cmd (the camera also its cart's
  scale events, protocol §6.2). Nothing else: not the basket, receipt, prompts.
- gateway `gateway-<gw>`: reads every cart's board topics, answers and
  checkouts, and its verdicts and staff actions; writes baskets, prompts,
  screen state, receipts, board commands and its own status and reviews.
- screen `screen-<cart>`: reads its cart's basket, prompts, screen state and
  receipt; writes its cart's answers and checkout.
- review station `review-<id>`: reads the gateway's status and reviews; writes
  verdicts.
- web `web-<id>` (the staff web service, docs/web.md): reads every cart's
  basket, prompts, screen state, receipt and board status and the gateway's
  status and reviews; writes verdicts and staff actions, and the answers of the
  cart-screen pages it serves (docs/web.md). Never frames: the web service
  reads them from the gateway's frame store on disk.
- exit gate `exit-<id>`: reads receipts, writes checkout requests.
- bench `bench-<id>`: the bench rig and `cart-flash` verification: reads every
  cart's board topics except frames, writes board commands.
- fleet bridge `fleet-<gw>` (a head-office link that runs as an ordinary
  client of the store broker, e.g. a connector pulling from it; Mosquitto's own
  bridge, `bridge_conf` below, is inside the broker and needs no user): reads `gateway/<gw>/fleet/out/#` (what the
  gateway writes for head office), writes `gateway/<gw>/fleet/in/#` (updates
  from head office, which the gateway reads). Nothing else: never frames,
  review requests (they name frames), baskets or anything else.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cart_flash.errors import FlashError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")  # protocol §1
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
BOARDS = ("scale", "cam")


class Role(str, Enum):
    BOARD = "board"
    GATEWAY = "gateway"
    SCREEN = "screen"
    REVIEW = "review"
    WEB = "web"
    EXIT = "exit"
    BENCH = "bench"
    FLEET = "fleet-bridge"


class Access(str, Enum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Grant:
    access: Access
    topic: str  # an MQTT topic filter (+ and # allowed)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    cart: str | None = None   # boards and screens: the one cart they belong to
    board: str | None = None  # boards: scale or cam


def _check_id(kind: str, v: str) -> str:
    if not ID_RE.match(v):
        raise FlashError(f"{kind} id {v!r}: must match [a-z0-9][a-z0-9-]{{0,31}} (protocol §1)")
    return v


def new_password() -> str:
    return secrets.token_urlsafe(18)  # 144 bits


def _r(*topics: str) -> list[Grant]:
    return [Grant(Access.READ, t) for t in topics]


def _w(*topics: str) -> list[Grant]:
    return [Grant(Access.WRITE, t) for t in topics]


def grants(user: User, gateway: str) -> list[Grant]:
    """The topics a user may read and write (protocol §2)."""
    g = f"gateway/{gateway}"
    if user.role is Role.BOARD:
        mine = f"carts/{user.cart}/{user.board}"
        out = _w(f"{mine}/status", f"{mine}/evt", f"{mine}/tele", f"{mine}/cmd/res") + _r(f"{mine}/cmd")
        if user.board == "cam":
            out += _w(f"carts/{user.cart}/cam/frame") + _r(f"carts/{user.cart}/scale/evt")
        return out
    if user.role is Role.GATEWAY:
        return (_r("carts/+/+/evt", "carts/+/cam/frame", "carts/+/+/status", "carts/+/+/tele",
                   "carts/+/+/cmd/res", "carts/+/screen/answer", "carts/+/checkout",
                   f"{g}/review/verdict", f"{g}/staff/#")
                + _w("carts/+/basket", "carts/+/screen/prompt", "carts/+/screen/state", "carts/+/receipt",
                     "carts/+/+/cmd", f"{g}/status", f"{g}/review/new", f"{g}/review/queue")
                + _r(f"{g}/fleet/in/#", "fleet/in/+/rollout/#") + _w(f"{g}/fleet/out/#", "fleet/out/+/rollout/#"))
    if user.role is Role.SCREEN:
        c = f"carts/{user.cart}"
        return (_r(f"{c}/basket", f"{c}/screen/prompt", f"{c}/screen/state", f"{c}/receipt")
                + _w(f"{c}/screen/answer", f"{c}/checkout"))
    if user.role is Role.REVIEW:
        return _r(f"{g}/status", f"{g}/review/new", f"{g}/review/queue") + _w(f"{g}/review/verdict")
    if user.role is Role.WEB:
        return (_r("carts/+/basket", "carts/+/screen/prompt", "carts/+/screen/state", "carts/+/receipt",
                   "carts/+/+/status", f"{g}/status", f"{g}/review/new", f"{g}/review/queue")
                + _w(f"{g}/review/verdict", f"{g}/staff/#", "carts/+/screen/answer"))
    if user.role is Role.EXIT:
        return _r("carts/+/receipt") + _w("carts/+/checkout")
    if user.role is Role.BENCH:
        return (_r("carts/+/+/status", "carts/+/+/evt", "carts/+/+/tele", "carts/+/+/cmd/res")
                + _w("carts/+/+/cmd"))
    if user.role is Role.FLEET:
        return _r(f"{g}/fleet/out/#", "fleet/out/+/rollout/#") + _w(f"{g}/fleet/in/#", "fleet/in/+/rollout/#")
    raise AssertionError(user.role)


@dataclass(frozen=True)
class Store:
    """Who is on a store's broker."""
    gateway: str
    carts: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    web: tuple[str, ...] = ()
    exits: tuple[str, ...] = ()
    bench: tuple[str, ...] = ()
    fleet_bridge: bool = False

    def users(self) -> list[User]:
        out = [User(f"gateway-{_check_id('gateway', self.gateway)}", Role.GATEWAY)]
        for c in self.carts:
            _check_id("cart", c)
            out += [User(f"cart-{c}-{b}", Role.BOARD, c, b) for b in BOARDS]
            out.append(User(f"screen-{c}", Role.SCREEN, c))
        for kind, role, ids in (("review station", Role.REVIEW, self.review), ("web service", Role.WEB, self.web),
                                ("exit gate", Role.EXIT, self.exits), ("bench", Role.BENCH, self.bench)):
            prefix = "review" if role is Role.REVIEW else role.value
            out += [User(f"{prefix}-{_check_id(kind, i)}", role) for i in ids]
        if self.fleet_bridge:
            out.append(User(f"fleet-{self.gateway}", Role.FLEET))
        names = [u.name for u in out]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise FlashError(f"MQTT user names given twice: {', '.join(sorted(dup))}")
        return out


def users_for(carts: list[str], gateway: str, review: list[str]) -> dict[str, str]:
    """Every MQTT user of a store and its role, e.g. {"cart-c001-scale": "board"}."""
    return {u.name: u.role.value for u in Store(gateway, tuple(carts), tuple(review)).users()}


def acl_text_for(store: Store) -> str:
    lines = ["# Generated by cart-flash provision (docs/install-pi.md, ACL per role).",
             "# Default deny: a topic not granted here is refused. Client ids are the user names",
             "# (use_username_as_clientid on every listener).", ""]
    for u in store.users():
        lines.append(f"# {u.role.value}")
        lines.append(f"user {u.name}")
        lines += [f"topic {gr.access.value} {gr.topic}" for gr in grants(u, store.gateway)]
        lines.append("")
    return "\n".join(lines)


def acl_text(carts: list[str], gateway: str, review: list[str]) -> str:
    return acl_text_for(Store(gateway, tuple(carts), tuple(review)))


def write_passwd(path: Path, users: dict[str, str]) -> None:
    """A Mosquitto password file: plain `user:password` lines hashed in place
    by `mosquitto_passwd -U` (the broker's own hashing)."""
    if not os.path.exists(MOSQUITTO_PASSWD):
        raise FlashError("mosquitto_passwd not found: apt-get install mosquitto")
    tmp = Path(str(path) + ".tmp")
    for u in users:
        if ":" in u:
            raise FlashError(f"user name {u!r} contains ':'")
    _write_private(tmp, "".join(f"{u}:{p}\n" for u, p in users.items()))
    r = subprocess.run([MOSQUITTO_PASSWD, "-U", str(tmp)], capture_output=True, text=True)
    if r.returncode:
        tmp.unlink()
        # mosquitto_passwd's message names the file, never a password
        raise FlashError(f"mosquitto_passwd -U failed: {r.stderr.strip() or r.stdout.strip()}")
    os.chmod(tmp, 0o600)  # only hashes now, still nobody else's business
    tmp.replace(path)


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    # Created with its final mode (never briefly world-readable), then renamed.
    tmp = Path(str(path) + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)  # O_CREAT's mode is masked by the umask; an existing file keeps its own
    tmp.replace(path)


def provision(out: Path, carts: list[str], gateway: str, review: list[str],
              existing: dict[str, str] | None = None, *, web: list[str] = (), exits: list[str] = (),
              bench: list[str] = (), fleet_bridge: bool = False) -> dict:
    """Write credentials.json (0600), mosquitto.passwd (0600) and mosquitto.acl
    (0640) into `out`. Passwords already in `existing` are kept, so
    re-provisioning after adding a cart does not invalidate the boards already
    flashed; users no longer in the store are dropped (their password stops working)."""
    store = Store(gateway, tuple(carts), tuple(review), tuple(web), tuple(exits), tuple(bench), fleet_bridge)
    if not out.exists():
        out.mkdir(mode=0o700, parents=True)
    roles = {u.name: u.role.value for u in store.users()}
    old = existing or {}
    users = {u: old.get(u) or new_password() for u in roles}
    creds = {"gateway": gateway, "roles": roles, "users": users}
    _write_private(out / "credentials.json", json.dumps(creds, indent=1))
    write_passwd(out / "mosquitto.passwd", users)
    _write_private(out / "mosquitto.acl", acl_text_for(store), 0o640)
    return creds


# ------------------------------------------------------------------ TLS
def _openssl(args: list[str], cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise FlashError(f"openssl {args[0]} failed: {r.stderr.strip()[-300:]}")


def make_ca(out: Path, name: str = "cart-store-ca", days: int = 3650) -> Path:
    """A store CA (EC P-256): ca.key (keep offline) and ca.pem (goes on every board)."""
    out.mkdir(parents=True, exist_ok=True)
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days), "-subj", f"/CN={name}",
              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], out)
    os.chmod(out / "ca.key", 0o600)
    return out / "ca.pem"


def make_server_cert(out: Path, ca_dir: Path, hosts: list[str], days: int = 825) -> tuple[Path, Path]:
    """The broker's key and certificate, signed by the CA, valid for `hosts`
    (IP addresses and DNS names; boards connect by IP)."""
    import ipaddress
    sans = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            sans.append(f"IP:{h}")
        except ValueError:
            sans.append(f"DNS:{h}")
    out.mkdir(parents=True, exist_ok=True)
    ext = out / "server.ext"
    ext.write_text(f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}"], out)
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", str(ca_dir / "ca.pem"), "-CAkey", str(ca_dir / "ca.key"),
              "-CAcreateserial", "-out", "server.pem", "-days", str(days), "-extfile", str(ext)], out)
    os.chmod(out / "server.key", 0o600)
    return out / "server.pem", out / "server.key"


def mosquitto_conf(port: int, passwd: Path, acl: Path, bind: str = "0.0.0.0",
                   tls: tuple[Path, Path, Path] | None = None, local_port: int | None = None) -> str:
    """A closed broker: passwords and the ACL for every listener; with
    tls=(ca, cert, key) the listener on `bind` is TLS (1.2 or later); with
    local_port a plain listener on 127.0.0.1 only (the gateway on the Pi).
    Every listener binds client ids to user names (a per-listener option)."""
    lines = ["per_listener_settings false", "allow_anonymous false",
             f"password_file {passwd}", f"acl_file {acl}", "",
             f"listener {port} {bind}", "use_username_as_clientid true"]
    if tls:
        ca, cert, key = tls
        lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2"]
    if local_port is not None:
        lines += ["", f"listener {local_port} 127.0.0.1", "use_username_as_clientid true"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ fleet bridge
# Every topic the bridge carries, by kind (docs/fleet.md §Topics). Out at QoS 1:
# receipts (the ledger) and rollout status queue through an outage; figures and
# health at QoS 0: each is superseded a minute later, so queueing a day of them
# would only delay the receipts behind them when the link returns.
BRIDGE_OUT = (("receipt", 1), ("figures", 0), ("health", 0))
BRIDGE_IN = ("ack", "config", "prices")   # ack: the ledger's acknowledgements (docs/fleet.md)
BRIDGE_CA = "/etc/mosquitto/cart/fleet/ca.pem"


@dataclass(frozen=True)
class FleetLink:
    """The store's side of its bridge to head office."""
    store: str               # <store> in stores/<store>/... on the central broker
    host: str
    port: int
    remote_user: str         # issued by head office (`cart-fleet central`): store-<store>
    remote_password: str
    cafile: str = BRIDGE_CA  # the chain's CA, which signed the central broker's certificate


def bridge_conf(link: FleetLink, gateway: str) -> str:
    """The Mosquitto bridge for /etc/mosquitto/conf.d/ (mode 0640: it holds two passwords).

    Only the gateway's fleet subtree is mapped, one `topic` line per kind, each with
    both prefixes, so no line can match a frame, a review request or any store topic."""
    _check_id("store", link.store)
    local, remote = f"gateway/{gateway}/fleet/", f"stores/{link.store}/"
    for v in (link.remote_user, link.remote_password, link.cafile, link.host):
        if any(ch.isspace() for ch in v) or not v:
            raise FlashError(f"fleet bridge setting {v[:12]!r}...: empty or contains white space")
    lines = [
        "# Generated by cart-flash provision --fleet (docs/fleet.md). Mode 0640 root:mosquitto (a password).",
        f"connection fleet-{link.store}",
        f"address {link.host}:{link.port}",
        "bridge_protocol_version mqttv50",
        # the central broker binds client ids to user names, like the store broker
        f"remote_clientid {link.remote_user}",
        f"remote_username {link.remote_user}",
        f"remote_password {link.remote_password}",
        # Mosquitto's bridge is inside the store broker: the store ACL does not apply to it
        # (tested: tools/tests/test_fleet_bridge.py), so this topic list and the central
        # ACL are what keep frames in the store. No local_username for that reason.
        f"local_clientid fleet-bridge-{gateway}",
        # persistent sessions on both sides: what is queued for the link survives a drop
        "cleansession false",
        "start_type automatic",
        "restart_timeout 1 10",   # back within 10 s of the central broker returning
        "keepalive_interval 30",
        f"bridge_cafile {link.cafile}",
        "bridge_insecure false",
        "bridge_tls_version tlsv1.2",
        # the bridge's own state, retained, on the store's prefix (its last will says 0)
        "notifications true",
        f"notification_topic {remote}out/bridge",
        "bridge_max_packet_size 262144",
    ]
    lines += [f"topic {kind} out {qos} {local}out/ {remote}out/" for kind, qos in BRIDGE_OUT]
    lines += [f"topic {kind} in 1 {local}in/ {remote}in/" for kind in BRIDGE_IN]
    lines += [f"topic {kind} in 1 {local}in/ chain/in/" for kind in BRIDGE_IN if kind != "ack"]
    # model and catalogue rollout (docs/protocol.md §17): the same topic names on both brokers
    lines += [f"topic rollout/# in 1 fleet/in/{link.store}/ fleet/in/{link.store}/",
              "topic rollout/# in 1 fleet/in/all/ fleet/in/all/",
              f"topic rollout/# out 1 fleet/out/{link.store}/ fleet/out/{link.store}/"]
    return "\n".join(lines) + "\n"


def write_bridge_conf(out: Path, link: FleetLink, gateway: str) -> Path:
    path = out / "fleet-bridge.conf"
    _write_private(path, bridge_conf(link, gateway), 0o640)
    return path


def load_fleet_credentials(path: Path) -> tuple[str, str]:
    """(user, password) from the store-<store>.json head office issued (`cart-fleet central`)."""
    try:
        d = json.loads(path.read_text())
        return d["user"], d["password"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FlashError(f"{path}: not a store credential file from `cart-fleet central` ({e})") from None
