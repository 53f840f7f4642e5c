"""The real-bench drivers that can run without hardware: the console over
pyserial's loop:// and a relay driven by shell commands."""
import pytest

from cartrig.drivers.console import ExpectTimeout, SerialConsoleDriver
from cartrig.drivers.load import OperatorLoadDriver
from cartrig.drivers.power import ManualPowerDriver, RelayPowerDriver
from cartrig.resources import ManualPower, RelayPort


def test_console_expect_over_loop_url():
    con = SerialConsoleDriver("loop://", name="loop")
    try:
        con._ser.write(b"boot\r\nruntime: cart c001 board scale epoch 7 mode normal\r\n")
        m = con.expect(r"epoch (\d+) mode (\w+)", 2)
        assert m.group(1, 2) == ("7", "normal")
        con.clear()
        with pytest.raises(ExpectTimeout, match=r"console loop: 'epoch' not seen within 0 s"):
            con.expect("epoch", 0.3)   # already consumed: only new output counts
    finally:
        con.close()


def test_relay_runs_its_commands(tmp_path):
    log = tmp_path / "relay.log"
    drv = RelayPowerDriver(RelayPort(f"echo on >> {log}", f"echo off >> {log}", off_s=0))
    drv.cycle()
    assert log.read_text().split() == ["off", "on"]
    bad = RelayPowerDriver(RelayPort("exit 3", "exit 3"))
    with pytest.raises(RuntimeError, match=r"relay on failed \(exit 3\)"):
        bad.on()


def test_operator_prompts_name_the_board_and_the_load():
    asked = []
    ManualPowerDriver(ManualPower(), asked.append, "b002/scale").cycle()
    OperatorLoadDriver("b001/scale", asked.append).set_load(1500, "1kg plus 500g")
    assert "unplug the power of b002/scale" in asked[0] and "plug in the power of b002/scale" in asked[1]
    assert "b001/scale: make the load on the scale 1kg plus 500g" in asked[2]
