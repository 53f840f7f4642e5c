"""Scenario files (TOML) for the virtual store: load, validate, name the bad key.

A scenario is a flat set of sections; every key has a default (the `default`
scenario) and a range. `load_scenario("hard")` finds a shipped file under
scenarios/; any other argument is a path. Errors are ScenarioError naming
`section.key`. docs/simulation.md documents every key and its source.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ValueError):
    pass


# section -> key -> (default, lo, hi); bool keys have (default, None, None)
SCHEMA: dict[str, dict[str, tuple]] = {
    "baskets": {
        "mean_items": (14.0, 1.0, 60.0),   # mean basket size (units), truncated to [1, 60]
        "size_shape": (2.0, 0.2, 10.0),    # Gamma shape of the basket size (smaller: more small trips)
        "max_items": (60, 1, 60),
        "units_per_pick_max": (4, 1, 6),   # several units of one SKU at once
        "p_multi_units": (0.08, 0.0, 1.0),
        "p_two_items": (0.05, 0.0, 1.0),   # two different items in one movement
        "p_produce": (0.08, 0.0, 1.0),     # loose produce in a bag
        "p_lookalike": (0.10, 0.0, 1.0),   # next pick from a look-alike family / similar weight
    },
    "behaviour": {
        "p_remove": (0.05, 0.0, 1.0),      # per action: take an item out
        "p_put_back": (0.05, 0.0, 1.0),    # lift an item and put it back
        "p_swap": (0.03, 0.0, 1.0),        # one item out, another in, one movement
        "p_personal": (0.06, 0.0, 1.0),    # a bag, phone or toy
        "p_lean": (0.04, 0.0, 1.0),        # lean on the cart between actions
        "p_push": (0.30, 0.0, 1.0),        # the cart is pushed while the item settles
        "p_bump": (0.05, 0.0, 1.0),        # a knock while the item settles
        "p_hand_rest": (0.06, 0.0, 1.0),   # a hand rests on the item after placing it
        "p_out_of_view": (0.04, 0.0, 1.0), # dropped in outside the camera's view
        "push_amplitude_g": (25.0, 0.0, 500.0),
        "think_s_min": (5.0, 0.5, 600.0),  # time between actions (aisle walking)
        "think_s_max": (40.0, 0.5, 600.0),
    },
    "dishonest": {
        "fraction": (0.02, 0.0, 1.0),      # share of shoppers who cheat
        "p_act": (0.3, 0.0, 1.0),          # per added item, chance a cheater cheats on it
        "w_cover": (1.0, 0.0, 100.0),      # relative mix of the three tricks
        "w_declare_personal": (1.0, 0.0, 100.0),
        "w_label_swap": (1.0, 0.0, 100.0),
    },
    "shopper": {
        "answer_error_rate": (0.01, 0.0, 1.0),
        "answer_s_min": (2.0, 0.0, 120.0),
        "answer_s_max": (8.0, 0.0, 120.0),
    },
    "reviewer": {   # cart_sim/reviewers.py; docs/simulation.md §4 "Reviewer"
        "error_rate": (0.005, 0.0, 1.0),       # a tap on a wrong row of the review page
        "clear_s_median": (30.0, 1.0, 3600.0),  # review opened -> verdict, lognormal (estimate)
        "clear_s_p95": (90.0, 1.0, 3600.0),
        "visit_s_median": (120.0, 1.0, 3600.0),  # added when the page cannot tell: staff walk to the cart
        "visit_s_p95": (300.0, 1.0, 3600.0),
        "p_read_hard": (0.9, 0.0, 1.0),        # a person names the product in an occluded / blurred frame
        "p_read_oov": (0.5, 0.0, 1.0),         # ... in a frame with half the pack out of view
    },
    "camera": {
        "frames_per_burst": (4, 1, 8),
        "p_missed_frame": (0.05, 0.0, 1.0),
        "occlusion_max": (0.3, 0.0, 1.0),   # hand over the item, share of its box
        "blur_max": (0.3, 0.0, 1.0),
        "p_hard_view": (0.15, 0.0, 1.0),    # share of bursts drawn from the occluded/blurred pool
        "pool_per_condition": (8, 1, 64),   # views per SKU and condition, rendered lazily (docs/simulation.md)
        # stills after a placement (docs/camera.md "Stills", "Barcodes on packs")
        "still": (False, None, None),             # off by default until the optics resolve codes (docs/camera.md)
        "still_res": ("UXGA", ("SXGA", "UXGA"), None),
        "still_view_mm": (720.0, 100.0, 2000.0),  # view width at the item's depth (renderer's scale)
        "p_barcode_facing": (0.35, 0.0, 1.0),     # placements whose code faces the camera (estimate)
        "still_min_g": (5.0, 0.0, 1000.0),        # the camera board's app.still_min_g
        "still_pool": (1, 1, 20),                 # pre-rendered stills per SKU and condition
        "still_classifier": (False, None, None),  # the gateway classifies each still too ([detector] still_classifier)
    },
    "sensor": {
        "noise_g": (1.0, 0.0, 5.0),         # HX711 rms at 80 SPS, 0.5-1.5 g for cart cells
        "spike_rate": (0.02, 0.0, 0.2),     # 2^n-1 reads, 1-5 %
        "drift_g_per_h": (10.0, 0.0, 60.0), # up to ~30 g over hours
    },
}


def _check(section: str, key: str, value, spec):
    dflt, lo, hi = spec
    name = f"{section}.{key}"
    if isinstance(dflt, str):   # lo: the allowed values
        if value not in lo:
            raise ScenarioError(f"scenario key {name}: must be one of {', '.join(lo)}, got {value!r}")
        return value
    if isinstance(dflt, bool):
        if not isinstance(value, bool):
            raise ScenarioError(f"scenario key {name}: must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"scenario key {name}: must be a number, got {value!r}")
    if isinstance(dflt, int) and not isinstance(dflt, bool) and not float(value).is_integer():
        raise ScenarioError(f"scenario key {name}: must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ScenarioError(f"scenario key {name}: {value!r} not in {lo}..{hi}")
    return int(value) if isinstance(dflt, int) else float(value)


def validate(data: dict, name: str = "<scenario>") -> dict:
    """Full scenario dict (defaults filled in); ScenarioError names the bad key."""
    out = {"name": name, "description": ""}
    for k, v in data.items():
        if k == "name":
            if not isinstance(v, str):
                raise ScenarioError("scenario key name: must be a string")
            out["name"] = v
        elif k == "description":
            if not isinstance(v, str):
                raise ScenarioError("scenario key description: must be a string")
            out["description"] = v
        elif k not in SCHEMA:
            raise ScenarioError(f"scenario key {k}: unknown section (known: {', '.join(SCHEMA)})")
        elif not isinstance(v, dict):
            raise ScenarioError(f"scenario key {k}: must be a table")
    for sec, keys in SCHEMA.items():
        given = data.get(sec, {})
        for k in given:
            if k not in keys:
                raise ScenarioError(f"scenario key {sec}.{k}: unknown key")
        out[sec] = {k: _check(sec, k, given[k], spec) if k in given else spec[0]
                    for k, spec in keys.items()}
    b = out["behaviour"]
    if b["think_s_min"] > b["think_s_max"]:
        raise ScenarioError("scenario key behaviour.think_s_min: larger than think_s_max")
    s = out["shopper"]
    if s["answer_s_min"] > s["answer_s_max"]:
        raise ScenarioError("scenario key shopper.answer_s_min: larger than answer_s_max")
    r = out["reviewer"]
    for a in ("clear", "visit"):
        if r[f"{a}_s_median"] > r[f"{a}_s_p95"]:
            raise ScenarioError(f"scenario key reviewer.{a}_s_median: larger than {a}_s_p95")
    if sum(out["dishonest"][k] for k in ("w_cover", "w_declare_personal", "w_label_swap")) <= 0:
        raise ScenarioError("scenario key dishonest.w_cover: the three trick weights sum to 0")
    return out


def _parse_override(o: str, flag: str, example: str) -> tuple[str, str, object]:
    """`section.key=VALUE` (VALUE in TOML syntax, e.g. 2.0, true, "x") -> (section, key, value)."""
    key, eq, text = o.partition("=")
    sec, dot, k = key.strip().partition(".")
    if not eq or not dot or not sec or not k:
        raise ScenarioError(f"{flag} {o!r}: expected section.key=VALUE, e.g. {example}")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()          # a bare word: a string
    return sec, k, value


def apply_overrides(data: dict, overrides=()) -> dict:
    """`cart-sim bench --set section.key=VALUE` (VALUE in TOML syntax, e.g. 2.0, true, "x"):
    the scenario's data with each override applied; validate() then checks it like any key."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for o in overrides:
        sec, k, value = _parse_override(o, "--set", "sensor.noise_g=2.0")
        sect = out.setdefault(sec, {})
        if not isinstance(sect, dict):
            raise ScenarioError(f"--set {o!r}: {sec} is not a section")
        sect[k] = value
    return out


