# HAL for virtual boards (family "sim"): the firmware runs in a unix-port
# micropython process; the supervisor plays the hardware over the hardware
# link (CART_SIM_HW, docs/architecture.md). Without a link (a bare test run)
# watchdog feeds are no-ops and reset exits the process with code 3.
import os
import sys

FAMILY = "sim"
HAS_TLS = True  # the unix port has ssl

_link = None


def link():
    # The hardware link client (firmware/hal/sim/hwlink.py), or None.
    global _link
    if _link is None and os.getenv("CART_SIM_HW"):
        try:
            import hwlink
            _link = hwlink.link()
        except ImportError as e:
            print("hal: CART_SIM_HW is set but hwlink is unavailable: %r" % (e,))
            _link = False
    return _link or None


def _send(line):
    lk = link()
    if lk is not None:
        lk.send(line)


def tasks():
    # Coroutines the runtime must run for this HAL (the link's reader).
    lk = link()
    return [lk.poll()] if lk is not None and hasattr(lk, "poll") else []


def _pid():
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return 0


def hello(board, cart):
    _send("hello %s %s %d" % (board, cart, _pid()))


class WDT:
    # Feeds go to the supervisor, which kills and restarts a board that stops.
    def __init__(self, timeout=8000):
        self.timeout = timeout
        _send("wdt %d" % timeout)

    def feed(self):
        _send("feed")


def reset(cause="soft"):
    _send("reset %s" % cause)
    sys.exit(3)


def reset_cause():
    # The supervisor knows why it (re)started us; a bare run is a power-on.
    return os.getenv("CART_SIM_RESET_CAUSE") or "power_on"


async def net_up(cfg):
    # No Wi-Fi to bring up: the host network is always there.
    return True


def rssi():
    return None


def hx711(cfg):
    # The load-cell driver lives with the scale app (hx711_drv.py in this
    # folder); imported lazily so a camera board never pays for it.
    import hx711_drv
    return hx711_drv.open(cfg)


def camera(cfg):
    import camera_drv
    return camera_drv.open(cfg)


def ssl_context(cfg):
    from cartfw.tls import context
    return context(cfg)
