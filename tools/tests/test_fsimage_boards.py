"""Every board in boards/ builds a complete filesystem image: every module its
manifest.py names is in lib/ as an .mpy compiled for the board's -march
(board.json "mpy_march"), each .mpy header checked; and a board is never
touched before its image has been built."""
import json
import shutil
from pathlib import Path

import pytest

from cart_flash import device, fsimage
from cart_flash.cli import main
from cart_flash.flash import Flasher, Job
from cart_flash.fsimage import BOARDS, BoardError, build_fs, load_board, manifest_modules, read_mpy_header

BOARD_NAMES = sorted(p.name for p in BOARDS.iterdir() if (p / "board.json").exists())


def test_there_are_real_and_virtual_boards():
    assert {"cart-scale-esp32", "cart-cam-esp32s3", "cart-scale-rp2040w", "sim-scale", "sim-cam"} <= set(BOARD_NAMES)


@pytest.mark.parametrize("board", BOARD_NAMES)
def test_board_builds_a_complete_image_for_its_arch(board, tmp_path):
    definition = load_board(board)
    build_fs(board, tmp_path, config={"cart": "c001"})
    wanted = manifest_modules(board)
    assert wanted, f"{board}: manifest names no module"
    for m in wanted:
        assert (tmp_path / m.image_path).is_file(), f"{board}: {m.image_path} missing ({m.source})"
    assert not list((tmp_path / "lib").rglob("*.py")), "lib/ holds only compiled .mpy files"
    for f in (tmp_path / "lib").rglob("*.mpy"):
        h = read_mpy_header(f)
        assert h.major == 6, f
        # bytecode-only files carry no arch; native code must be the board's own
        assert h.arch in ("none", fsimage.resolve_march(definition["mpy_march"])), (f, h)
    for entry in ("main.py", "boot.py", "config.json"):
        assert (tmp_path / entry).is_file()
    assert json.loads((tmp_path / "config.json").read_text()) == {"cart": "c001"}


@pytest.mark.parametrize("board,native", [("cart-scale-esp32", "lib/hx711_drv.mpy")])
def test_native_code_is_compiled_for_the_chip(board, native, tmp_path):
    build_fs(board, tmp_path)
    assert read_mpy_header(tmp_path / native).arch == "xtensawin"


def test_mpy_files_name_their_image_path_not_the_build_machine(tmp_path):
    build_fs("sim-scale", tmp_path)
    data = (tmp_path / "lib" / "cartfw" / "journal.mpy").read_bytes()
    assert b"cartfw/journal.py" in data
    assert str(fsimage.ROOT).encode() not in data


def test_issue_15_command_builds_the_esp32_image(tmp_path, capsys):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"users": {"cart-c001-scale": "PASS"}}))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    out = tmp_path / "OUT"
    rc = main(["flash", "--board", "cart-scale-esp32", "--cart", "c001", "--target", f"dir:{out}",
               "--broker", "192.168.10.2:1883", "--wifi", "store-carts:PASS", "--credentials", str(creds),
               "--ca-pem", str(ca)])
    assert rc == 0, capsys.readouterr().err
    assert read_mpy_header(out / "lib" / "hx711_drv.mpy").arch == "xtensawin"
    assert (out / "ca.pem").read_text() == ca.read_text()


def test_a_failed_build_leaves_the_previous_image(tmp_path, monkeypatch):
    build_fs("sim-scale", tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    broken = _firmware_with_syntax_error(tmp_path / "fw", "sim")
    monkeypatch.setattr(fsimage, "FIRMWARE", broken)
    with pytest.raises(BoardError, match="hx711_drv.py"):
        build_fs("sim-scale", tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "fw" not in p.parts) == before


def test_serial_flash_builds_the_image_before_touching_the_board(tmp_path, monkeypatch):
    """The build is step 1; when it fails, esptool (erase!) and the port are never reached."""
    job = Job(board="cart-scale-esp32", cart="c001", target=str(tmp_path / "no-such-port"),
              config=_cfg(), image="fw.bin")
    f = Flasher(job, log=lambda s: None)
    titles = [s.title for s in f.plan()]
    assert titles[0].startswith("build the cart-scale-esp32 filesystem image"), titles
    assert "esptool" in titles[1]
    broken = _firmware_with_syntax_error(tmp_path / "fw", "esp32")
    monkeypatch.setattr(fsimage, "FIRMWARE", broken)
    ran = []
    monkeypatch.setattr(device, "tool_installed", lambda module: True)   # as on a flashing bench
    monkeypatch.setattr(Flasher, "_esptool", lambda self, cmds: ran.append(cmds))
    with pytest.raises(BoardError, match="mpy-cross -march=xtensawin failed on lib/hx711_drv.py"):
        Flasher(job, log=lambda s: None).run()
    assert ran == []


def _cfg() -> dict:
    from cart_flash import boardconfig
    return boardconfig.make_config("cart-scale-esp32", "c001", broker=("192.168.10.2", 1883),
                                   wifi=("s", "p"), credentials={"cart-c001-scale": "pw"}, tls=False)


def _firmware_with_syntax_error(dest: Path, family: str) -> Path:
    shutil.copytree(fsimage.FIRMWARE, dest, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    (dest / "hal" / family / "hx711_drv.py").write_text("def broken(:\n")
    return dest


def test_board_without_mpy_march_is_refused(tmp_path, monkeypatch):
    _fake_board(tmp_path, monkeypatch, {"name": "x", "family": "sim", "role": "scale", "heap_budget": 1,
                                        "micropython": ">=1.23"})
    with pytest.raises(BoardError, match="mpy_march"):
        load_board("x")


def test_board_without_micropython_is_a_clear_error(tmp_path, monkeypatch, capsys):
    _fake_board(tmp_path, monkeypatch, {"name": "x", "family": "sim", "role": "scale", "heap_budget": 1,
                                        "mpy_march": "host"})
    with pytest.raises(BoardError, match="field 'micropython' missing"):
        load_board("x")


def _fake_board(tmp_path, monkeypatch, definition):
    boards = tmp_path / "boards"
    shutil.copytree(BOARDS, boards)
    (boards / "x").mkdir()
    (boards / "x" / "board.json").write_text(json.dumps(definition))
    monkeypatch.setattr(fsimage, "BOARDS", boards)



def test_a_module_in_the_boards_folder_replaces_the_family_hals(tmp_path):
    # The NAU7802 board's ADC slot (lib/hx711_drv) must be its own hand-over module,
    # not the esp32 HAL's HX711 driver of the same name.
    build_fs("cart-scale-esp32-nau7802", tmp_path)
    slot = (tmp_path / "lib" / "hx711_drv.mpy").read_bytes()
    assert b"nau7802_drv" in slot
    assert (tmp_path / "lib" / "nau7802_drv.mpy").is_file()
    build_fs("cart-scale-esp32", tmp_path / "hx")
    assert b"nau7802_drv" not in (tmp_path / "hx" / "lib" / "hx711_drv.mpy").read_bytes()
