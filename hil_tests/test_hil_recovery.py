"""Recovery: the watchdog resets a hung main loop; a boot loop ends in safe
mode, and a good config brings the board back."""
import re
import time

import pytest

from cartrig.monitor import CommandFailed


def test_watchdog_recovers_hung_loop(scale, rig, figures):
    wdt_s = scale.base_config["wdt_ms"] / 1000
    resets0 = scale.vb.wdt_resets if scale.vb is not None else None
    since = scale.monitor.mark()
    scale.console.clear()
    t0 = time.monotonic()
    scale.monitor.send_command(scale.cart, scale.role, "test_hang", {"ms": 60000})
    scale.console.expect(r"cmd: test_hang blocking the loop for 60000 ms", 15)
    st = scale.wait_online(since, wdt_s + rig.spec.limits.online_timeout_s)
    back_s = time.monotonic() - t0
    scale.console.expect(r"runtime: cart \S+ board \S+ epoch \d+ mode normal reset wdt", 5)
    assert scale.cmd("status")["reset_cause"] == "wdt"
    if resets0 is not None:
        assert scale.vb.wdt_resets == resets0 + 1
    assert back_s < 60, "the hang lasted its full 60 s: the watchdog did not fire"
    figures(scale, f"hung loop -> back online (wdt {wdt_s:g} s) (s)", round(back_s, 2))


def test_safe_mode_after_boot_loop(scale, rig, strategy, figures):
    limit = scale.base_config.get("crash_limit", 3)
    # An app setting the scale app rejects at start: every boot crashes.
    bad = dict(scale.base_config, app={"scale": {"no_such_param": 1}})
    st = strategy(scale)
    st.transition("flashed", bad)
    since = scale.monitor.mark()
    scale.console.clear()
    scale.power.cycle()
    m = scale.monitor.wait_msg(since, scale.topic + "/status",
                               lambda d: d.get("state") == "online" and d.get("mode") == "safe",
                               30 + 10 * limit, f"{scale.name} online in safe mode")
    status = m.json()
    assert re.match(rf"{limit} boots in a row failed before running stably", status["reason"]), status
    scale.console.expect(rf"SAFE MODE: {limit} boots in a row failed", 5)
    crashes = len(re.findall(r"scale param no_such_param: unknown key", scale.console.text()))
    assert crashes >= limit, f"{crashes} crashes on the console before safe mode"
    # no normal-mode birth in between: the app never ran
    births = [x.json() for x in scale.monitor.since(since, scale.topic + "/status") if not x.retain]
    assert all(b["mode"] == "safe" for b in births if b["state"] == "online"), births
    # Safe mode: commands, no app.
    assert scale.cmd("status")["mode"] == "safe"
    with pytest.raises(CommandFailed, match="tare: unavailable in safe mode"):
        scale.cmd("tare")
    figures(scale, "boot loop -> safe mode, crashes seen", crashes)
    # A good config and a power cycle bring it back to normal.
    st.dirty()
    status = st.transition("online")
    assert status["mode"] == "normal"
