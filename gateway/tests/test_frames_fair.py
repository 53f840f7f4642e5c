"""Frame assembly is bounded per cart, so one cart cannot block another's frames (issue 11.6)."""
from gwcore import JPEG, Harness

from cart_bench.testkit import frame_chunks

CARTS = {"known": ["c001", "c002", "c003"]}


def test_two_carts_with_unfinished_frames_do_not_block_a_third_carts_frames(tmp_path):
    h = Harness(tmp_path, carts=CARTS)
    for n in range(1, 41):                             # first chunks of frames never finished
        for cart in ("c001", "c002"):
            h.send(f"carts/{cart}/cam/frame", frame_chunks(1, n, JPEG)[0], dt_ms=1)
    stored = 0
    for n in range(1, 11):                             # cart 3's frames, interleaved with more flood
        for i, ch in enumerate(frame_chunks(1, n, JPEG)):
            h.send("carts/c003/cam/frame", ch, dt_ms=1)
            h.send("carts/c001/cam/frame", frame_chunks(1, 100 + 3 * n + i, JPEG)[0], dt_ms=1)
        stored = len([f for f in h.gw.store.frames() if f[1] == "c003"])
    assert stored == 10
    per_cart = h.gw.cfg.frames.max_per_cart
    assert h.gw.asm.in_progress("c001") <= per_cart and h.gw.asm.in_progress("c002") <= per_cart
    assert len(h.gw.asm) <= h.gw.cfg.frames.max_in_progress
    # what was dropped is counted per cart
    assert h.count("frames_dropped", "c001", "evicted") == 40 + 30 - per_cart
    assert h.count("frames_dropped", "c002", "evicted") == 40 - per_cart
    assert h.count("frames_dropped", "c003", "evicted") == 0


def test_the_store_wide_bound_takes_the_slot_of_the_cart_holding_most(tmp_path):
    h = Harness(tmp_path, carts=CARTS, frames={"max_in_progress": 6, "max_per_cart": 4})
    for n in range(1, 5):
        h.send("carts/c001/cam/frame", frame_chunks(1, n, JPEG)[0])
    for n in range(1, 3):
        h.send("carts/c002/cam/frame", frame_chunks(1, n, JPEG)[0])
    for ch in frame_chunks(1, 1, JPEG):                # the total is full: c001 (holding 4) gives a slot
        h.send("carts/c003/cam/frame", ch)
    assert [f[1] for f in h.gw.store.frames()] == ["c003"]
    assert h.count("frames_dropped", "c001", "evicted") == 1 and h.count("frames_dropped", "c002", "evicted") == 0


def test_unfinished_frames_expire_and_are_counted_per_cart(tmp_path):
    h = Harness(tmp_path, carts=CARTS)
    h.send("carts/c002/cam/frame", frame_chunks(1, 1, JPEG)[0])
    h.send("carts/c002/cam/frame", frame_chunks(1, 2, JPEG)[0])
    h.tick(6000)
    assert len(h.gw.asm) == 0 and h.count("frames_dropped", "c002", "incomplete") == 2
