# config.json: load, validate, update atomically. Pure logic apart from file I/O
# (relative paths: the board's working directory is its flash root).
# Runs identically under MicroPython and CPython.
import json
import os

try:
    from cartfw.proto import is_ipv4, valid_id
except ImportError:  # pragma: no cover
    from proto import is_ipv4, valid_id

PATH = "config.json"
GOOD_PATH = "config.good.json"  # last config that validated: safe-mode connectivity


class ConfigError(ValueError):
    # .field names the offending key, dotted (e.g. "broker.port")
    def __init__(self, field, msg):
        super().__init__("config %s: %s" % (field, msg))
        self.field = field


# key: (type, required, default, check or None, description of check)
# Nested dicts are described by a nested spec. Unknown keys are errors: a typo
# must not silently fall back to a default.
def _port(v):
    return 1 <= v <= 65535


def _pos(v):
    return v > 0


def _nonneg(v):
    return v >= 0


_BROKER = {
    "host": (str, True, None, lambda v: 0 < len(v) <= 253, "a host name or address"),
    "port": (int, False, 1883, _port, "1..65535"),
    "user": (str, False, None, None, None),
    "password": (str, False, None, None, None),
    "tls": (bool, False, False, None, None),
    "tls_verify": (bool, False, True, None, None),
    "ca_file": (str, False, None, None, None),
    "keepalive_s": (int, False, 30, lambda v: 2 <= v <= 600, "2..600"),
    "ack_ms": (int, False, 5000, lambda v: 200 <= v <= 60000, "200..60000"),
}
_WIFI = {
    "ssid": (str, True, None, lambda v: 0 < len(v) <= 32, "1..32 characters"),
    "password": (str, False, "", lambda v: len(v) <= 64, "at most 64 characters"),
}
_CAL = {
    "offset": (int, False, 0, None, None),
    "scale": (float, False, 1.0, lambda v: v != 0, "non-zero counts per gram"),
}
_JOURNAL = {
    "max_bytes": (int, False, 65536, lambda v: v >= 4096, ">= 4096"),
    # a segment is read whole at boot (repair, depth count): keep it small for a 96 KB heap
    "segment_bytes": (int, False, 8192, lambda v: 1024 <= v <= 16384, "1024..16384"),
}
_NTP = {
    "enabled": (bool, False, True, None, None),
    # None: the broker's host (the store's gateway Pi serves time too). An IP
    # only: a name would need a DNS lookup, which blocks the loop.
    "host": (str, False, None, is_ipv4, "an IPv4 address such as 192.168.10.2, not a name"),
    "port": (int, False, 123, _port, "1..65535"),
    "period_s": (int, False, 3600, lambda v: 60 <= v <= 86400, "60..86400"),
    "timeout_ms": (int, False, 2000, lambda v: 200 <= v <= 10000, "200..10000"),
}
SPEC = {
    "cart": (str, True, None, valid_id, "[a-z0-9][a-z0-9-]{0,31}"),
    "board": (str, True, None, lambda v: v in ("scale", "cam"), "scale or cam"),
    "wifi": (_WIFI, False, None, None, None),
    "broker": (_BROKER, True, None, None, None),
    "calibration": (_CAL, False, None, None, None),
    "journal": (_JOURNAL, False, None, None, None),
    "ntp": (_NTP, False, None, None, None),
    "test_hooks": (bool, False, False, None, None),
    "tele_s": (int, False, 30, lambda v: 1 <= v <= 3600, "1..3600"),
    "wdt_ms": (int, False, 8000, lambda v: 1000 <= v <= 8388, "1000..8388 (RP2040 max)"),
    "stable_s": (int, False, 30, lambda v: 1 <= v <= 3600, "1..3600"),
    "crash_limit": (int, False, 3, lambda v: 1 <= v <= 20, "1..20"),
    "backoff_max_s": (int, False, 60, lambda v: 1 <= v <= 3600, "1..3600"),
    "app": (dict, False, None, None, None),  # free-form settings of the board app
}


def _typename(t):
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            dict: "an object"}.get(t, "an object")


def _validate(d, spec, prefix):
    if not isinstance(d, dict):
        raise ConfigError(prefix or "config", "must be an object")
    for k in d:
        if k not in spec:
            raise ConfigError(prefix + k, "unknown key")
    out = {}
    for k in spec:
        typ, required, default, check, what = spec[k]
        name = prefix + k
        if k not in d or d[k] is None:
            if required:
                raise ConfigError(name, "missing (required)")
            if isinstance(typ, dict):
                out[k] = _validate({}, typ, name + ".") if not _has_required(typ) else None
            else:
                out[k] = default
            continue
        v = d[k]
        if isinstance(typ, dict):
            out[k] = _validate(v, typ, name + ".")
            continue
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        # bool is a subclass of int under CPython: reject it where a number is meant
        if not isinstance(v, typ) or (typ in (int, float) and isinstance(v, bool)):
            raise ConfigError(name, "must be %s, got %r" % (_typename(typ), v))
        if check is not None and not check(v):
            raise ConfigError(name, "invalid value %r (expected %s)" % (v, what))
        out[k] = v
    return out


def _has_required(spec):
    for k in spec:
        if spec[k][1]:
            return True
    return False


def validate(d, need_wifi=False):
    """Return a complete config dict (defaults filled in) or raise ConfigError."""
    cfg = _validate(d, SPEC, "")
    if need_wifi and cfg["wifi"] is None:
        raise ConfigError("wifi", "missing (required on this board)")
    b = cfg["broker"]
    if b["ca_file"] is not None and not b["tls"]:
        raise ConfigError("broker.ca_file", "set but broker.tls is false")
    if b["tls"] and b["tls_verify"] and b["ca_file"] is None:
        raise ConfigError("broker.ca_file", "required when broker.tls and broker.tls_verify are true")
    return cfg


def parse(text):
    try:
        d = json.loads(text)
    except ValueError:
        raise ConfigError("config.json", "is not valid JSON")
    return d


def load(path=PATH, need_wifi=False):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("config.json", "missing (no file %s)" % path)
    return validate(parse(text), need_wifi)


def load_raw(path):
    # The stored (not default-filled) dict, or None.
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def write_atomic(path, data):
    # write-temp + rename: a power cut leaves the old or the new file, never half.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.rename(tmp, path)


def apply_set(raw, updates, need_wifi=False):
    """Apply {"key" or "a.b": value} to the raw config dict.

    Returns (new_raw, validated_cfg, applied_keys); raises ConfigError naming
    the bad key, in which case nothing is changed."""
    if not isinstance(updates, dict) or not updates:
        raise ConfigError("set", "must be a non-empty object")
    new = json.loads(json.dumps(raw))  # deep copy, portable
    keys = []
    for key in updates:
        parts = key.split(".")
        node = new
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        if updates[key] is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = updates[key]
        keys.append(key)
    cfg = validate(new, need_wifi)
    return new, cfg, sorted(keys)


def redacted(cfg):
    # A copy safe to print or publish: secrets replaced.
    out = json.loads(json.dumps(cfg))
    for sect, key in (("broker", "password"), ("wifi", "password")):
        if isinstance(out.get(sect), dict) and out[sect].get(key):
            out[sect][key] = "***"
    return out
