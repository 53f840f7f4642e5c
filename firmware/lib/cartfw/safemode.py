# Boot-loop protection. A crash counter on flash is incremented at every boot
# and cleared once the board has run stably for stable_s; when it reaches the
# limit, the board boots into safe mode (online, commands only, no app).
# Also keeps the small "why did we reset" notes.
import os

try:
    from cartfw.journal import read_int, write_atomic
except ImportError:  # pragma: no cover
    from journal import read_int, write_atomic

DIR = "state"
# Why this boot could not write its notes (read-only or full flash), as
# (path, exception), or None.
# begin() never raises for it: the runtime reports it instead (issue 11 §10).
fault = None
CRASHES = DIR + "/crashes"
LASTERR = DIR + "/lasterr"
RESETNOTE = DIR + "/reset"


def _ensure_dir():
    try:
        os.stat(DIR)
    except OSError:
        os.mkdir(DIR)


def _write(path, data):
    """Write a small note; never raises. On a full flash the atomic way (a new
    temp file) has no room, but rewriting the note in place reuses its own
    blocks; a torn counter reads as 0, which only forgives crashes."""
    global fault
    try:
        _ensure_dir()
        write_atomic(path, data)
        return True
    except OSError as e:
        try:
            with open(path, "wb") as f:
                f.write(data)
            return True
        except OSError:
            fault = (path, e)
            return False


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


# Resets that are not the firmware's fault start the count again: a power
# cycle (a person or a power cut) and an operator's reboot command.
CLEAN_CAUSES = ("power_on", "cmd_reboot")


def begin(limit, cause):
    """Called once at boot, before anything risky. Returns (safe, reason)."""
    n = 0 if cause in CLEAN_CAUSES else read_int(CRASHES, 0)
    _write(CRASHES, b"%d\n" % (n + 1))
    if n >= limit:
        last = _read(LASTERR) or "no error recorded (watchdog or power)"
        return True, "%d boots in a row failed before running stably; last: %s" % (n, last[:120])
    return False, None


def stable():
    # The board ran for stable_s: this boot counts as a success.
    _write(CRASHES, b"0\n")


def clear():
    # An explicit reboot command: try a normal boot again.
    _write(CRASHES, b"0\n")


def crashes():
    return read_int(CRASHES, 0)


def note_error(text):
    _write(LASTERR, str(text)[:200].encode())


def note_reset(cause):
    _write(RESETNOTE, str(cause).encode())


def take_reset_note():
    # A reset the firmware asked for itself leaves a note; it wins over the
    # hardware's view (which can only say "soft").
    c = _read(RESETNOTE)
    if c is not None:
        _remove(RESETNOTE)
    return c
