"""The NAU7802 driver (firmware/hal/esp32/nau7802_drv.py) inside the real
micropython binary, against the emulated chip (firmware/hal/sim/nau7802_chip.py)
that records every register write; and the board variant
boards/cart-scale-esp32-nau7802 (definition, manifest, config, compiled for
the ESP32's -march=xtensawin)."""
import json
import shutil
import subprocess

import pytest

from cart_testing.mpy import mpy_cross_bin
from fwtest import FW, ROOT
from mp import run_mp

BOARD = ROOT / "boards" / "cart-scale-esp32-nau7802"
DRV = FW / "hal" / "esp32" / "nau7802_drv.py"
CHIP = FW / "hal" / "sim" / "nau7802_chip.py"

# A fake millisecond clock and a sample source shared by the scripts.
# The scale board's heap budget plus the bytecode the unix port keeps in the heap (a device freezes it
# into flash): boards/sim-scale/board.json heap_budget + code_in_heap, as a virtual board runs.
_BOARD = json.loads((ROOT / "boards" / "sim-scale" / "board.json").read_text())
SCALE_HEAP = _BOARD["heap_budget"] + _BOARD["code_in_heap"]

PRELUDE = """
import json
from nau7802_drv import NAU7802, to_signed24
from nau7802_chip import SimNAU7802Bus

class Clock:
    def __init__(self):
        self.t = 1000
    def __call__(self):
        return self.t

class Src:
    def __init__(self, xs=()):
        self.xs = list(xs)
    def take_sample(self):
        return self.xs.pop(0) if self.xs else None

def start(drv, clock, limit=2000):
    n = 0
    while not drv.ready():
        drv.read()
        clock.t += 5
        n += 1
        assert n < limit, ('not started', drv.state, drv.last_error)
    return n
"""


def _stage(tmp_path):
    shutil.copy(DRV, tmp_path / "nau7802_drv.py")
    shutil.copy(CHIP, tmp_path / "nau7802_chip.py")
    return tmp_path


@pytest.mark.micropython
def test_sign_conversion_of_the_24_bit_result(tmp_path):
    out = run_mp(PRELUDE + """
cases = [(0, 0, 0), (0x7F, 0xFF, 0xFF), (0x80, 0, 0), (0xFF, 0xFF, 0xFF), (0x12, 0x34, 0x56), (0xFE, 0xDC, 0xBA)]
print(json.dumps([to_signed24(*c) for c in cases]))
""", _stage(tmp_path))
    assert json.loads(out) == [0, 8388607, -8388608, -1, 0x123456, 0xFEDCBA - 0x1000000]


@pytest.mark.micropython
def test_start_up_register_sequence(tmp_path):
    """Reset, digital power-up, wait for PUR, gain 128 + LDO 3.0 V, analog up
    on the LDO with cycle start, 80 SPS, chopper clock off, PGA cap on, then
    internal offset calibration: one write per step, nothing else."""
    out = run_mp(PRELUDE + """
clk = Clock()
bus = SimNAU7802Bus(Src(), cal_reads=4)
drv = NAU7802(bus, gain=128, rate=80, ldo_mv=3000, clock=clk)
assert drv.read() is None
n = start(drv, clk)
print(json.dumps({"writes": bus.writes, "steps": n, "starts": drv.starts, "errors": drv.bus_errors}))
""", _stage(tmp_path))
    d = json.loads(out)
    assert d["writes"] == [[0x00, 0x01], [0x00, 0x02],                  # RR, then PUD
                           [0x01, (5 << 3) | 7], [0x00, 0x96], [0x02, 0x30],  # CTRL1, PUD|PUA|CS|AVDDS, CRS 80
                           [0x15, 0x30], [0x1C, 0x80],                  # CLK_CHP off, PGA_CAP_EN
                           [0x02, 0x34]]                                # CALS (internal offset)
    assert d["starts"] == 1 and d["errors"] == 0
    assert 60 <= d["steps"] <= 80       # ~300 ms of settling at 5 ms per poll, never a blocking wait


@pytest.mark.micropython
def test_conversions_external_avdd_and_320_sps(tmp_path):
    out = run_mp(PRELUDE + """
clk = Clock()
src = Src()
bus = SimNAU7802Bus(src)
drv = NAU7802(bus, gain=64, rate=320, ldo_mv=0, clock=clk)
start(drv, clk)
cfg = [w for w in bus.writes if w[0] in (1, 2)]
got = [drv.read()]
src.xs = [-152000, 8388607, -8388608, 0, -1]
for _ in range(5):
    got.append(drv.read())
got.append(drv.read())
print(json.dumps({"cfg": cfg, "got": got, "pu": [w for w in bus.writes if w[0] == 0]}))
""", _stage(tmp_path))
    d = json.loads(out)
    assert d["cfg"] == [[1, 6], [2, 0x70], [2, 0x74]]         # gain 64, no LDO bits; CRS 7 = 320 SPS
    assert d["pu"] == [[0, 1], [0, 2], [0, 0x16]]            # PUD|PUA|CS, AVDDS off: external AVDD
    assert d["got"] == [None, -152000, 8388607, -8388608, 0, -1, None]


