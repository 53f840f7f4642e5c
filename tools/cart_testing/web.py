"""The staff web service as a real process, for the browser tests, the web bench and the demo.

`WebStack` starts `cart-gateway web` over HTTPS with a fresh store CA and
server certificate (cart_flash.provision, the same openssl calls a store's
install uses), next to a gateway process and a private Mosquitto from the
usual fixtures. `StoreFeed` publishes what a cart's boards would: frames, an
`unsettled` / `weight` pair and the camera's capture event, with the §5/§6
fields (it writes the payloads itself so the harness does not depend on
gateway test helpers).
"""
from __future__ import annotations

import binascii
import json
import os
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

from cart_testing.broker import free_port
from cart_testing.procs import stop_process

ROOT = Path(__file__).resolve().parents[2]
CHUNK = struct.Struct(">2sBBIIHHII")      # protocol §7


def make_tls(out: Path, hosts=("127.0.0.1",)) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for a test store."""
    from cart_flash.provision import make_ca, make_server_cert
    ca = make_ca(out / "ca")
    cert, key = make_server_cert(out / "server", out / "ca", list(hosts))
    return ca, cert, key


def spki_hash(cert: Path) -> str:
    """base64 SHA-256 of the certificate's public key, for Chromium's --ignore-certificate-errors-spki-list
    (trust exactly this certificate, nothing else)."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True).stdout
    dgst = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True).stdout
    import base64
    return base64.b64encode(dgst).decode()


def write_web_config(path: Path, gateway_toml: Path, port: int, state_dir: Path, cert: Path, key: Path,
                     **extra) -> Path:
    lines = [f'gateway_config = "{gateway_toml}"', 'listen = "127.0.0.1"', f"port = {port}",
             f'tls_cert = "{cert}"', f'tls_key = "{key}"', f'state_dir = "{state_dir}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "gateway"), env.get("PYTHONPATH", "")])
    return env


def cli(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cart_gateway.cli", *args], input=stdin, capture_output=True,
                          text=True, env=_env(), cwd=str(ROOT), check=check, timeout=60)


class WebProcess:
    def __init__(self, config: Path, log: Path, ca: Path, port: int):
        self.config, self.log, self.ca, self.port = config, log, ca, port
        self.proc: subprocess.Popen | None = None
        self.base = f"https://127.0.0.1:{port}"

    def start(self, timeout: float = 60) -> "WebProcess":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cart_gateway.cli", "web", "--config", str(self.config)],
                                     env=_env(), stdout=out, stderr=out, cwd=str(ROOT))
        ctx = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"web service exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", context=ctx, timeout=2) as r:
                    d = json.loads(r.read())
                    if d.get("broker") and d.get("gateway_db") == "ok":
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"web service not ready in {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc)


class StoreFeed:
    """Publishes one cart's board traffic (QoS 1) and can play the gateway's counterpart (for the bench)."""

    def __init__(self, port: int, cart: str = "c001", epoch: int = 1, client_id: str | None = None):
        self.cart, self.epoch = cart, epoch
        self.seq = {"scale": 0, "cam": 0}
        self._t0 = time.monotonic()
        self.total = 0.0
        self.frame_no = 0
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"feed-{cart}-{os.getpid()}")
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()

    @property
    def mono(self) -> int:
        return 1000 + int((time.monotonic() - self._t0) * 1000)

    def _pub(self, topic: str, payload: bytes | str) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def _event(self, board: str, type_: str, **fields) -> int:
        self.seq[board] += 1
        d = {"v": 1, "cart": self.cart, "board": board, "epoch": self.epoch, "mono_ms": self.mono, "wall_ms": None,
             "synced": False, "seq": self.seq[board], "type": type_, **fields}
        self._pub(f"carts/{self.cart}/{board}/evt", json.dumps(d, separators=(",", ":")))
        return self.seq[board]

    def online(self) -> None:
        for b in ("scale", "cam"):
            self.c.publish(f"carts/{self.cart}/{b}/status", json.dumps(
                {"v": 1, "cart": self.cart, "board": b, "state": "online", "fw": "0.1.0", "epoch": self.epoch,
                 "mono_ms": self.mono, "wall_ms": None, "synced": False, "mode": "normal", "reason": None}),
                qos=1, retain=True).wait_for_publish(5)

    def frame(self, jpeg: bytes, chunk: int = 1024) -> int:
        self.frame_no += 1
        crc = binascii.crc32(jpeg) & 0xFFFFFFFF
        n = (len(jpeg) + chunk - 1) // chunk
        for i in range(n):
            self._pub(f"carts/{self.cart}/cam/frame",
                      CHUNK.pack(b"CF", 1, 1, self.epoch, self.frame_no, i, n, len(jpeg), crc)
                      + jpeg[i * chunk:(i + 1) * chunk])
        return self.frame_no

    def movement(self, delta_g: float, jpegs: list[bytes] = (), settle_s: float = 0.3) -> tuple[int, int]:
        """unsettled, the burst's frames and capture event (as the camera sends them), then the weight event."""
        pre = self.total
        u = self._event("scale", "unsettled", total_g=pre)
        if jpegs:
            nums = [self.frame(j) for j in jpegs]
            self._event("cam", "capture", trigger="unsettled", ref=f"{self.cart}/scale/{self.epoch}/{u}",
                        frames=nums, frame_ms=[self.mono] * len(nums))
        time.sleep(settle_s)
        self.total = round(pre + delta_g, 1)
        w = self._event("scale", "weight", delta_g=delta_g, total_g=self.total, noise_g=0.8, settle_ms=300,
                        window={"n": 24, "pre_g": pre, "post_g": self.total, "min_g": min(pre, self.total) - 3.0,
                                "max_g": max(pre, self.total) + 12.0, "std_g": 0.8, "dur_ms": 300,
                                "unsettled_seq": u})
        return u, w


def start_demo_web(root: Path, gateway_toml: Path, cart: str = "c001") -> tuple[WebProcess, list[str]]:
    """For `make demo`: the web service on 127.0.0.1 with a demo supervisor; lines to print."""
    import secrets
    ca, cert, key = make_tls(root / "tls")
    port = free_port()
    wc = write_web_config(root / "web.toml", gateway_toml, port, root / "web-state", cert, key)
    web = WebProcess(wc, root / "web.log", ca, port).start()
    pw = secrets.token_urlsafe(9)
    cli("web-user", "add", "demo", "--role", "supervisor", "--password-stdin", "--config", str(wc), stdin=pw + "\n")
    screen = cli("web-screen-url", cart, "--config", str(wc)).stdout.strip()
    return web, [f"store view:  {web.base}/store   (log in as demo / {pw})",
                 f"cart screen: {screen}",
                 f"the pages use a demo store CA: {ca} (or accept the browser's warning)"]

