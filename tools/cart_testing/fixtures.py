"""pytest fixtures shared by all suites (registered from the root conftest.py).
Each fixture tears down what it started, also when the test fails."""
import os

import pytest

from cart_testing.broker import MOSQUITTO, Broker
from cart_testing.mpy import ToolMissing, micropython_bin


@pytest.fixture
def mosquitto(tmp_path):
    """A private Mosquitto on a free loopback port (`.port`, `.stop()`, `.start()`)."""
    if not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is not installed: run `make setup` (apt-get install mosquitto)")
    b = Broker(tmp_path).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def micropython():
    try:
        return micropython_bin()
    except ToolMissing as e:
        pytest.fail(str(e))
