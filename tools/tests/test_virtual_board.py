"""The virtual board as a bench engineer sees a real one: a console on a
serial port, power that can be cut, a watchdog, a reset, sensors that can be
driven. The firmware inside is the real one, in the real micropython."""
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
import serial

from cart_sim.virtual_board import VirtualBoard
from cart_testing.procs import read_line
from cart_testing.watch import scale_settled


class Watcher:
    """A paho subscriber that records what boards publish."""

    def __init__(self, port):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("carts/#", 1)
        self.c.loop_start()

    def _on(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload))

    def events(self, typ=None):
        with self.lock:
            out = [json.loads(p) for t, p in self.msgs if t.endswith("/evt")]
        return [e for e in out if typ is None or e["type"] == typ]

    def wait(self, pred, timeout=60.0):   # generous: boards boot slowly on a loaded machine
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return False

    def scale_settled(self, cart):
        return scale_settled(self.c, lambda: self.msgs, self.lock, cart)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def rig(mosquitto, tmp_path):
    boards, watcher = [], Watcher(mosquitto.port)

    def make(board="sim-scale", cart="c001", config=None):
        vb = VirtualBoard(board, cart, ("127.0.0.1", mosquitto.port), tmp_path / f"{cart}-{board}")
        if config:
            cfg = vb.default_config()
            cfg.update(config)
            vb.flash(cfg)
        boards.append(vb)
        return vb

    try:
        yield make, watcher
    finally:
        for vb in boards:
            vb.close()
        watcher.close()


def test_console_is_a_serial_port_and_a_placed_item_gives_a_weight_event(rig):
    make, w = rig
    vb = make()
    port = serial.serial_for_url(vb.console_path, timeout=0.2)
    vb.power_on()
    seen = b""
    deadline = time.monotonic() + 60
    while b"mqtt: connected" not in seen and time.monotonic() < deadline:
        seen += port.read(256)
    port.close()
    assert b"runtime: cart c001 board scale" in seen
    assert b"mqtt: connected" in seen
    w.scale_settled("c001")   # the first settled level is the baseline
    vb.cell.set_load(412.0)
    assert w.wait(lambda: w.events("weight"))
    ev = w.events("weight")[0]
    assert abs(ev["delta_g"] - 412.0) < 3.0
    assert ev["window"]["unsettled_seq"] == w.events("unsettled")[0]["seq"]


def test_power_cut_reboots_into_a_new_epoch_and_keeps_the_journal(rig):
    make, w = rig
    vb = make()
    vb.power_on()
    assert vb.wait_console("mqtt: connected", 60)
    w.scale_settled("c001")  # the pipeline takes its first settled level as the baseline
    vb.cell.set_load(250.0)
    assert w.wait(lambda: w.events("weight"))
    vb.power_off()
    assert not vb.alive
    vb.power_on()
    assert w.wait(lambda: any(e["epoch"] == 2 for e in w.events()) or
                  vb.console_text().count("epoch 2") > 0)
    assert "epoch 2" in vb.console_text()
    assert w.wait(lambda: vb.console_text().count("mqtt: connected") >= 2)
    w.scale_settled("c001")
    vb.cell.set_load(0.0)
    assert w.wait(lambda: any(e["type"] == "weight" and e["epoch"] == 2 for e in w.events()))
    # A replay after the cut may repeat an event, but only with its identity
    # and content unchanged; and no sequence number is skipped in epoch 1.
    seen = {}
    for e in w.events():
        assert seen.setdefault((e["epoch"], e["seq"]), e) == e
    epoch1 = sorted(s for ep, s in seen if ep == 1)
    assert epoch1 == list(range(1, len(epoch1) + 1))


def online(w, cart="c001"):
    # the board's birth goes out after its SUBSCRIBEs (the console's "mqtt: connected" before):
    # a command sent once it is seen is not lost, however slow the machine is
    return any(t == f"carts/{cart}/scale/status" and json.loads(p)["state"] == "online" for t, p in w.msgs)


