# Reporting a flash that refused a write (read-only, full, I/O error; issue 11
# §10). Imported only when that first happens, so a healthy board keeps this
# code out of its RAM (under the unix port bytecode lives in the heap).
from cartfw import proto

_ERRNO = {5: "EIO", 13: "EACCES", 28: "ENOSPC", 30: "EROFS"}


def why(e):
    """A flash error as text that says what it was: "OSError EROFS" (MicroPython's
    str() of an OSError is just the number)."""
    if isinstance(e, OSError) and e.args:
        n = e.args[0]
        return "OSError %s" % _ERRNO.get(n, n)
    return str(e)


def report(rt, where, exc):
    new = rt.flash_fault is None
    rt.flash_fault = ("%s: %s" % (where, why(exc)))[:120]
    if new:
        rt.log("flash: %s; the board carries on, journaled events are kept" % rt.flash_fault)
        # Not journaled: the journal is what failed. Its own seq, so the
        # gateway sees a gap rather than a duplicate if it is lost.
        rt.seq += 1
        rt._fault_report = proto.encode_error(rt.cart, rt.board, rt.epoch, rt.seq, "flash_error",
                                              rt.flash_fault, rt.clock())
        rt._wake.set()
