"""Flashing a rig board: cart-flash for a real one, build_fs for a virtual one."""
from __future__ import annotations

from cart_flash.flash import Flasher, Job


class CartFlashDriver:
    """Copies the firmware and config with cart-flash (mpremote) over the
    board's serial port; the console lets go of the port meanwhile."""

    def __init__(self, board: str, cart: str, port_url: str, console, ca_pem: str | None = None):
        self.board, self.cart, self.url, self.console, self.ca_pem = board, cart, port_url, console, ca_pem

    def flash(self, config: dict) -> None:
        self.console.release()
        try:
            Flasher(Job(board=self.board, cart=self.cart, target=self.url, config=config,
                        verify=False, ca_pem=self.ca_pem), log=lambda s: None).run()
        finally:
            self.console.reopen()


class VirtualFlashDriver:
    def __init__(self, vb):
        self.vb = vb

    def flash(self, config: dict) -> None:
        self.vb.flash(config)
