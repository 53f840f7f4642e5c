"""The gateway's retake through its handler: the reconciler's command published to the camera with
the movement's ref as the scale sent it (§6.3, §9), and the burst that answers it joined to that
movement (reconcile/retake.py)."""
import json

import pytest
from gwcore import JPEG, Harness

from cart_bench.testkit import Board, frame_chunks

TEA = "SKU0001"      # Alpenhof Cereal Honey 375 g, 406 g; SKU0002 (Choco) weighs 403 g: a look-alike
INST = "0123456789abcdef"


def _commands(h):
    return [json.loads(p.payload) for p in h.out if p.topic == "carts/c001/cam/cmd"]


def _until(h, pred, ms=4000):
    for _ in range(ms // 100):
        if pred():
            return True
        h.tick(100)
    return pred()


@pytest.mark.parametrize("inst", [INST, None])
def test_a_short_burst_sends_the_camera_a_retake_and_its_burst_settles_the_movement(tmp_path, inst):
    h = Harness(tmp_path)
    h.scale = Board("c001", "scale", inst=inst)
    h.move(812.0, TEA, frames=2)            # two units, 2 frames of a burst of 4: one may have shown Choco
    assert _until(h, lambda: _commands(h)), [p.topic for p in h.out]
    (cmd,) = _commands(h)
    useq = 1
    ref = f"c001/scale/{INST}/1/{useq}" if inst else f"c001/scale/1/{useq}"
    assert cmd == {"v": 1, "id": "capture-1-m1", "cmd": "capture", "args": {"frames": 4, "ref": ref}}
    assert h.count("board_commands", "capture") == 1
    assert not any(p.topic == "carts/c001/screen/prompt" for p in h.out)
    # the camera answers: a `command` burst carrying the ref, its frames, then vision
    nums = [3, 4, 5, 6]
    for n in nums:
        for ch in frame_chunks(h.cam.epoch, n, JPEG):
            h.send("carts/c001/cam/frame", ch, dt_ms=5)
    h.send(h.cam.topic, h.cam.capture(nums, ref=ref, trigger="command"))
    h.vision(TEA)
    assert _until(h, lambda: (h.basket() or {}).get("lines") and h.basket()["lines"][0]["status"] == "accepted")
    (line,) = h.basket()["lines"]
    assert (line["sku"], line["qty"]) == (TEA, 2)
    assert not any(p.topic == "carts/c001/screen/prompt" for p in h.out)
    assert len(_commands(h)) == 1


def test_a_retake_the_camera_never_answers_asks_the_shopper(tmp_path):
    h = Harness(tmp_path)
    h.move(812.0, TEA, frames=2)
    assert _until(h, lambda: _commands(h))
    assert _until(h, lambda: any(p.topic == "carts/c001/screen/prompt" for p in h.out))
    assert len(_commands(h)) == 1 and h.basket()["open_prompts"] == 1
