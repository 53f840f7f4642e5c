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


@pytest.fixture
def gateway(mosquitto, tmp_path):
    """The gateway service as a process on the private broker (detector off)."""
    from cart_testing.gateway import GatewayProcess, write_config
    cfg = write_config(tmp_path / "gateway.toml", mosquitto.port, tmp_path / "gw-state")
    gw = GatewayProcess(cfg, tmp_path / "gateway.log").start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def virtual_boards(mosquitto, tmp_path):
    """A factory of virtual boards on the private broker; all closed at teardown."""
    from cart_sim.virtual_board import VirtualBoard
    boards = []

    def make(board="sim-scale", cart="c001", seed=0, **kw):
        vb = VirtualBoard(board, cart, ("127.0.0.1", mosquitto.port), tmp_path / f"{cart}-{board}", seed=seed, **kw)
        boards.append(vb)
        return vb

    try:
        yield make
    finally:
        for vb in boards:
            vb.close()


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster on a free loopback port (`.dsn`, `.stop()`, `.start()`, `.kill()`)."""
    from cart_testing.postgres import PostgresCluster, PostgresMissing
    try:
        pg = PostgresCluster().start()
    except PostgresMissing as e:
        pytest.fail(str(e))
    try:
        yield pg
    finally:
        pg.destroy()
