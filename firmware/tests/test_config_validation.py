"""Config validation (same under MicroPython and CPython), and on a real
virtual board: each bad field gives a console error naming it and safe mode
(online, birth with mode "safe" and the reason), never a crash loop."""
import json
import time

import pytest

from fwtest import LOADGEN, board_config
from mp import run_cpython, run_mp

pytestmark = pytest.mark.micropython

GOOD = {"cart": "c001", "board": "scale", "broker": {"host": "127.0.0.1", "port": 1883}}

# (field named in the error, raw config)
BAD = [
    ("cart", {**GOOD, "cart": "C 1"}),
    ("cart", {k: v for k, v in GOOD.items() if k != "cart"}),
    ("board", {**GOOD, "board": "printer"}),
    ("broker", {k: v for k, v in GOOD.items() if k != "broker"}),
    ("broker.host", {**GOOD, "broker": {"port": 1883}}),
    ("broker.port", {**GOOD, "broker": {"host": "h", "port": 70000}}),
    ("broker.port", {**GOOD, "broker": {"host": "h", "port": "1883"}}),
    ("broker.tls", {**GOOD, "broker": {"host": "h", "tls": "yes"}}),
    ("broker.keepalive_s", {**GOOD, "broker": {"host": "h", "keepalive_s": 1}}),
    ("broker.ca_file", {**GOOD, "broker": {"host": "h", "ca_file": "ca.pem"}}),
    ("wifi.ssid", {**GOOD, "wifi": {"password": "x"}}),
    ("calibration.scale", {**GOOD, "calibration": {"scale": 0}}),
    ("test_hooks", {**GOOD, "test_hooks": 1}),
    ("tele_s", {**GOOD, "tele_s": 0}),
    ("wdt_ms", {**GOOD, "wdt_ms": 9000}),
    ("journal.max_bytes", {**GOOD, "journal": {"max_bytes": 10}}),
    ("colour", {**GOOD, "colour": "red"}),
    # NTP host: an IPv4 literal only (a name means a DNS lookup that blocks the loop)
    ("ntp.host", {**GOOD, "ntp": {"host": "pool.ntp.org"}}),
    ("ntp.host", {**GOOD, "ntp": {"host": "192.168.10"}}),
    ("ntp.host", {**GOOD, "ntp": {"host": "192.168.10.256"}}),
    ("ntp.host", {**GOOD, "ntp": {"host": "192.168.10.2 "}}),
    ("ntp.host", {**GOOD, "ntp": {"host": ""}}),
]

SCRIPT = r'''
import json
from cartfw import config
cases = json.loads(%r)
out = []
for field, raw in cases:
    try:
        config.validate(raw)
        out.append([field, None, None])
    except config.ConfigError as e:
        out.append([field, e.field, str(e)])
cfg = config.validate(json.loads(%r))
ok = dict(cfg)
ok["ntp"] = {"host": "192.168.10.2"}
out.append(["ntp ok", config.validate(ok)["ntp"]["host"], cfg["ntp"]["host"]])
out.append(["defaults", cfg["broker"]["keepalive_s"], cfg["tele_s"], cfg["crash_limit"], cfg["calibration"]["scale"]])
new, cfg2, keys = config.apply_set(json.loads(%r), {"tele_s": 5, "broker.port": 1884})
out.append(["set", keys, cfg2["tele_s"], cfg2["broker"]["port"]])
try:
    config.apply_set(json.loads(%r), {"broker.port": -1})
except config.ConfigError as e:
    out.append(["set bad", e.field])
try:
    config.validate(config.parse("{not json"))
except config.ConfigError as e:
    out.append(["parse", e.field])
print(json.dumps(out))
'''


def test_each_bad_field_is_named_under_both(tmp_path):
    g = json.dumps(GOOD)
    s = SCRIPT % (json.dumps(BAD), g, g, g)
    mp = json.loads(run_mp(s, tmp_path))
    assert mp == json.loads(run_cpython(s, tmp_path))
    for (want, _), row in zip(BAD, mp):
        assert row[1] == want, row
        assert want in row[2]
    tail = {r[0]: r for r in mp[len(BAD):]}
    assert tail["defaults"][1:] == [30, 30, 3, 1.0]
    assert tail["ntp ok"][1:] == ["192.168.10.2", None]  # default: the broker's host
    assert tail["set"][1:] == [["broker.port", "tele_s"], 5, 1884]
    assert tail["set bad"][1] == "broker.port"
    assert tail["parse"][1] == "config.json"


@pytest.mark.parametrize("field,bad", [
    ("tele_s", {"tele_s": "often"}),
    ("broker.port", {"broker": {"host": "127.0.0.1", "port": 0}}),
    ("cart", {"cart": "Bad Cart"}),
])
def test_bad_config_boots_safe_mode_online(mosquitto, board_factory, subscriber_factory, field, bad):
    sub = subscriber_factory(mosquitto.port)
    b = board_factory(app=LOADGEN)
    good = board_config(mosquitto.port)
    b.write_config(good)
    b.start()
    assert sub.wait(lambda: len(sub.on("/status")) >= 1, 10), b.text()
    b.kill()
    raw = {**good, **bad}
    b.write_config(raw)
    b.start()

    def safe_birth():
        for t, p, r in sub.on("/status"):
            d = json.loads(p)
            if d["state"] == "online" and d["mode"] == "safe":
                return d
        return None
    assert sub.wait(safe_birth, 10), b.text()
    d = safe_birth()
    assert field in d["reason"]
    assert f"CONFIG ERROR: config {field}" in b.text()
    time.sleep(1.0)
    assert b.alive()  # no crash loop
    assert not [e for e in sub.events() if e["epoch"] == 2]  # the app did not start
    # commands work in safe mode: fix the config, reboot
    fix = {k: good[k] for k in (field.split(".")[0],)}
    sub.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "fix1", "cmd": "config",
                                                    "args": {"set": fix}}))
    assert sub.wait(lambda: any(b'"fix1"' in p for t, p, r in sub.on("/cmd/res")), 10), b.text()
    res = [json.loads(p) for t, p, r in sub.on("/cmd/res") if b'"fix1"' in p][0]
    assert res["ok"], res
    sub.publish("carts/c001/scale/cmd", json.dumps({"v": 1, "id": "rb1", "cmd": "reboot"}))
    assert b.wait(10) == 3  # sim reset: exit code 3
    b.start()

    def normal_birth():
        return [p for t, p, r in sub.on("/status") if b'"mode":"normal"' in p and b'"online"' in p]
    assert sub.wait(lambda: len(normal_birth()) >= 2, 10), b.text()


def test_missing_config_no_crash_loop(board_factory):
    b = board_factory(app=LOADGEN)
    b.start()
    assert b.wait_console("SAFE MODE (offline): config config.json: missing", 10), b.text()
    time.sleep(1.5)
    assert b.alive()