@pytest.mark.micropython
def test_missing_chip_and_failed_calibration_restart_without_blocking(tmp_path):
    out = run_mp(PRELUDE + """
clk = Clock()
src = Src([5, 6])
bus = SimNAU7802Bus(src)
bus.fail = True
drv = NAU7802(bus, clock=clk)
for _ in range(300):                 # 1.5 s with no chip: None every time
    assert drv.read() is None
    clk.t += 5
e1 = drv.bus_errors
bus.fail = False
start(drv, clk)
a = drv.read()
bus.fail = True                      # cable pulled while running
b = drv.read()
bus.fail = False
start(drv, clk)
bad = SimNAU7802Bus(Src(), cal_fails=True)
d2 = NAU7802(bad, clock=clk)
for _ in range(400):
    d2.read()
    clk.t += 5
print(json.dumps({"e1": e1, "a": a, "b": b, "errors": drv.bus_errors, "starts": drv.starts,
                  "last": drv.last_error, "cal_errors": d2.cal_errors, "cal_last": d2.last_error,
                  "d2_ready": d2.ready()}))
""", _stage(tmp_path))
    d = json.loads(out)
    assert 2 <= d["e1"] <= 4             # one try per RETRY_MS (500 ms), not one per poll
    assert d["a"] == 5 and d["b"] is None
    assert d["errors"] == d["e1"] + 1 and d["starts"] == 2 and "i2c" in d["last"]
    assert d["cal_errors"] >= 2 and "CAL_ERR" in d["cal_last"] and not d["d2_ready"]


@pytest.mark.micropython
def test_bad_settings_are_refused_by_name(tmp_path):
    out = run_mp(PRELUDE + """
for kw in ({"gain": 100}, {"rate": 50}, {"ldo_mv": 3100}):
    try:
        NAU7802(SimNAU7802Bus(Src()), **kw)
        print("accepted", kw)
    except ValueError as e:
        print(str(e).split()[1])
""", _stage(tmp_path))
    assert out.split() == ["gain", "rate", "ldo_mv"]


@pytest.mark.micropython
def test_reading_allocates_nothing(tmp_path):
    out = run_mp("""
import gc
from nau7802_drv import NAU7802
class Bus:                       # answers 'ready' and a fixed conversion, no allocation
    def writeto_mem(self, a, r, b):
        pass
    def readfrom_mem_into(self, a, r, b):
        if r == 0:
            b[0] = 0x28
        elif r == 0x12:
            b[0] = 0xFD; b[1] = 0xAE; b[2] = 0x40
        else:
            b[0] = 0
t = [0]
def clk():
    return t[0]
d = NAU7802(Bus(), clock=clk)
while not d.ready():
    d.read()
    t[0] += 5
v = d.read()
def cost(f):                     # bytes allocated by 2000 calls, loop overhead included
    gc.collect()
    a0 = gc.mem_alloc()
    for _ in range(2000):
        f()
    return gc.mem_alloc() - a0
def nothing():
    return 0
print(v, cost(d.read) - cost(nothing))
""", _stage(tmp_path))
    v, grew = out.split()
    assert int(v) == 0xFDAE40 - 0x1000000 and int(grew) == 0


@pytest.mark.micropython
def test_scale_pipeline_sees_the_same_stream_through_either_driver(tmp_path):
    """A seeded model stream (an item placed, then removed) through the real
    NAU7802 driver and the emulated chip gives the same events as through
    SimHX711: the pipeline is unchanged on the variant."""
    from cart_sim.physics import LoadCellModel
    m = LoadCellModel(7, noise_g=1.5, counts_per_g=86.0, offset=-152_000)
    stream = []
    for ms, load in ((3000, None), (3000, 412.0), (3000, 0.0)):
        if load is not None:
            m.ramp_to(load, 300)
        end = m.t_ms + ms
        while m.t_ms < end:
            r = m.next_raw()
            if r is not None:
                stream.append(r)
    (tmp_path / "stream.json").write_text(json.dumps(stream))
    shutil.copy(FW / "hal" / "sim" / "hx711_drv.py", tmp_path / "hx711_drv.py")
    out = run_mp(PRELUDE + """
from hx711_drv import SimHX711
from cartfw.scale.pipeline import ScalePipeline
from cartfw.scale.loop import ScaleLoop
stream = json.load(open("stream.json"))
def run(make):
    src = Src()
    evs = []
    drv = make(src)
    loop = ScaleLoop(drv, ScalePipeline(86.0, -152000), lambda typ, f: evs.append([typ, f.get("delta_g"), bool(f.get("prov"))]) or len(evs))
    for i, v in enumerate(stream):
        src.xs = [v]
        loop.step(i * 25 // 2)
        assert not src.xs, i        # every conversion taken in its period
    return evs
def nau(src):
    clk = Clock()
    d = NAU7802(SimNAU7802Bus(src), clock=clk)
    start(d, clk)
    return d
a = run(SimHX711)
b = run(nau)
print(json.dumps({"hx": a, "nau": b}))
""", _stage(tmp_path), heap=str(SCALE_HEAP))
    d = json.loads(out)
    assert d["hx"] == d["nau"]
    # a removal goes out provisional first (§6.1 `prov`), then final: count the finals
    weights = [e for e in d["nau"] if e[0] == "weight" and not e[2]]
    assert len(weights) == 2 and abs(weights[0][1] - 412.0) < 3 and abs(weights[1][1] + 412.0) < 3


