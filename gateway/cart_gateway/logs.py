"""Structured logs that journald keeps as fields.

Under systemd (JOURNAL_STREAM set and the journal socket present) each record
goes to journald through its native protocol: a datagram of KEY=value lines,
so `journalctl -o verbose` shows EVENT=, CART=, ... as fields and
`journalctl EVENT=duplicate` filters on them. Elsewhere (tests, a terminal)
the same record is one logfmt line on stderr.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading

IDENT = "cart-gateway"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
_PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

log = logging.getLogger("cart_gateway")


def event(level: int, name: str, msg: str = "", **fields) -> None:
    """Log a structured record: `name` is the EVENT field, `fields` become fields too."""
    log.log(level, msg or name, extra={"cg_event": name, "cg_fields": fields})


def _logfmt_value(v) -> str:
    s = str(v)
    if s == "" or any(c in s for c in ' ="\n\\'):
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


class LogfmtHandler(logging.Handler):
    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def emit(self, record):
        try:
            fields = [("level", record.levelname.lower()), ("event", getattr(record, "cg_event", "log")),
                      ("msg", record.getMessage())]
            fields += sorted(getattr(record, "cg_fields", {}).items())
            if record.exc_info:
                fields.append(("exc", self.format(record).splitlines()[-1]))
            line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields)
            with self._lock:
                self.stream.write(line + "\n")
                self.stream.flush()
        except Exception:  # a log line must never take the service down
            self.handleError(record)


class JournalHandler(logging.Handler):
    """journald native protocol (systemd.journal-fields(7)), stdlib only."""

    def __init__(self, path: str = JOURNAL_SOCKET):
        super().__init__()
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @staticmethod
    def _field(key: str, value) -> bytes:
        v = str(value).encode("utf-8", "replace")
        k = key.upper().encode()
        if b"\n" in v:   # binary-safe form: KEY\n<le64 length><value>\n
            return k + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
        return k + b"=" + v + b"\n"

    def emit(self, record):
        try:
            msg = record.getMessage()
            if record.exc_info:
                msg += "\n" + logging.Formatter().formatException(record.exc_info)
            parts = [self._field("MESSAGE", msg), self._field("PRIORITY", _PRIO.get(record.levelno, 6)),
                     self._field("SYSLOG_IDENTIFIER", IDENT),
                     self._field("EVENT", getattr(record, "cg_event", "log"))]
            for k, v in sorted(getattr(record, "cg_fields", {}).items()):
                parts.append(self._field(k, v))
            self.sock.sendto(b"".join(parts), self.path)
        except Exception:
            self.handleError(record)


def setup(level: str = "info", stream=None) -> None:
    root = logging.getLogger("cart_gateway")
    root.handlers.clear()
    root.propagate = False
    if os.environ.get("JOURNAL_STREAM") and os.path.exists(JOURNAL_SOCKET):
        root.addHandler(JournalHandler())
    else:
        root.addHandler(LogfmtHandler(stream))
    root.setLevel(getattr(logging, level.upper()))
