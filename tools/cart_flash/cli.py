"""cart-flash: flash and provision cart boards (docs/bench.md).

  cart-flash flash --board cart-scale-esp32 --cart c001 --port /dev/ttyUSB0 \
      --broker 192.168.10.2:8883 --wifi store-carts:PASS --credentials creds/credentials.json
  cart-flash flash --board sim-scale --cart c001 --target dir:c001-scale --broker 127.0.0.1:1883 --boot
  cart-flash batch carts.csv --broker ... [--dry-run]
  cart-flash provision --out creds --carts c001,c002 --gateway gw1 --review desk1
  cart-flash tls --out tls --hosts 192.168.10.2,gateway.local
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from cart_flash import batch, boardconfig, provision
from cart_flash.errors import FlashError
from cart_flash.flash import Flasher, Job
from cart_flash.fsimage import BoardError, build_fs, image_files


def _flash_args(p: argparse.ArgumentParser, single: bool) -> None:
    if single:
        p.add_argument("--board", required=True, help="board definition in boards/")
        p.add_argument("--cart", required=True, help="cart id, e.g. c001")
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--port", help="serial port as a pyserial URL: /dev/ttyUSB0, rfc2217://host:port, socket://host:port")
        g.add_argument("--target", help="dir:PATH for a virtual board's flash directory (or a serial URL)")
        p.add_argument("--calibration", help="OFFSET,SCALE (counts, counts per gram)")
    p.add_argument("--broker", type=boardconfig.parse_hostport, help="HOST:PORT the board connects to")
    p.add_argument("--wifi", help="SSID:PASSWORD")
    p.add_argument("--credentials", type=Path, help="credentials.json from `cart-flash provision`")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None, help="connect with TLS")
    p.add_argument("--ca-file", help="CA file name on the board (default from the template: ca.pem)")
    p.add_argument("--ca-pem", help="local store CA (ca.pem from `cart-flash tls`) copied to the board")
    p.add_argument("--image", help="MicroPython base image (firmware.bin) to write with esptool first")
    p.add_argument("--boot", action="store_true", help="dir: targets: boot a virtual board and verify it online")
    p.add_argument("--no-verify", action="store_true", help="real boards: do not wait for the birth on the broker")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for the REPL and for coming online")
    p.add_argument("--verify-user", help="MQTT user cart-flash logs in with to verify (a bench-<id> user; "
                                         "never the gateway's: it would kick the gateway off)")
    p.add_argument("--verify-password")
    p.add_argument("--verify-ca", help="CA file to verify the broker's certificate with")
    p.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")


def _job(a: argparse.Namespace, board: str, cart: str, target: str, calibration: str | None) -> Job:
    wifi = None
    if a.wifi:
        ssid, sep, pw = a.wifi.partition(":")
        if not sep:
            raise FlashError(f"--wifi {a.wifi!r}: expected SSID:PASSWORD")
        wifi = (ssid, pw)
    cal = None
    if calibration:
        try:
            off, scale = calibration.split(",")
            cal = (int(off), float(scale))
        except ValueError:
            raise FlashError(f"calibration {calibration!r}: expected OFFSET,SCALE e.g. -152000,86.0") from None
    creds = boardconfig.load_credentials(a.credentials) if a.credentials else None
    cfg = boardconfig.make_config(board, cart, broker=a.broker, wifi=wifi, credentials=creds,
                                  calibration=cal, tls=a.tls, ca_file=a.ca_file)
    return Job(board=board, cart=cart, target=target, config=cfg, image=a.image, boot=a.boot,
               verify=not a.no_verify, timeout=a.timeout, broker_user=a.verify_user,
               broker_password=a.verify_password, broker_ca=a.verify_ca, ca_pem=a.ca_pem)


def _dry_run(f: Flasher) -> bool:
    """Print the plan, build the image in a scratch folder (no device is touched)
    and say what would stop the real run. True when it would run."""
    print(f"plan for {f.job.cart}/{f.job.board} on {f.job.target}:")
    for i, s in enumerate(f.plan(), 1):
        print(f"[{i}] {s.describe()}")
    with tempfile.TemporaryDirectory(prefix="cart-flash-check-") as tmp:
        fs = build_fs(f.job.board, Path(tmp) / "fs", f.job.config)
        print(f"checked: the {f.job.board} image builds ({len(image_files(fs))} files)")
    problems = f.problems()
    for p in problems:
        print(f"cannot run as planned: {p}")
    return not problems


def cmd_flash(a: argparse.Namespace) -> int:
    f = Flasher(_job(a, a.board, a.cart, a.port or a.target, a.calibration))
    if a.dry_run:
        return 0 if _dry_run(f) else 1
    f.run()
    print(f"ok: {a.cart}/{a.board} flashed" + (f", online after {f.result['online_s']} s" if "online_s" in f.result else ""))
    return 0


def cmd_batch(a: argparse.Namespace) -> int:
    rows = batch.read_rows(a.csv)

    def one(row: dict) -> dict:
        cal = None
        if row.get("calibration_offset") and row.get("calibration_scale"):
            cal = f"{row['calibration_offset']},{row['calibration_scale']}"
        f = Flasher(_job(a, row["board"], row["cart"], row["target"], cal))
        if a.dry_run:
            if not _dry_run(f):
                raise FlashError("the plan cannot run (above)")
            return {}
        return f.run()

    reports = batch.run_batch(rows, one)
    return 0 if all(r["ok"] for r in reports) else 1


def cmd_provision(a: argparse.Namespace) -> int:
    import json
    carts = [c for c in a.carts.split(",") if c]
    review = [r for r in (a.review or "").split(",") if r]
    existing = None
    old = a.out / "credentials.json"
    if old.exists():
        existing = json.loads(old.read_text())["users"]
    ids = lambda v: [i for i in (v or "").split(",") if i]  # noqa: E731
    fleet = a.fleet is not None
    if fleet and not (a.store and a.fleet_credentials):
        raise FlashError("--fleet needs --store and --fleet-credentials (store-<store>.json from `cart-fleet central`)")
    creds = provision.provision(a.out, carts, a.gateway, review, existing, web=ids(a.web), exits=ids(a.exit),
                                bench=ids(a.bench), fleet_bridge=a.fleet_bridge)
    if fleet:
        user, password = provision.load_fleet_credentials(a.fleet_credentials)
        link = provision.FleetLink(a.store, a.fleet[0], a.fleet[1], user, password, a.fleet_ca)
        conf = provision.write_bridge_conf(a.out, link, a.gateway)
        print(f"fleet bridge to {a.fleet[0]}:{a.fleet[1]} as store {a.store}: {conf} "
              f"(install in /etc/mosquitto/conf.d/, and the chain CA as {a.fleet_ca}: docs/fleet.md)")
    print(f"{len(creds['users'])} MQTT users in {a.out}/credentials.json (keep secret), "
          f"{a.out}/mosquitto.passwd and {a.out}/mosquitto.acl (install on the gateway Pi in /etc/mosquitto/cart/: docs/install-pi.md §3)")
    return 0


def cmd_tls(a: argparse.Namespace) -> int:
    ca_dir = a.out
    if not (ca_dir / "ca.pem").exists():
        provision.make_ca(ca_dir)
    cert, key = provision.make_server_cert(a.out, ca_dir, [h for h in a.hosts.split(",") if h])
    print(f"CA {ca_dir}/ca.pem (copy to every board as ca.pem; keep ca.key offline), broker cert {cert}, key {key}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cart-flash", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flash", help="flash one board")
    _flash_args(f, single=True)
    f.set_defaults(fn=cmd_flash)
    b = sub.add_parser("batch", help="flash the boards listed in a CSV (cart,board,target[,calibration_offset,calibration_scale])")
    b.add_argument("csv", type=Path)
    _flash_args(b, single=False)
    b.set_defaults(fn=cmd_batch)
    pr = sub.add_parser("provision", help="MQTT credentials, password file and ACL")
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--carts", required=True, help="comma-separated cart ids")
    pr.add_argument("--gateway", required=True, help="gateway id")
    pr.add_argument("--review", help="comma-separated review station ids")
    pr.add_argument("--web", help="comma-separated staff web service ids (user web-<id>)")
    pr.add_argument("--exit", help="comma-separated exit gate ids (user exit-<id>)")
    pr.add_argument("--bench", help="comma-separated bench rig ids (user bench-<id>: rig monitor, --verify-user)")
    pr.add_argument("--fleet-bridge", action="store_true", help="a fleet-<gw> user for the head-office bridge")
    pr.add_argument("--fleet", type=boardconfig.parse_hostport, metavar="HOST:PORT",
                    help="write fleet-bridge.conf: the store broker's bridge to the central broker (docs/fleet.md)")
    pr.add_argument("--store", help="with --fleet: the store id, its prefix stores/<store>/ on the central broker")
    pr.add_argument("--fleet-credentials", type=Path, help="with --fleet: store-<store>.json from `cart-fleet central`")
    pr.add_argument("--fleet-ca", default=provision.BRIDGE_CA,
                    help=f"with --fleet: the chain CA's path on the Pi (default {provision.BRIDGE_CA})")
    pr.set_defaults(fn=cmd_provision)
    t = sub.add_parser("tls", help="store CA and the broker's certificate (openssl)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--hosts", required=True, help="broker IPs / names, comma-separated")
    t.set_defaults(fn=cmd_tls)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        return a.fn(a)
    except (FlashError, BoardError) as e:
        print(f"cart-flash: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
