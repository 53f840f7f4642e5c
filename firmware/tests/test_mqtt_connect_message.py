"""A board's console names the broker it could not reach (host:port) with the error."""
import pytest

from cart_testing.broker import ClosedPort
from fwtest import LOADGEN, board_config

pytestmark = pytest.mark.micropython


def test_connect_failure_names_host_and_port(board_factory):
    closed = ClosedPort()  # nothing listens (and nothing can start to): connection refused
    port = closed.port
    b = board_factory(app=LOADGEN)
    b.write_config(board_config(port, app={"rate_hz": 1, "count": 0}))
    try:
        b.start()
        assert b.wait_console(f"mqtt: connect failed to 127.0.0.1:{port}: ", 30), b.text()
        assert "OSError" in b.text()
    finally:
        closed.close()
