# HAL for the Raspberry Pi Pico W (family "rp2040"): machine.WDT (at most
# 8388 ms), plus the shared board HAL (cartfw/board_hal.py): network.WLAN
# (CYW43) with backoff and jitter, littlefs flash at "/".
import machine

from cartfw.board_hal import camera, hello, hx711, net_up, reset, reset_cause, rssi, ssl_context, tasks  # noqa: F401

FAMILY = "rp2040"
HAS_TLS = True


def WDT(timeout=8000):
    return machine.WDT(timeout=min(timeout, 8388))  # RP2040 hardware limit
