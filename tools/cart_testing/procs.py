"""The real processes a test started (broker, gateway, web service, fleet parts, helpers):
reading their output within a deadline, and stopping them."""
from __future__ import annotations

import queue
import subprocess
import threading
from typing import IO, AnyStr


def read_line(stream: IO[AnyStr], timeout: float, what: str) -> AnyStr:
    """One line from a child's pipe, or AssertionError naming `what` after `timeout` s: a bare
    readline() waits for ever on a child that is alive but never writes. The reading thread is
    left behind on a timeout; it ends when the child is stopped and the pipe closes."""
    got: queue.Queue = queue.Queue(1)
    threading.Thread(target=lambda: got.put(stream.readline()), daemon=True,
                     name=f"read_line {what}").start()
    try:
        return got.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line from {what} within {timeout:.0f} s") from None


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM, wait up to `timeout` s for a clean exit, then SIGKILL; a no-op if it already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