def test_watchdog_restarts_a_hung_board(rig):
    make, w = rig
    vb = make(config={"test_hooks": True, "wdt_ms": 2000})
    vb.power_on()
    assert vb.wait_console("mqtt: connected", 60)
    assert w.wait(lambda: online(w))
    w.c.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "h1", "cmd": "test_hang",
                                                   "args": {"ms": 20000}}), qos=1)
    assert w.wait(lambda: vb.wdt_resets == 1, 15)
    assert vb.wait_console("--- boot (wdt)", 5)
    assert vb.wait_console("reset wdt", 15)


def test_reboot_command_resets_the_board(rig):
    make, w = rig
    vb = make()
    vb.power_on()
    assert vb.wait_console("mqtt: connected", 60)
    assert w.wait(lambda: online(w))
    w.c.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "r1", "cmd": "reboot"}), qos=1)
    assert w.wait(lambda: vb.restarts == 1, 15)
    assert vb.wait_console("epoch 2", 15)


def test_unknown_board_is_a_clear_error(tmp_path):
    from cart_flash.fsimage import BoardError
    with pytest.raises(BoardError, match="unknown board 'sim-toaster'.*known boards: .*sim-scale"):
        VirtualBoard("sim-toaster", "c001", ("127.0.0.1", 1), tmp_path / "fs")


def test_cart_sim_board_cli_runs_a_board_in_the_foreground_and_stops_cleanly(mosquitto, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    w = Watcher(mosquitto.port)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.Popen([sys.executable, "-m", "cart_sim.cli", "board", "--board", "sim-scale", "--cart", "c007",
                          "--broker", f"127.0.0.1:{mosquitto.port}", "--fs", str(tmp_path / "fs")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        # a CLI start builds and compiles the flash, then boots: seconds on a quiet machine,
        # 20 s and more on a loaded CI box (it timed out there at 20 s)
        assert w.wait(lambda: any(t == "carts/c007/scale/status" for t, _ in w.msgs), 90)
        status = json.loads([pl for t, pl in w.msgs if t == "carts/c007/scale/status"][-1])
        assert status["state"] == "online" and status["cart"] == "c007"
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0].decode()
        w.close()
    assert p.returncode == 0
    assert "virtual board sim-scale cart c007" in out and "/dev/pts/" in out
    # the board process went with it: its last will says offline
    w2 = Watcher(mosquitto.port)
    try:
        assert w2.wait(lambda: any(t == "carts/c007/scale/status" and json.loads(pl)["state"] == "offline"
                                   for t, pl in w2.msgs), 45)
    finally:
        w2.close()


def test_cart_sim_board_cli_rejects_a_bad_broker_address(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "cart_sim.cli", "board", "--board", "sim-scale", "--cart", "c001",
                        "--broker", "localhost", "--fs", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "expected HOST:PORT" in r.stderr


def test_board_on_an_existing_flash_applies_broker(tmp_path):
    """`cart-sim board --broker` on an existing --fs connects where it says (config.json updated,
    code and journal kept) and says so; another cart's flash is refused."""
    import signal
    import subprocess
    import sys
    from cart_flash.fsimage import ROOT
    fs = tmp_path / "c001"
    vb = VirtualBoard("sim-scale", "c001", ("127.0.0.1", 1883), fs)
    vb.flash()
    vb.close()
    (fs / "journal.keep").write_text("x")
    env = {"PYTHONPATH": ":".join(str(ROOT / p) for p in ("gateway", "tools", "firmware/lib")), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "cart_sim.cli", "board", "--board", "sim-scale", "--broker", "127.0.0.1:1",
           "--fs", str(fs)]
    p = subprocess.Popen(cmd + ["--cart", "c001"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = read_line(p.stdout, 60, "cart-sim board")
        assert f"{fs}: broker 127.0.0.1:1883 -> 127.0.0.1:1 in config.json (code and journal kept)" in first
        assert json.loads((fs / "config.json").read_text())["broker"]["port"] == 1
        assert (fs / "journal.keep").exists()
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    r = subprocess.run(cmd + ["--cart", "c002"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert "is the flash of cart 'c001', not 'c002'" in r.stderr
