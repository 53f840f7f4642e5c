"""`cart-gateway web`, `cart-gateway web-user`, `cart-gateway web-screen-url` (docs/web.md)."""
from __future__ import annotations

import getpass
import sys

from ..config import ConfigError

DEFAULT = "/etc/cart-gateway/web.toml"


def _serve(args) -> int:
    import uvicorn

    from .. import logs
    from .app import build
    from .config import load_web_config
    web, gw = load_web_config(args.config)
    logs.setup(gw.log_level)
    for p in (web.tls_cert, web.tls_key):
        if not p.is_file():
            raise ConfigError(f"{args.config}: TLS file {p} not found (the web service serves HTTPS only)")
    app = build(web, gw)
    uvicorn.run(app, host=web.listen, port=web.port, ssl_certfile=str(web.tls_cert), ssl_keyfile=str(web.tls_key),
                log_level="warning", access_log=False, server_header=False, proxy_headers=False,
                timeout_graceful_shutdown=2)
    return 0


def _accounts(args):
    from .accounts import Accounts
    from .config import load_web_config
    web, _ = load_web_config(args.config)
    return Accounts(web.state_dir / "web.sqlite3", web.session_idle_s, web.session_max_s)


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    a = getpass.getpass("password: ")
    if a != getpass.getpass("again: "):
        raise SystemExit("cart-gateway: the passwords differ")
    return a


def _user(args) -> int:
    from .accounts import AccountError
    acc = _accounts(args)
    try:
        if args.action == "add":
            acc.add_user(args.name, args.role, _password(args))
            print(f"account {args.name} ({args.role}) added")
        elif args.action == "passwd":
            acc.set_password(args.name, _password(args))
            print(f"password of {args.name} changed; its sessions are closed")
        elif args.action == "role":
            acc.set_role(args.name, args.role)
            print(f"{args.name} is now {args.role}; its sessions are closed")
        elif args.action == "remove":
            acc.remove_user(args.name)
            print(f"account {args.name} removed")
        else:
            for name, role, _ in acc.users():
                print(f"{name}\t{role}")
    except (AccountError, ValueError) as e:
        print(f"cart-gateway: {e}", file=sys.stderr)
        return 2
    finally:
        acc.close()
    return 0


def _screen_url(args) -> int:
    from ..protocol import ID_RE
    from .config import load_web_config
    if not ID_RE.match(args.cart):
        print(f"cart-gateway: cart id {args.cart!r} is not [a-z0-9][a-z0-9-]{{0,31}}", file=sys.stderr)
        return 2
    web, _ = load_web_config(args.config)
    acc = _accounts(args)
    try:
        print(f"https://{web.listen}:{web.port}/screen/{args.cart}?key={acc.screen_key(args.cart)}")
    finally:
        acc.close()
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("web", help="run the staff web service (review station, store view, cart screens)")
    p.add_argument("--config", default=DEFAULT)
    p.set_defaults(fn=_serve)
    p = sub.add_parser("web-user", help="manage staff accounts of the web service")
    p.add_argument("action", choices=["add", "passwd", "role", "remove", "list"])
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--role", choices=["reviewer", "supervisor"], default="reviewer")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--config", default=DEFAULT)
    p.set_defaults(fn=_user)
    p = sub.add_parser("web-screen-url", help="print the address a cart's tablet opens (with its screen key)")
    p.add_argument("cart")
    p.add_argument("--config", default=DEFAULT)
    p.set_defaults(fn=_screen_url)