def gateway_overrides(overrides=()) -> dict:
    """`cart-sim bench --gateway section.key=VALUE`: the gateway's own configuration for the run
    (its config file's sections, e.g. reconcile.accept_posterior=0.9), to measure a threshold's
    effect on the store's figures. Checked by the gateway's parse_config: a bad key or value is a
    ScenarioError naming it."""
    from cart_gateway.config import ConfigError, parse_config
    out: dict = {}
    for o in overrides:
        sec, k, value = _parse_override(o, "--gateway", "reconcile.accept_posterior=0.9")
        if sec in ("gateway_id", "state_dir", "carts"):
            raise ScenarioError(f"--gateway {o!r}: {sec} is the simulator's own, not a setting to measure")
        sect = out.setdefault(sec, {})
        if not isinstance(sect, dict):
            raise ScenarioError(f"--gateway {o!r}: {sec} is not a section")
        sect[k] = value
    if out:
        try:
            parse_config({"gateway_id": "sim", **out}, where="--gateway")
        except ConfigError as e:
            raise ScenarioError(str(e)) from None
    return out


def load_scenario(name_or_path: str, overrides=()) -> dict:
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = SHIPPED / f"{name_or_path}.toml"
        if not p.exists():
            known = ", ".join(sorted(x.stem for x in SHIPPED.glob("*.toml")))
            raise ScenarioError(f"scenario {name_or_path!r}: no such file or shipped scenario ({known})")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"scenario {str(p)!r}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"scenario {str(p)!r}: not valid TOML: {e}") from None
    sc = validate(apply_overrides(data, overrides), name=p.stem)
    if overrides:
        sc["overrides"] = list(overrides)     # reported in the bench JSON: the run is not the shipped scenario
    return sc
