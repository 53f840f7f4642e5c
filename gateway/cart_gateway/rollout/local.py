"""The operator's side on the gateway: `check-config` checks the keys, `cart-gateway
rollback KIND` swaps the pointers after the previous version loads here."""
from __future__ import annotations

from .checks import Checker
from .manifest import CATALOGUE_FILE, Check, Kind, Refused, load_public_key
from .versions import VersionStore


def check_keys(cfg) -> None:
    """check-config / start: every configured public key loads (ValueError names the file)."""
    for p in cfg.rollout.public_keys:
        try:
            load_public_key(p)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"rollout.public_keys: {p}: {e}") from None


def local_rollback(cfg, kind: Kind) -> str:
    """`cart-gateway rollback KIND`: the previous version is loaded here first (a version that
    no longer loads is refused), then the pointers swap; a running service notices at its
    next tick and switches. Returns a line for the operator; raises Refused."""
    vs = VersionStore(cfg.state_dir, kind)
    p = vs.read()
    if p.current is None and p.previous is None:
        raise Refused(Check.ROLLBACK, f"no {kind.value} was ever installed by rollout: nothing to roll back to")
    target = vs.versions / p.previous if p.previous else None
    checker = Checker(cfg, cfg.rollout, lambda: None, lambda: None)
    if kind is Kind.MODEL:
        checker.load_model(target)
    else:
        from ..catalogue import Catalogue, CatalogueError
        try:
            Catalogue.load(target / CATALOGUE_FILE if target else cfg.catalogue)
        except CatalogueError as e:
            raise Refused(Check.LOAD, str(e)) from None
    p = vs.rollback()
    now = p.versions.get(p.current or "", {"version": "configured", "serial": 0})
    return f"{kind.value}: now {now['version']} (serial {now['serial']}); rollback again to return"
