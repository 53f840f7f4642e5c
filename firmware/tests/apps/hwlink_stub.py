# Test stand-in for the lead's firmware/hal/sim/hwlink.py (same surface:
# link() -> object with send(line)); only the board -> supervisor lines the
# watchdog test needs. Connects to the Unix socket in CART_SIM_HW.
import os
import socket

_l = None


class _Link:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # the unix port takes a raw sockaddr_un: family (native u16) + path + NUL
        import struct
        self.s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0")

    def send(self, line):
        try:
            self.s.send((line + "\n").encode())
        except OSError:
            pass

    def take_sample(self):
        return None

    def take_frame(self):
        return None


def link():
    global _l
    if _l is None:
        _l = _Link(os.getenv("CART_SIM_HW"))
    return _l
