"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.

A path starting with '@' is in the abstract namespace (a leading NUL byte).
Without NOTIFY_SOCKET (not under systemd) every call does nothing.
"""
from __future__ import annotations

import os
import socket


def _address(path: str):
    return "\0" + path[1:] if path.startswith("@") else path


def sd_notify(state: str, env=None) -> bool:
    """Send e.g. "READY=1" or "WATCHDOG=1"; True if it was sent."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(_address(path))
        s.sendall(state.encode())
    return True


def watchdog_interval_s(env=None) -> float | None:
    """Half of WATCHDOG_USEC (systemd asks for pings well within it), or None when not armed."""
    e = env if env is not None else os.environ
    usec = e.get("WATCHDOG_USEC")
    pid = e.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2.0
    except ValueError:
        return None
