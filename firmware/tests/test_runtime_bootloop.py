"""Boot-loop protection on a real virtual board: an app that crashes every
boot is reset by the runtime (exit code 3 under sim, an `error` event with
code "crash" journaled first); after 3 crashes in a row the board boots into
safe mode, online, with the reason, and answers commands."""
import json
from pathlib import Path

import pytest

from fwtest import board_config

pytestmark = pytest.mark.micropython

CRASHER = Path(__file__).with_name("apps") / "crasher.py"


def test_three_crashes_then_safe_mode(mosquitto, board_factory, subscriber_factory):
    sub = subscriber_factory(mosquitto.port)
    b = board_factory(app=CRASHER)
    b.write_config(board_config(mosquitto.port, stable_s=30))
    codes = []
    for _ in range(3):
        b.start()
        codes.append(b.wait(15))
    assert codes == [3, 3, 3], b.text()
    assert b.text().count("runtime: fatal: RuntimeError: sensor driver exploded") == 3
    b.start()
    assert b.wait_console("SAFE MODE: 3 boots in a row failed", 10), b.text()

    def safe_birth():
        return [json.loads(p) for t, p, r in sub.on("/status") if b'"safe"' in p and b'"online"' in p]
    assert sub.wait(safe_birth, 10)
    d = safe_birth()[-1]
    assert "sensor driver exploded" in d["reason"] and d["epoch"] == 4
    # the crash was reported as an event before each reset (journaled, replayed)
    assert sub.wait(lambda: len([e for e in sub.events() if e.get("code") == "crash"]) >= 3, 10)
    # safe mode answers status and does not run the app
    sub.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "s1", "cmd": "status"}))
    assert sub.wait(lambda: sub.on("/cmd/res"), 10)
    res = json.loads(sub.on("/cmd/res")[-1][1])
    assert res["ok"] and res["result"]["mode"] == "safe" and res["result"]["reset_cause"] == "crash"
    assert b.alive() and "app: starting" not in b.text().split("--- power on 4")[1]
    sub.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "t1", "cmd": "tare"}))
    assert sub.wait(lambda: any(b'"t1"' in p for t, p, r in sub.on("/cmd/res")), 10)
    res = [json.loads(p) for t, p, r in sub.on("/cmd/res") if b'"t1"' in p][0]
    assert not res["ok"] and "safe mode" in res["error"]


IMPORT_CRASHER = Path(__file__).with_name("apps") / "import_crasher.py"


def test_safe_mode_names_an_error_that_reached_main(mosquitto, board_factory, subscriber_factory):
    """Issue 11 §10: a crash that escaped the runtime (main.py resets the board
    itself) left safe mode saying "no error recorded"."""
    sub = subscriber_factory(mosquitto.port)
    b = board_factory(app=IMPORT_CRASHER)
    b.write_config(board_config(mosquitto.port, stable_s=30))
    for _ in range(3):
        b.start()
        assert b.wait(15) == 3, b.text()
    b.start()
    assert b.wait_console("SAFE MODE: 3 boots in a row failed", 10), b.text()
    births = lambda: [json.loads(p) for t, p, r in sub.on("/status") if b'"safe"' in p and b'"online"' in p]  # noqa: E731
    assert sub.wait(births, 10)
    assert "driver import exploded" in births()[-1]["reason"], births()[-1]
