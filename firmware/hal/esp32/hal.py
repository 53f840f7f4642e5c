# HAL for ESP32 and ESP32-S3 boards (family "esp32"): machine.WDT, plus the
# shared board HAL (cartfw/board_hal.py): Wi-Fi with backoff and jitter,
# littlefs flash at "/".
import machine

from cartfw.board_hal import camera, hello, hx711, net_up, reset, reset_cause, rssi, ssl_context, tasks  # noqa: F401

FAMILY = "esp32"
HAS_TLS = True


def WDT(timeout=8000):
    return machine.WDT(timeout=timeout)
