"""The store catalogue: one record per SKU (schema in docs/catalogue.md).

Stdlib only, so every part of the gateway (and the simulator) can load it.
A real store replaces data/catalogue.json with its own file of the same schema.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_PATH = Path(__file__).parent / "data" / "catalogue.json"
SHAPES = ("box", "bottle", "can", "bag", "produce")
SCHEMA_VERSION = 1


class CatalogueError(ValueError):
    """A catalogue file is missing, unreadable or has a bad field."""


def ean13_check_digit(first12: str) -> int:
    """GS1 check digit: weights 1,3,1,3... from the left over 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def ean13_valid(code: str) -> bool:
    return (isinstance(code, str) and len(code) == 13 and code.isdigit()
            and ean13_check_digit(code[:12]) == int(code[12]))


@dataclass(frozen=True)
class Sku:
    sku: str            # e.g. "SKU0001"
    name: str
    brand: str
    family: str         # look-alike family id
    variant: str
    shape: str          # box|bottle|can|bag|produce
    ean13: str
    price_cents: int    # per unit, or per kg when sold_by_weight
    sold_by_weight: bool
    net_g: float        # nominal net weight (0 for produce)
    tare_g: float       # packaging weight
    weight_mean_g: float  # expected gross weight of one unit
    weight_sd_g: float    # per-pack spread (EU e-mark derived)
    # Optional rendering hints (colours, logo, ...); ignored by the gateway.
    look: dict | None = None


_REQUIRED = {f.name: f.type for f in fields(Sku) if f.name != "look"}
_TYPES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def _check_record(i: int, rec: object, where: str) -> Sku:
    if not isinstance(rec, dict):
        raise CatalogueError(f"{where}: items[{i}] is not an object")
    name = rec.get("sku", f"items[{i}]")
    for key, typ in _REQUIRED.items():
        if key not in rec:
            raise CatalogueError(f"{where}: {name}: missing field '{key}'")
        want = _TYPES[typ]
        val = rec[key]
        if isinstance(val, bool) and typ != "bool" or not isinstance(val, want):
            raise CatalogueError(f"{where}: {name}: field '{key}' must be {typ}, got {val!r}")
    unknown = set(rec) - set(_REQUIRED) - {"look"}
    if unknown:
        raise CatalogueError(f"{where}: {name}: unknown field(s) {sorted(unknown)}")
    if rec["shape"] not in SHAPES:
        raise CatalogueError(f"{where}: {name}: field 'shape' must be one of {SHAPES}, got {rec['shape']!r}")
    if not ean13_valid(rec["ean13"]):
        raise CatalogueError(f"{where}: {name}: field 'ean13' is not a valid EAN-13: {rec['ean13']!r}")
    if rec["price_cents"] < 0:
        raise CatalogueError(f"{where}: {name}: field 'price_cents' must be >= 0")
    for key in ("net_g", "tare_g", "weight_mean_g", "weight_sd_g"):
        if rec[key] < 0:
            raise CatalogueError(f"{where}: {name}: field '{key}' must be >= 0")
    if rec["weight_mean_g"] <= 0:
        raise CatalogueError(f"{where}: {name}: field 'weight_mean_g' must be > 0")
    look = rec.get("look")
    if look is not None and not isinstance(look, dict):
        raise CatalogueError(f"{where}: {name}: field 'look' must be an object")
    return Sku(**{k: (float(v) if _REQUIRED.get(k) == "float" else v) for k, v in rec.items()})


class Catalogue:
    def __init__(self, items: list[Sku], source: str = "<memory>"):
        self.source = source
        self._items: dict[str, Sku] = {}
        self._by_ean: dict[str, Sku] = {}
        for s in items:
            if s.sku in self._items:
                raise CatalogueError(f"{source}: duplicate sku {s.sku!r}")
            if s.ean13 in self._by_ean:
                raise CatalogueError(f"{source}: {s.sku}: duplicate ean13 {s.ean13} (also {self._by_ean[s.ean13].sku})")
            self._items[s.sku] = s
            self._by_ean[s.ean13] = s

    @classmethod
    def load(cls, path=None) -> "Catalogue":
        """Load a catalogue file; None = the packaged default data/catalogue.json."""
        p = Path(path) if path is not None else DEFAULT_PATH
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogueError(f"catalogue file not found: {p}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CatalogueError(f"cannot read catalogue {p}: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
            raise CatalogueError(f"{p}: top level must be an object with an 'items' list")
        if doc.get("schema") != SCHEMA_VERSION:
            raise CatalogueError(f"{p}: field 'schema' must be {SCHEMA_VERSION}, got {doc.get('schema')!r}")
        items = [_check_record(i, r, str(p)) for i, r in enumerate(doc["items"])]
        if not items:
            raise CatalogueError(f"{p}: 'items' is empty")
        return cls(items, str(p))

    def to_json(self) -> str:
        from dataclasses import asdict
        return json.dumps({"schema": SCHEMA_VERSION, "items": [asdict(s) for s in self]}, indent=1)

    def __getitem__(self, sku: str) -> Sku:
        return self._items[sku]

    def __contains__(self, sku: object) -> bool:
        return sku in self._items

    def __iter__(self):
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def by_ean(self, ean13: str) -> Sku | None:
        return self._by_ean.get(ean13)

    def skus(self) -> list[str]:
        return list(self._items)
