"""`cart-gateway`: run the service, check a config, replay a trace."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import sys

from .config import ConfigError, load_config


def _banner(cfg, config_path: str) -> None:
    from .logs import event
    from .preflight import model_description
    from .service import VERSION
    broker = f"{cfg.mqtt.host}:{cfg.mqtt.port}"
    model = model_description(cfg)
    event(logging.INFO, "start", f"cart-gateway {VERSION} starting: config {config_path}, broker {broker}, "
          f"model {model}, state dir {cfg.state_dir}", version=VERSION, config=config_path, broker=broker,
          model=model, state_dir=str(cfg.state_dir))


def _run(args) -> int:
    from . import logs, preflight
    from .mqtt_client import Runner
    cfg = load_config(args.config)
    logs.setup(cfg.log_level)
    _banner(cfg, args.config)
    problems = preflight.check_all(cfg, detector=False)
    if problems:
        raise preflight.StartupError("; ".join(problems))
    detector = preflight.load_detector(cfg)
    try:
        runner = Runner(cfg, detector=detector)
        runner.start()
    except (OSError, sqlite3.Error, ValueError) as e:   # state dir, database, metrics port taken since the check
        raise preflight.StartupError(f"{type(e).__name__}: {e}") from None
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    runner.run()
    return 0


def _check(args) -> int:
    from .preflight import check_all, model_description
    cfg = load_config(args.file)
    problems = check_all(cfg)
    for p in problems:
        print(f"cart-gateway: {args.file}: {p}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.file}: OK (gateway {cfg.gateway_id}, broker {cfg.mqtt.host}:{cfg.mqtt.port}, "
          f"model {model_description(cfg)}, state {cfg.state_dir})")
    return 0


def _replay(args) -> int:
    from .protocol import ID_RE, ProtocolError
    from .replay import replay_file
    if args.gateway_id is not None and not ID_RE.match(args.gateway_id):
        print(f"cart-gateway: --gateway-id {args.gateway_id!r} is not [a-z0-9][a-z0-9-]{{0,31}}", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    score = _truth_scorer(args.truth, cfg) if args.truth else None
    try:
        result = replay_file(args.trace, cfg, args.state_dir, gateway_id=args.gateway_id)
    except ProtocolError as e:     # a malformed trace (§14): say which line and field
        print(f"cart-gateway: {args.trace}: {e}", file=sys.stderr)
        return 2
    for line in result["summary"]["lines"]:
        print(line, file=sys.stderr)
    if score is not None:
        result["score"], lines = score(result)
        print(f"against {args.truth}:", file=sys.stderr)
        for line in lines:
            print("  " + line, file=sys.stderr)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    if result["summary"]["nothing_accepted"]:
        print(f"cart-gateway: {args.config} accepted none of the trace's carts: nothing was replayed",
              file=sys.stderr)
        return 1
    return 0


def _rollback(args) -> int:
    from .rollout import Kind, Refused, local_rollback
    cfg = load_config(args.config)
    try:
        print(local_rollback(cfg, Kind(args.kind)))
    except Refused as e:
        print(f"cart-gateway: rollback {args.kind}: {e.reason}", file=sys.stderr)
        return 1
    return 0


def _truth_scorer(path: str, cfg):
    """score(result) -> (figures, lines): the replay against `cart-sim trace`'s truth.json, scored by
    the bench's own code (a development tool: not part of the gateway's install)."""
    try:
        from cart_sim.bench import HEADLINE, figure_lines, score_replay
    except ImportError:
        raise ConfigError("--truth scores with the simulator's bench (cart_sim), which is not installed here: "
                          "run it from the development install (pip install -e . in the repository)") from None
    from .catalogue import Catalogue
    try:
        with open(path, encoding="utf-8") as f:
            truth = json.load(f)
        baskets = truth["baskets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--truth {path}: not a truth.json from cart-sim trace ({type(e).__name__}: {e})") from None
    if not baskets:
        raise ConfigError(f"--truth {path}: no baskets")
    catalogue = Catalogue.load(cfg.catalogue)

    def score(result):
        try:
            figures = score_replay(result, truth, catalogue)
        except (ValueError, KeyError) as e:
            raise ConfigError(f"--truth {path}: {e}") from None
        return figures, figure_lines(figures, HEADLINE)
    return score


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="cart-gateway", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the gateway service")
    p.add_argument("--config", default="/etc/cart-gateway/gateway.toml")
    p.set_defaults(fn=_run)
    p = sub.add_parser("check-config", help="validate a config file and exit")
    p.add_argument("file")
    p.set_defaults(fn=_check)
    p = sub.add_parser("replay", help="run the handlers on a recorded trace (protocol §14), no broker")
    p.add_argument("trace")
    p.add_argument("--config", required=True)
    p.add_argument("--out", help="RESULT.json (default: stdout)")
    p.add_argument("--state-dir", help="state directory for the replay (default: a temporary one)")
    p.add_argument("--truth", help="truth.json written with the trace by `cart-sim trace`: score the replay "
                   "against it as `cart-sim bench` does")
    p.add_argument("--gateway-id", help="the gateway id the trace was recorded against (default: the trace "
                   "header's gateway_id, else the one id in its gateway/<gw>/ topics, else the config's)")
    p.set_defaults(fn=_replay)
    p = sub.add_parser("rollback", help="return to the previous rolled-out model or catalogue (docs/fleet.md)")
    p.add_argument("kind", choices=["model", "catalogue"])
    p.add_argument("--config", default="/etc/cart-gateway/gateway.toml")
    p.set_defaults(fn=_rollback)
    from .web.cli import add_parsers as add_web_parsers     # `web`, `web-user`, `web-screen-url` (docs/web.md)
    add_web_parsers(sub)
    args = ap.parse_args(argv)
    from .preflight import StartupError
    try:
        return args.fn(args)
    except (ConfigError, StartupError) as e:   # one clear line (or the config's key list), no traceback
        print(f"cart-gateway: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