# -- the board variant --------------------------------------------------------

def test_board_definition_and_manifest():
    from test_runtime_boards import run_manifest
    b = json.loads((BOARD / "board.json").read_text())
    for k in ("name", "family", "chip", "role", "pins", "heap_budget", "micropython", "flash", "manifest"):
        assert k in b, k
    assert b["name"] == BOARD.name and b["family"] == "esp32" and b["role"] == "scale"
    assert b["heap_budget"] == json.loads((ROOT / "boards/cart-scale-esp32/board.json").read_text())["heap_budget"]
    seen = run_manifest(BOARD / b["manifest"], [])
    mods = [p for kind, p in seen if kind == "module"]
    for p in mods:
        assert p.exists(), p
    names = {p.name: p for p in mods}
    assert names["nau7802_drv.py"] == DRV
    assert names["hx711_drv.py"] == BOARD / "hx711_drv.py"       # the ADC slot, not the HX711 driver
    assert names["hal.py"] == FW / "hal" / "esp32" / "hal.py"
    assert ("port", "$(PORT_DIR)/boards/manifest.py") in seen


@pytest.mark.parametrize("path", [DRV, BOARD / "hx711_drv.py"], ids=["nau7802_drv", "slot"])
def test_board_files_compile_for_xtensawin(path, tmp_path):
    r = subprocess.run([mpy_cross_bin(), "-march=xtensawin", "-o", str(tmp_path / "o.mpy"), str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.mpy").read_bytes()[:2] == b"M\x06"


@pytest.mark.micropython
def test_config_template_validates_and_the_slot_opens_the_nau7802(tmp_path):
    shutil.copy(DRV, tmp_path / "nau7802_drv.py")
    shutil.copy(BOARD / "hx711_drv.py", tmp_path / "hx711_drv.py")
    raw = json.loads((BOARD / "config.template.json").read_text())
    out = run_mp(f"""
import json
from cartfw import config
cfg = config.validate(json.loads({json.dumps(json.dumps(raw))}), need_wifi=True)
import hx711_drv, nau7802_drv
from cartfw.scale.pipeline import ScalePipeline
p = ScalePipeline(cfg["calibration"]["scale"], cfg["calibration"]["offset"], **cfg["app"]["scale"])
a = cfg["app"]["hx711"]
nau7802_drv.NAU7802(None, a["gain"], a["rate"], a["ldo_mv"])
print(cfg["board"], hx711_drv.open is nau7802_drv.open, p.rate, a["rate"])
""", tmp_path)
    assert out.split() == ["scale", "True", "80", "80"]


@pytest.mark.micropython
def test_virtual_board_with_the_nau7802_slot_reports_a_placed_item(mosquitto, tmp_path):
    """The real firmware in micropython (runtime, MQTT, scale app) with the
    ADC slot filled as on the NAU7802 board: the real driver on the emulated
    chip, fed by the virtual board's cell. A placed item gives one weight
    event with its whole weight."""
    import threading
    import time

    import paho.mqtt.client as mqtt

    from cart_sim.virtual_board import VirtualBoard
    vb = VirtualBoard("sim-scale", "c001", ("127.0.0.1", mosquitto.port), tmp_path / "fs")
    cfg = vb.default_config()
    cfg["app"] = json.loads((BOARD / "config.template.json").read_text())["app"]
    vb.flash(cfg)
    lib = tmp_path / "fs" / "lib"
    (lib / "hx711_drv.mpy").unlink()
    shutil.copy(DRV, lib / "nau7802_drv.py")
    (lib / "hx711_drv.py").write_text("print('adc slot: nau7802 on the emulated chip')\n"
                                      "from nau7802_chip import open  # noqa: F401\n")
    msgs, lock = [], threading.Lock()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, m: (lock.acquire(), msgs.append(json.loads(m.payload)), lock.release())
    c.connect("127.0.0.1", mosquitto.port)
    c.subscribe("carts/c001/scale/evt", 1)
    c.loop_start()

    def weights():
        with lock:
            return [e for e in msgs if e.get("type") == "weight"]
    try:
        vb.power_on()
        assert vb.wait_console("mqtt: connected", timeout=20), vb.console_text()[-2000:]
        assert vb.wait_console("adc slot: nau7802", timeout=10), vb.console_text()[-2000:]
        time.sleep(3.0)                    # start-up (~0.4 s) and the first settle
        vb.cell.set_load(412.0)
        deadline = time.monotonic() + 20
        while not weights() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        w = weights()
        assert len(w) == 1, (w, vb.console_text()[-2000:])
        assert abs(w[0]["delta_g"] - 412.0) < 3.0
    finally:
        c.loop_stop()
        c.disconnect()
        vb.close()
