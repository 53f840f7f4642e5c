# Fixtures for the firmware tests; the helpers live in fwtest.py so that test
# modules import them by a name no other conftest.py shadows.
from fwtest import board_factory, subscriber_factory, proxy_factory  # noqa: F401
