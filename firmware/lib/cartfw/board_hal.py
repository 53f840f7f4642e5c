# The part of a real board's HAL that every MicroPython port here shares
# (ESP32, ESP32-S3, RP2040 Pico W): reset and its cause, Wi-Fi (STA) with
# backoff and jitter, RSSI, the sensor drivers and TLS. Each family's hal.py
# adds what differs (FAMILY, the watchdog's limits) and re-exports these.
import machine
import network
import random
import time

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

_wlan = None
_CAUSES = {
    getattr(machine, "PWRON_RESET", -1): "power_on",
    getattr(machine, "HARD_RESET", -2): "hard",
    getattr(machine, "WDT_RESET", -3): "wdt",
    getattr(machine, "DEEPSLEEP_RESET", -4): "deepsleep",
    getattr(machine, "SOFT_RESET", -5): "soft",
}


def tasks():
    return []


def hello(board, cart):
    print("hello %s %s" % (board, cart))


def reset(cause="soft"):
    print("reset: %s" % cause)
    time.sleep_ms(100)  # let the console drain
    machine.reset()


def reset_cause():
    return _CAUSES.get(machine.reset_cause(), "unknown")


async def net_up(cfg):
    """Connect Wi-Fi (STA); waits with exponential backoff and jitter between
    attempts. Returns when connected; raises OSError after ~20 s of trying so
    that the MQTT client's own backoff takes over."""
    global _wlan
    if _wlan is None:
        _wlan = network.WLAN(network.STA_IF)
        _wlan.active(True)
        try:
            _wlan.config(pm=0xA11140)  # no power save (CYW43 and ESP32): keeps latency low
        except Exception:
            pass
    if _wlan.isconnected():
        return True
    w = cfg["wifi"]
    delay = 500
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 20000:
        try:
            _wlan.connect(w["ssid"], w["password"])
        except OSError:
            pass
        t1 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t1) < 5000:
            if _wlan.isconnected():
                return True
            await asyncio.sleep_ms(100)
        try:
            _wlan.disconnect()
        except OSError:
            pass
        await asyncio.sleep_ms(delay // 2 + random.getrandbits(16) % (delay // 2 + 1))
        delay = min(delay * 2, 8000)
    raise OSError("wifi: not connected to %s" % w["ssid"])


def rssi():
    try:
        return _wlan.status("rssi") if _wlan is not None and _wlan.isconnected() else None
    except Exception:
        return None


def hx711(cfg):
    import hx711_drv  # the scale app's driver (not frozen into camera images)
    return hx711_drv.open(cfg)


def camera(cfg):
    import camera_drv
    return camera_drv.open(cfg)


def ssl_context(cfg):
    from cartfw.tls import context
    return context(cfg)
