"""cart-flash end to end where no hardware is needed: dry-run plans, config
errors, dir: targets booted as virtual boards against a real Mosquitto,
batch mode, and a board that never comes online."""
import json
import shutil
import sys
import time

import paho.mqtt.client as mqtt
import pytest

from cart_flash import boardconfig, device
from cart_flash.cli import main
from cart_flash.errors import FlashError, NeverOnline
from cart_flash.online import StatusWatch


def test_dry_run_prints_esptool_and_mpremote_plan(tmp_path, capsys, monkeypatch):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"users": {"cart-c001-scale": "s3cret"}}))
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(device, "tool_installed", lambda module: True)   # as on a flashing bench
    rc = main(["flash", "--board", "cart-scale-esp32", "--cart", "c001", "--port", "/dev/ttyUSB0",
               "--broker", "192.168.10.2:8883", "--wifi", "store:pw", "--credentials", str(creds),
               "--ca-pem", "ca.pem", "--image", "fw.bin", "--calibration=-152000,86", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[1] build the cart-scale-esp32 filesystem image (.mpy files by mpy-cross -march=xtensawin" in out
    assert "erase the whole flash, then write firmware.bin at 0x1000" in out
    assert "{" not in out                                  # no raw dicts in a plan
    assert "checked: the cart-scale-esp32 image builds" in out
    assert "cannot run" not in out
    assert "--chip esp32 --port /dev/ttyUSB0 --baud 460800 erase_flash" in out
    assert "write_flash -z 0x1000 fw.bin" in out
    assert "mpremote connect /dev/ttyUSB0 cp -r lib main.py boot.py config.json ca.pem :" in out
    assert "carts/c001/scale/status online with fw 0.1.0 on 192.168.10.2:8883" in out
    assert "s3cret" not in out  # the plan never shows a password


def test_rp2040_cannot_take_an_esptool_image(tmp_path, capsys):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"users": {"cart-c001-scale": "pw"}}))
    rc = main(["flash", "--board", "cart-scale-rp2040w", "--cart", "c001", "--port", "/dev/ttyACM0",
               "--broker", "10.0.0.2:1883", "--wifi", "s:p", "--no-tls", "--credentials", str(creds),
               "--image", "fw.uf2", "--dry-run"])
    assert rc == 2
    assert "not esptool" in capsys.readouterr().err


def test_template_placeholders_are_refused(capsys):
    rc = main(["flash", "--board", "cart-scale-esp32", "--cart", "c001", "--port", "/dev/ttyUSB0", "--dry-run"])
    assert rc == 2
    assert "CHANGE-ME" in capsys.readouterr().err


def test_invalid_config_is_refused_with_the_field():
    with pytest.raises(FlashError, match="broker.port"):
        boardconfig.make_config("sim-scale", "c001", overrides={"broker": {"host": "h", "port": 0}})
    with pytest.raises(FlashError, match="cart"):
        boardconfig.make_config("sim-scale", "C_001")


def test_credentials_go_into_the_config():
    cfg = boardconfig.make_config("sim-scale", "c007", broker=("127.0.0.1", 1884),
                                  credentials={"cart-c007-scale": "pw7"}, calibration=(-5, 86.0))
    assert cfg["broker"] == {**cfg["broker"], "host": "127.0.0.1", "port": 1884,
                             "user": "cart-c007-scale", "password": "pw7"}
    assert cfg["calibration"] == {"offset": -5, "scale": 86.0}
    with pytest.raises(FlashError, match="no credentials for MQTT user cart-c008-scale"):
        boardconfig.make_config("sim-scale", "c008", credentials={"cart-c007-scale": "pw7"})


