"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks
(Debian's postgresql package: initdb / pg_ctl of the newest installed major).

PostgreSQL refuses to run as root; as root the cluster runs as the `postgres`
system user in a directory it owns (pytest's tmp dirs are private to root)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cart_testing.broker import free_port


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PostgresMissing(RuntimeError):
    pass


def pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    w = shutil.which(tool)
    if not w:
        raise PostgresMissing(f"{tool} not found: run `make setup` (apt-get install postgresql)")
    return w


class PostgresCluster:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cart-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=postgres user=ledger connect_timeout=5"

    def _run(self, args: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self._as_root else args
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode:
            raise RuntimeError(f"{args[0]} failed: {r.stderr.strip()[-400:]}")
        return r

    def init(self) -> "PostgresCluster":
        # trust on loopback only: a test cluster that lives for one test
        self._run([pg_bin("initdb"), "-D", str(self.data), "-U", "ledger", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        return self

    def start(self) -> "PostgresCluster":
        if not self.data.exists():
            self.init()
        opts = (f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                "-c fsync=on -c max_connections=30 -c shared_buffers=32MB")
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "30",
                   "start"])
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"], check=False)

    def kill(self) -> None:
        """kill -9 of the postmaster (a crash: recovery replays the WAL at the next start)."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            # its backends notice the postmaster is gone and exit; until then a new one cannot start
            end = time.monotonic() + 20
            while time.monotonic() < end and (self._backends() or _alive(pid)):
                time.sleep(0.2)
            # A crash leaves its lock files. PostgreSQL takes them as stale once the pid is gone,
            # but a container whose init reaps no orphans keeps the pid as a zombie: remove them.
            pid_file.unlink(missing_ok=True)
            for lock in self.root.glob(".s.PGSQL.*"):
                lock.unlink(missing_ok=True)

    def _backends(self) -> list[int]:
        """Processes of this cluster: every PostgreSQL process runs in its data directory."""
        mine = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/cwd") == str(self.data):
                    mine.append(int(pid))
            except OSError:
                pass
        return mine

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
