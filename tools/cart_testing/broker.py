"""A private Mosquitto on a free loopback port, for tests and benchmarks."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, tmp: Path, port=None, persistence=False):
        self.tmp = tmp
        self.persistence = persistence
        self.port = port or free_port()
        self.proc = None
        self.log = tmp / f"mosquitto-{self.port}.log"

    def start(self):
        conf = self.tmp / f"mosquitto-{self.port}.conf"
        text = (f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                "max_inflight_messages 0\nmax_queued_messages 100000\n")
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
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.log}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