def test_dir_target_boots_and_comes_online(tmp_path, mosquitto, capsys):
    fs = tmp_path / "c001-scale"
    rc = main(["flash", "--board", "sim-scale", "--cart", "c001", "--target", f"dir:{fs}",
               "--broker", f"127.0.0.1:{mosquitto.port}", "--boot", "--timeout", "20"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "online: fw 0.1.0, epoch 1, mode normal" in out
    assert (fs / "lib" / "cartfw" / "runtime.mpy").exists()
    cfg = json.loads((fs / "config.json").read_text())
    assert cfg["cart"] == "c001" and cfg["broker"]["port"] == mosquitto.port


def test_never_online_is_reported(mosquitto):
    # An old boot's retained birth is there; nothing new comes: still a failure.
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", mosquitto.port)
    c.loop_start()
    c.publish("carts/c009/scale/status", json.dumps({"state": "online", "fw": "0.1.0", "epoch": 4}),
              qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()
    w = StatusWatch("127.0.0.1", mosquitto.port, "c009", "scale")
    t0 = time.monotonic()
    try:
        with pytest.raises(NeverOnline, match=r"board never came online.*retained online from an earlier boot \(epoch 4\)"):
            w.wait_online("0.1.0", timeout=2)
    finally:
        w.close()
    assert 1.9 < time.monotonic() - t0 < 5


def test_unreachable_broker_is_reported():
    from cart_testing.broker import free_port
    with pytest.raises(NeverOnline, match="cannot reach the broker"):
        StatusWatch("127.0.0.1", free_port(), "c001", "scale")


def test_batch_reports_each_cart(tmp_path, mosquitto, capsys):
    csv = tmp_path / "carts.csv"
    csv.write_text("cart,board,target,calibration_offset,calibration_scale\n"
                   f"c101,sim-scale,dir:{tmp_path}/c101,-152000,86\n"
                   f"c102,sim-nope,dir:{tmp_path}/c102,,\n"
                   f"c103,sim-cam,dir:{tmp_path}/c103,,\n")
    rc = main(["batch", str(csv), "--broker", f"127.0.0.1:{mosquitto.port}"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "ok     c101" in out and "ok     c103" in out
    assert "FAILED c102" in out and "unknown board 'sim-nope'" in out
    assert "2/3 boards flashed" in out
    assert json.loads((tmp_path / "c101" / "config.json").read_text())["calibration"] == {"offset": -152000, "scale": 86.0}


def test_batch_csv_without_required_columns(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("cart,port\nc1,/dev/ttyUSB0\n")
    assert main(["batch", str(csv)]) == 2
    assert "missing column(s) board, target" in capsys.readouterr().err


def _esp32_dry_run(tmp_path, *extra):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"users": {"cart-c001-scale": "pw"}}))
    return main(["flash", "--board", "cart-scale-esp32", "--cart", "c001", "--port", "/dev/ttyUSB0",
                 "--broker", "192.168.10.2:8883", "--wifi", "store:pw", "--credentials", str(creds),
                 "--dry-run", *extra])


def test_dry_run_says_which_tools_are_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "esptool", None)     # import fails as when not installed
    monkeypatch.setitem(sys.modules, "mpremote", None)
    rc = _esp32_dry_run(tmp_path, "--no-tls", "--image", "fw.bin")
    out = capsys.readouterr().out
    assert rc == 1
    assert "cannot run as planned: esptool and mpremote are not installed: pip install -e '.[flash]'" in out


def test_dry_run_says_ca_pem_is_needed_for_tls(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(device, "tool_installed", lambda module: True)
    rc = _esp32_dry_run(tmp_path)
    out = capsys.readouterr().out
    assert rc == 1
    assert "has tls: true (broker 192.168.10.2:8883): give --ca-pem" in out
    assert _esp32_dry_run(tmp_path, "--ca-pem", str(tmp_path / "nope.pem")) == 1
    assert f"--ca-pem {tmp_path / 'nope.pem'}: no such file" in capsys.readouterr().out


def test_a_real_run_refuses_before_touching_the_board_when_tools_are_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpremote", None)
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"users": {"cart-c001-scale": "pw"}}))
    rc = main(["flash", "--board", "cart-scale-esp32", "--cart", "c001", "--port", str(tmp_path / "ttyUSB9"),
               "--broker", "192.168.10.2:1883", "--wifi", "store:pw", "--credentials", str(creds), "--no-tls"])
    assert rc == 2
    assert "mpremote is not installed" in capsys.readouterr().err


def test_an_invalid_cart_id_is_named_as_such(tmp_path, capsys):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"users": {"cart-c001-scale": "pw"}}))
    rc = main(["flash", "--board", "sim-scale", "--cart", "C-001", "--target", f"dir:{tmp_path / 'fs'}",
               "--broker", "127.0.0.1:1883", "--credentials", str(creds)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--cart 'C-001' is not a valid cart id: 1-32 lower-case letters, digits and '-'" in err
    assert "credentials" not in err


def test_board_json_without_micropython_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from cart_flash import fsimage
    boards = tmp_path / "boards"
    shutil.copytree(fsimage.BOARDS, boards)
    d = json.loads((boards / "cart-scale-esp32" / "board.json").read_text())
    del d["micropython"]
    (boards / "cart-scale-esp32" / "board.json").write_text(json.dumps(d))
    monkeypatch.setattr(fsimage, "BOARDS", boards)
    rc = _esp32_dry_run(tmp_path, "--no-tls")
    err = capsys.readouterr().err
    assert rc == 2
    assert "boards/cart-scale-esp32/board.json: field 'micropython' missing" in err
