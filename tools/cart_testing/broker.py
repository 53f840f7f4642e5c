"""A private Mosquitto on a free loopback port, for tests and benchmarks.

`Broker` is the open broker of the virtual store and the demo (anonymous, on
loopback only: mosquitto-open-virtual-store.conf). `SecureBroker` is the broker
as a store runs it: users and ACL from `cart-flash provision`, client ids bound
to user names (TLS is tested on the Pi's own config: gateway/tests/test_systemd_mosquitto_conf.py)."""
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .procs import stop_process

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
OPEN_CONF = Path(__file__).with_name("mosquitto-open-virtual-store.conf")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port nothing is bound to, picked at random below the kernel's ephemeral
    range: a port the kernel hands out (bind to 0, every client connection's local port)
    could be taken by another test process between this check and the server's bind."""
    low = _ephemeral_low()
    rnd = random.SystemRandom()
    for _ in range(200):
        port = rnd.randrange(20000, low) if low > 21000 else rnd.randrange(low, 65536)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ClosedPort:
    """A loopback port that refuses connections for as long as this object lives: bound,
    never listening, so no other process can start a listener on it meanwhile."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class Broker:
    def __init__(self, tmp: Path, port=None, persistence=False):
        self.tmp = tmp
        self.persistence = persistence
        self.port = port or free_port()
        self._port_chosen_here = port is None  # may move to another free port if this one is taken
        self.proc = None
        self.log = tmp / f"mosquitto-{self.port}.log"

    def _security(self) -> str:
        # The open variant, explicitly named, never shipped to a Pi.
        return OPEN_CONF.read_text().replace("@PORT@", str(self.port))

    def start(self, timeout: float = 30):
        # generous: mosquitto starts in ~20 ms, but a loaded CI machine can stall it for seconds
        for _ in range(5):
            if self._start(timeout):
                self._port_chosen_here = False   # clients know this port now: a restart keeps it
                return self
            if not self._port_chosen_here:
                break
            # the port was taken between free_port() and mosquitto's bind: another one
            self.port = free_port()
            self.log = self.tmp / f"mosquitto-{self.port}.log"
        raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.log}")

    def _start(self, timeout: float) -> bool:
        """True once our mosquitto accepts connections; False if it exited (port in use)."""
        conf = self.tmp / f"mosquitto-{self.port}.conf"
        text = self._security() + self._limits()
        if self.persistence:  # as on the gateway Pi: sessions survive a restart
            text += f"persistence true\npersistence_location {self.tmp}/\n"
            if os.geteuid() == 0:
                # as root mosquitto drops to its own user, which cannot write
                # into pytest's private tmp dir: the session store would be lost
                text += "user root\n"
        else:
            text += "persistence false\n"
        conf.write_text(text)
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                if self.proc.poll() is None:
                    return True
            except OSError:
                time.sleep(0.05)
        stop_process(self.proc, 5)
        self.proc = None
        raise RuntimeError(f"mosquitto did not start on port {self.port} within {timeout} s; see {self.log}")

    def _limits(self) -> str:
        return "max_inflight_messages 0\nmax_queued_messages 100000\n"

    def kill(self):
        """kill -9: no last save of the persistence file (what a power cut does)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        stop_process(self.proc, 5)
        self.proc = None




def add_test_users(prov: Path, users: dict[str, str], extra_users: dict[str, str] | None,
                   extra_acl: str) -> dict[str, str]:
    """Test-only users and ACL lines appended to a provisioned password file and ACL in `prov`."""
    from cart_flash import provision
    users = dict(users)
    if extra_users:
        users.update(extra_users)
        provision.write_passwd(prov / "mosquitto.passwd", users)
    if extra_acl:
        with open(prov / "mosquitto.acl", "a") as f:
            f.write("\n" + extra_acl + "\n")
    return users


class SecureBroker(Broker):
    """Mosquitto configured by `cart-flash provision` (provision.mosquitto_conf):
    no anonymous clients, the generated ACL, use_username_as_clientid.

    carts, gateway, review and **more (web, exits, bench, fleet_bridge): the
    store's users, as for provision.provision.
    extra_users / extra_acl: test-only users appended to the generated files
    (e.g. an auditor that reads and writes everything, to check the ACL)."""

    def __init__(self, tmp: Path, carts=("c001", "c002"), gateway="gw1", review=(), port=None,
                 persistence=False, extra_users: dict[str, str] | None = None,
                 extra_acl: str = "", **more):
        super().__init__(tmp, port, persistence)
        from cart_flash import provision
        self.prov = tmp / f"prov-{self.port}"
        self.creds = provision.provision(self.prov, list(carts), gateway, list(review), **more)
        self.users = add_test_users(self.prov, self.creds["users"], extra_users, extra_acl)

    def _security(self) -> str:
        from cart_flash import provision
        passwd, acl = self.prov / "mosquitto.passwd", self.prov / "mosquitto.acl"
        text = provision.mosquitto_conf(self.port, passwd, acl, bind="127.0.0.1")
        if os.geteuid() == 0 and not self.persistence:
            # as root mosquitto drops to its own user, which cannot read pytest's tmp dir
            text += "user root\n"
        return text
