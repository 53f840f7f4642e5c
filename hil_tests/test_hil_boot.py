"""Flash -> boot -> online, for every board on the rig."""
import time

import cartfw


def test_flash_boot_online(board, strategy, figures):
    b = board
    st = strategy(b)
    b.flashed_config = None          # flash from scratch, whatever ran before
    t0 = time.monotonic()
    status = st.transition("online")
    online_s = time.monotonic() - t0
    assert status["fw"] == cartfw.VERSION
    assert status["cart"] == b.cart and status["board"] == b.role
    assert status["mode"] == "normal" and status["reason"] is None
    # The console says who it is, with which firmware and config.
    m = b.console.expect(rf"runtime: cart {b.cart} board {b.role} epoch (\d+) mode normal reset \S+ fw (\S+)", 10)
    assert int(m.group(1)) == status["epoch"]
    assert m.group(2) == cartfw.VERSION
    b.console.expect(rf"mqtt: connected to {b.base_config['broker']['host']}:{b.base_config['broker']['port']}", 10)
    res = b.cmd("status")
    assert res["mode"] == "normal" and res["fw"] == cartfw.VERSION
    figures(b, "flash+boot to online (s)", round(online_s, 2))
