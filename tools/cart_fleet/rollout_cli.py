"""`cart-fleet publish | rollback | rollout-status | rollout-keygen | rollout-holdout`: rollout
from head office (docs/fleet.md Rollout). `register(sub)` adds them to cart-fleet's CLI."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cart_gateway.rollout import Kind

from . import rollout as R


def _central(args) -> R.Central:
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        raise R.RolloutError(f"--broker {args.broker!r}: expected HOST:PORT")
    password = os.environ.get("CART_FLEET_PASSWORD") if args.username else None
    return R.Central(host, int(port), args.username, password, args.cafile)


def _targets(args) -> list[str]:
    if args.all:
        return [R.ALL]
    if not args.store:
        raise R.RolloutError("name the stores: --store S (repeatable) or --all")
    return args.store


def _report(args, kind: Kind, serial: int, targets: list[str]) -> int:
    if not args.wait:
        print(f"serial {serial}: sent to {', '.join(targets)}; `cart-fleet rollout-status {kind.value}` "
              "shows what the stores report")
        return 0
    stores = args.store if args.store else args.expect
    if not stores:
        print("--wait with --all needs --expect S (the stores to wait for)", file=sys.stderr)
        return 2
    got = R.watch_status(_central(args), kind, stores, serial, args.wait)
    bad = 0
    for s in stores:
        doc = got.get(s)
        if doc is None:
            print(f"{s}: no answer for serial {serial} within {args.wait:g} s")
            bad += 1
        else:
            print(R.status_line(doc))
            bad += doc["state"] == "failed"
    return 1 if bad else 0


def _publish(args) -> int:
    kind = Kind(args.kind)
    data = R.artefact(kind, Path(args.file))
    key = R.load_private_key(Path(args.key))
    targets = _targets(args)
    serial = R.next_serial()
    updates = [R.make_update(kind, data, t, key, args.version, serial) for t in targets]
    secs = R.send(_central(args), updates, rate=args.rate)
    print(f"{kind.value} {args.file}: {len(data)} bytes in {len(updates[0].chunks)} chunks to "
          f"{len(targets)} target(s), acknowledged by the central broker in {secs:.2f} s", file=sys.stderr)
    return _report(args, kind, serial, targets)


def _rollback(args) -> int:
    kind = Kind(args.kind)
    key = R.load_private_key(Path(args.key))
    targets = _targets(args)
    serial = R.next_serial()
    R.send(_central(args), [R.make_rollback(kind, t, key, serial) for t in targets])
    return _report(args, kind, serial, targets)


def _status(args) -> int:
    got = R.watch_status(_central(args), Kind(args.kind), None, None, 2.0)
    for s in sorted(got):
        print(json.dumps(got[s], sort_keys=True) if args.json else R.status_line(got[s]))
    return 0


def _keygen(args) -> int:
    priv, pub = R.keygen(Path(args.out), args.name)
    print(f"signing key {priv} (keep at head office, mode 0600); public key {pub} "
          "(each gateway: [rollout] public_keys)")
    return 0


def _holdout(args) -> int:
    from .rollout_holdout import main as holdout_main
    return holdout_main(["--out", args.out, "--scenes", str(args.scenes)])


def _bench(args) -> int:
    from .rollout_bench import main as bench_main
    return bench_main((["--json"] if args.json else []) + ["--catalogue-skus", str(args.catalogue_skus)])


def _broker_args(p) -> None:
    p.add_argument("--broker", default="127.0.0.1:1883", help="the central broker, HOST:PORT")
    p.add_argument("--username", help="MQTT user (password in $CART_FLEET_PASSWORD)")
    p.add_argument("--cafile", help="the chain's CA (TLS)")


def _target_args(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--store", action="append", help="a store id (repeatable)")
    g.add_argument("--all", action="store_true", help="every store (fleet/in/all/...)")
    p.add_argument("--key", required=True, help="the chain's Ed25519 signing key (rollout-keygen)")
    p.add_argument("--wait", type=float, default=0, metavar="S",
                   help="wait up to S seconds for each store's result (exit 1 if one failed or did not answer)")
    p.add_argument("--expect", action="append", help="with --all --wait: a store to wait for (repeatable)")


def _guarded(fn):
    def run(args) -> int:
        try:
            return fn(args)
        except R.RolloutError as e:
            print(f"cart-fleet: {e}", file=sys.stderr)
            return 2
    return run


def register(sub) -> None:
    p = sub.add_parser("publish", help="sign and send a model or catalogue to store gateways")
    p.add_argument("kind", choices=[k.value for k in Kind])
    p.add_argument("file", help="model: a directory with detector.tflite + labels (+ crop, calib) or the "
                   ".tflite; catalogue: the JSON file")
    p.add_argument("--version", help="a label for this version (default: the UTC time)")
    p.add_argument("--rate", type=float, default=R.CHUNK_RATE, help="chunks (8 KiB) a second at most")
    _target_args(p)
    _broker_args(p)
    p.set_defaults(fn=_guarded(_publish))
    p = sub.add_parser("rollback", help="return store gateways to their previous model or catalogue")
    p.add_argument("kind", choices=[k.value for k in Kind])
    _target_args(p)
    _broker_args(p)
    p.set_defaults(fn=_guarded(_rollback))
    p = sub.add_parser("rollout-status", help="each store's retained rollout status")
    p.add_argument("kind", choices=[k.value for k in Kind])
    p.add_argument("--json", action="store_true")
    _broker_args(p)
    p.set_defaults(fn=_guarded(_status))
    p = sub.add_parser("rollout-keygen", help="make the chain's Ed25519 key pair for signing updates")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="rollout")
    p.set_defaults(fn=_guarded(_keygen))
    p = sub.add_parser("rollout-holdout", help="render the held-out scenes a gateway evaluates models on")
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=int, default=64)
    p.set_defaults(fn=_guarded(_holdout))
    p = sub.add_parser("rollout-bench", help="time a model and a catalogue rollout on a local broker + gateway")
    p.add_argument("--catalogue-skus", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_bench)


def main(argv=None) -> int:
    """Standalone entry (the same subcommands as in `cart-fleet`)."""
    ap = argparse.ArgumentParser(prog="cart-fleet", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    register(sub)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
