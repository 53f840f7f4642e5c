# Protocol v1 encoders and decoders for the board side (docs/protocol.md).
# Pure logic: runs identically under MicroPython and CPython.
import json

V = 1
FW = "0.1.0"
EVENT_MAX = 1024  # §6, §8, §4: encoded size limit of events, telemetry, birth
CMD_MAX = 4096  # §9
BOARDS = ("scale", "cam")


class ProtoError(ValueError):
    pass


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def valid_id(s):
    # §1: [a-z0-9][a-z0-9-]{0,31}
    if not isinstance(s, str) or not 1 <= len(s) <= 32:
        return False
    for i, c in enumerate(s):
        if not ("a" <= c <= "z" or "0" <= c <= "9" or (c == "-" and i > 0)):
            return False
    return True


def is_ipv4(s):
    """True for a dotted-quad IPv4 literal: resolving one needs no DNS query,
    so getaddrinfo returns at once instead of blocking the asyncio loop.
    Here, not in config or ntp: config is unloaded after boot, ntp is
    loaded only when enabled."""
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not 0 < len(p) <= 3:
            return False
        for c in p:
            if not "0" <= c <= "9":
                return False
        if int(p) > 255:
            return False
    return True


def topic(cart, board, suffix):
    # §2: carts/<cart>/<board>/<suffix>
    return "carts/%s/%s/%s" % (cart, board, suffix)


def client_id(cart, board):
    return "cart-%s-%s" % (cart, board)


def identity(cart, board, epoch, seq, inst=None):
    # §5
    if inst:
        return "%s/%s/%s/%d/%d" % (cart, board, inst, epoch, seq)
    return "%s/%s/%d/%d" % (cart, board, epoch, seq)


# §3, §5: this board's instance id (16 hex digits minted at its first boot and kept on
# its flash), set once by the runtime; None = not sent (simulators, older firmware).
# One board per interpreter, so a module value rather than a parameter on every encoder.
INSTANCE = None


def common(cart, board, epoch, clock):
    # §3; clock = (mono_ms, wall_ms or None, synced)
    mono, wall, synced = clock
    if not synced:
        wall = None
    d = {"v": V, "cart": cart, "board": board, "epoch": epoch,
         "mono_ms": mono, "wall_ms": wall, "synced": bool(synced)}
    if INSTANCE is not None:
        d["inst"] = INSTANCE
    return d


def _check_size(b, what, limit=EVENT_MAX):
    if len(b) > limit:
        raise ProtoError("%s: encoded size %d exceeds %d bytes" % (what, len(b), limit))
    return b


def encode_event(cart, board, epoch, seq, typ, fields, clock):
    # §6: common fields + seq + type + the type's fields
    if not isinstance(typ, str) or not typ:
        raise ProtoError("event.type: must be a non-empty string")
    if not isinstance(seq, int) or seq < 1:
        raise ProtoError("event.seq: must be an int >= 1")
    d = common(cart, board, epoch, clock)
    for k in fields:
        if k in d or k in ("seq", "type"):
            raise ProtoError("event.%s: field name is reserved" % k)
        d[k] = fields[k]
    d["seq"] = seq
    d["type"] = typ
    return _check_size(_dumps(d), "event " + typ)


def encode_error(cart, board, epoch, seq, code, detail, clock):
    # §6.4: detail is at most 200 characters
    return encode_event(cart, board, epoch, seq, "error",
                        {"code": str(code), "detail": str(detail)[:200]}, clock)


def encode_status(cart, board, epoch, clock, online, mode="normal", reason=None):
    # §4: birth (online) or last will (offline)
    d = common(cart, board, epoch, clock)
    d["state"] = "online" if online else "offline"
    d["fw"] = FW
    d["mode"] = mode
    d["reason"] = None if reason is None else str(reason)[:200]
    return _check_size(_dumps(d), "status")


def encode_tele(cart, board, epoch, clock, fields):
    # §8
    d = common(cart, board, epoch, clock)
    for k in fields:
        d[k] = fields[k]
    d["fw"] = FW
    return _check_size(_dumps(d), "telemetry")


def decode_cmd(payload):
    # §9: {"v":1,"id":str(1..40),"cmd":str,"args":object} -> (id, cmd, args)
    if len(payload) > CMD_MAX:
        raise ProtoError("cmd: payload of %d bytes exceeds %d" % (len(payload), CMD_MAX))
    try:
        d = json.loads(payload)
    except (ValueError, UnicodeError):
        raise ProtoError("cmd: payload is not valid JSON")
    if not isinstance(d, dict):
        raise ProtoError("cmd: payload is not a JSON object")
    if d.get("v") != V:
        raise ProtoError("cmd.v: must be %d" % V)
    cid = d.get("id")
    if not isinstance(cid, str) or not 1 <= len(cid) <= 40:
        raise ProtoError("cmd.id: must be a string of 1 to 40 characters")
    name = d.get("cmd")
    if not isinstance(name, str) or not name:
        raise ProtoError("cmd.cmd: must be a non-empty string")
    args = d.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtoError("cmd.args: must be an object")
    return cid, name, args


def encode_cmd_result(cid, ok, result=None, error=None):
    # §9 result on …/cmd/res
    d = {"v": V, "id": cid, "ok": bool(ok)}
    if ok:
        d["result"] = {} if result is None else result
    else:
        d["error"] = str(error)[:200]
    return _check_size(_dumps(d), "cmd result", CMD_MAX)
