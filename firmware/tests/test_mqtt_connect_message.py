"""A board's console names the broker it could not reach (host:port) with the error."""
import pytest

from fwtest import LOADGEN, board_config, free_port

pytestmark = pytest.mark.micropython


def test_connect_failure_names_host_and_port(board_factory):
    port = free_port()  # nothing listens: connection refused
    b = board_factory(app=LOADGEN)
    b.write_config(board_config(port, app={"rate_hz": 1, "count": 0}))
    b.start()
    assert b.wait_console(f"mqtt: connect failed to 127.0.0.1:{port}: ", 15), b.text()
    assert "OSError" in b.text()
