"""The handler (`Gateway.handle`) without a broker: baskets, prompts, reviews, checkout, frames."""
import json

from gwcore import JPEG, JUICE, KETCHUP, Harness

from cart_gateway.service import Gateway
from cart_bench.testkit import answer, checkout, verdict


def frame_files(h):
    return sorted(p.name for p in (h.gw.files.root / "c001").glob("*.jpg")) if (h.gw.files.root / "c001").exists() else []


def test_vision_backed_items_are_accepted_and_checkout_issues_receipt_then_fresh_basket(tmp_path):
    h = Harness(tmp_path)
    h.move(JUICE[1], JUICE[0])
    h.move(KETCHUP[1], KETCHUP[0])
    b = h.basket()
    assert [(ln["sku"], ln["status"]) for ln in b["lines"]] == [(JUICE[0], "accepted"), (KETCHUP[0], "accepted")]
    assert b["total_cents"] == 279 + 229
    assert len(frame_files(h)) == 4          # frames kept while the basket is open
    h.send("carts/c001/checkout", checkout("r1"))
    rec = h.last("carts/c001/receipt")
    assert rec["ok"] and rec["total_cents"] == 508 and rec["req_id"] == "r1"
    fresh = h.basket()
    assert fresh["lines"] == [] and fresh["version"] > b["version"]
    assert frame_files(h) == [] and h.gw.store.frames() == []   # deleted after checkout
    # the same request again gets the same receipt, not a second (empty) one
    h.send("carts/c001/checkout", checkout("r1"))
    assert h.last("carts/c001/receipt") == rec
    assert len(h.gw.store.receipts()) == 1
    retained = [p for p in h.out if p.topic == "carts/c001/receipt"]
    assert all(p.retain for p in retained)


def test_weight_only_movement_waits_for_vision_then_decides_on_the_timer(tmp_path):
    h = Harness(tmp_path)
    h.move(KETCHUP[1])                        # no burst
    assert h.basket()["lines"][0]["status"] == "pending"
    h.send("carts/c001/checkout", checkout("early"))
    assert h.last("carts/c001/receipt") == {"v": 1, "req_id": "early", "ok": False, "reason": "unsettled"}
    n = len(h.out)
    h.tick(500)
    assert not [p for p in h.out[n:] if p.topic.endswith("/screen/prompt")]   # still inside the 1.5 s wait
    h.tick(1500)
    decided = h.gw.carts["c001"].engine.decisions()
    assert decided and decided[-1]["outcome"] in ("accept", "ask", "review")


def test_prompt_answer_is_applied_once_and_unknown_prompt_ignored(tmp_path):
    h = Harness(tmp_path)
    h.move(JUICE[1])
    h.tick(2000)
    prompt = h.last("carts/c001/screen/prompt")
    assert prompt is not None and h.last("carts/c001/screen/state")["prompts"][0]["prompt_id"] == prompt["prompt_id"]
    assert [p for p in h.out if p.topic == "carts/c001/screen/state"][-1].retain
    h.send("carts/c001/screen/answer", answer(prompt["prompt_id"], "a1", sku=JUICE[0]))
    b = h.basket()
    assert [(ln["sku"], ln["qty"]) for ln in b["lines"]] == [(JUICE[0], 1)] and b["open_prompts"] == 0
    assert h.last("carts/c001/screen/state") == {"v": 1, "prompts": []}
    h.send("carts/c001/screen/answer", answer(prompt["prompt_id"], "a1", sku=JUICE[0]))
    h.send("carts/c001/screen/answer", answer("c001-p99", "a2", sku=JUICE[0]))
    assert h.gw.carts["c001"].engine.basket()["lines"][0]["qty"] == 1
    outcomes = [d["outcome"] for d in h.gw.carts["c001"].engine.decisions()]
    assert outcomes.count("ignored") == 2


def test_review_is_queued_verdict_applied_and_its_frames_deleted(tmp_path):
    h = Harness(tmp_path)
    h.move(7000.0, KETCHUP[0])                # fits no item: human review
    new = h.last("gateway/gw1/review/new")
    assert new is not None and new["cart"] == "c001" and len(new["frames"]) == 2
    assert all(f.startswith("c001/") for f in new["frames"])          # ids only, never bytes
    q = h.last("gateway/gw1/review/queue")
    assert [r["review_id"] for r in q["reviews"]] == [new["review_id"]]
    assert h.basket()["open_reviews"] == 1
    # retention does not delete frames a pending review needs
    h.tick(5000)
    assert len(frame_files(h)) == 2
    h.send("gateway/gw1/review/verdict", verdict(new["review_id"], "v1", KETCHUP[0], 1))
    b = h.basket()
    assert b["open_reviews"] == 0 and [ln["sku"] for ln in b["lines"]] == [KETCHUP[0]]
    assert h.last("gateway/gw1/review/queue") == {"v": 1, "reviews": []}
    assert frame_files(h) == []
    rv = h.gw.store.all_reviews()
    assert rv[0]["status"] == "closed" and rv[0]["verdict"]["verdict_id"] == "v1"
    # a repeated verdict changes nothing
    h.send("gateway/gw1/review/verdict", verdict(new["review_id"], "v1", KETCHUP[0], 1))
    assert h.gw.carts["c001"].engine.basket()["lines"][0]["qty"] == 1


def test_frames_expire_after_retention(tmp_path):
    h = Harness(tmp_path, frames={"retention_s": 2.0})
    h.move(JUICE[1], JUICE[0])
    assert len(frame_files(h)) == 2
    h.tick(1000)
    assert len(frame_files(h)) == 2
    h.tick(2500)
    assert frame_files(h) == [] and h.gw.store.frames() == []


def test_state_survives_a_restart_of_the_gateway_object(tmp_path):
    h = Harness(tmp_path)
    h.move(JUICE[1], JUICE[0])
    h.move(KETCHUP[1])                        # still waiting for vision
    before = h.gw.carts["c001"].engine.to_json()
    h.gw.store.close()
    gw2 = Gateway(h.cfg, submit_burst=h._submit)
    assert gw2.carts["c001"].engine.to_json() == before
    h.gw = gw2
    h.tick(2000)
    assert h.gw.carts["c001"].engine.movement("m2")["state"] != "waiting"


def test_camera_clock_is_mapped_onto_the_cart_timeline(tmp_path):
    h = Harness(tmp_path)
    h.cam.mono = 10_000_000                  # the camera booted long before the scale
    h.move(JUICE[1], JUICE[0])
    b = h.basket()
    assert b["lines"][0]["sku"] == JUICE[0] and b["lines"][0]["status"] == "accepted"


def test_batch_path_gives_the_same_state_as_one_message_at_a_time(tmp_path):
    """The live adapter's group commit (handle_batch) and handle() per message end in the same state."""
    from cart_gateway.service import BatchFailed
    from cart_bench.testkit import Board
    import pytest
    msgs = []
    b = Board("c001")
    for d in (JUICE[1], KETCHUP[1], -KETCHUP[1]):
        msgs += b.movement(d)
    msgs.append(("carts/c001/scale/evt", b"garbage"))
    one, many = Harness(tmp_path / "a"), Harness(tmp_path / "b")
    t = 1_700_000_000_000
    for i, (topic, p) in enumerate(msgs):
        one.gw.store.begin(); one.gw.handle(topic, p, t + 400 * i); one.gw.store.commit()
    many.gw.store.begin()
    outs = many.gw.handle_batch([("msg", topic, p, t + 400 * i) for i, (topic, p) in enumerate(msgs)])
    many.gw.store.commit()
    assert one.gw.carts["c001"].engine.to_json() == many.gw.carts["c001"].engine.to_json()
    assert many.gw.store.load_carts() == one.gw.store.load_carts()
    baskets = [p for p in outs if p.topic == "carts/c001/basket"]
    assert len(baskets) == 1 and json.loads(baskets[0].payload)["version"] == one.gw.carts["c001"].version()
    assert many.count("bad", "malformed") == 1
    # a failure past decoding aborts the batch, so the adapter can redo it one message at a time
    many.gw.store.begin()
    with pytest.raises(BatchFailed):
        many.gw.handle_batch(_engine_failure(many))
    many.gw.store.rollback()
    many.gw.reload()
    assert many.gw.carts["c001"].engine.to_json() == one.gw.carts["c001"].engine.to_json()


def _engine_failure(h):
    """A batch whose second item makes the engine raise (a verdict naming an unknown SKU for an open review)."""
    rid = "c001-r1"
    h.gw.store.add_review({"review_id": rid, "cart": "c001", "frames": []}, 0)
    h.gw.carts["c001"].engine.s["reviews"][rid] = {"request": {}, "move_id": "m1"}
    from cart_bench.testkit import verdict
    return [("tick", 1_700_000_100_000), ("msg", "gateway/gw1/review/verdict", verdict(rid, "v9", "NOPE", 1), 1)]


def test_every_publish_decodes_with_the_protocols_output_decoders(tmp_path):
    """What the gateway publishes is what screens, gates and the review station decode (protocol.decode_output)."""
    from cart_gateway.protocol import decode_output
    h = Harness(tmp_path)
    h.move(JUICE[1], JUICE[0])                     # accepted
    h.move(KETCHUP[1])                             # weight only: a prompt
    h.tick(2000)
    p = h.last("carts/c001/screen/prompt")
    h.send("carts/c001/screen/answer", answer(p["prompt_id"], "a1", sku=KETCHUP[0]))
    h.move(7000.0, KETCHUP[0])                     # review
    h.send("carts/c001/checkout", checkout("early"))   # refused: open review
    r = h.last("gateway/gw1/review/new")
    h.send("gateway/gw1/review/verdict", verdict(r["review_id"], "v1", KETCHUP[0], 1))
    h.send("carts/c001/checkout", checkout("r1"))
    kinds = {"basket": "basket", "prompt": "prompt", "state": "screen state", "receipt": "receipt",
             "new": "review request", "queue": "review queue"}
    seen = set()
    from cart_fleet.records import Figures, ReceiptRecord, parse_health
    fleet = {"receipt": ReceiptRecord.parse, "figures": Figures.parse, "health": parse_health}
    for pub in h.out:
        if pub.topic.startswith("gateway/gw1/fleet/out/"):    # for head office: cart-fleet's decoders
            fleet[pub.topic.rsplit("/", 1)[1]](pub.payload)
            seen.add("fleet " + pub.topic.rsplit("/", 1)[1])
            continue
        kind = kinds[pub.topic.rsplit("/", 1)[1]]
        decode_output(kind, pub.payload)
        seen.add(kind)
    assert set(kinds.values()) | {"fleet receipt"} <= seen <= set(kinds.values()) | {
        "fleet receipt", "fleet figures", "fleet health"}
    receipts = [json.loads(p.payload) for p in h.out if p.topic.startswith("carts/") and p.topic.endswith("/receipt")]
    assert [r["ok"] for r in receipts] == [False, True]


def test_burst_runs_at_its_capture_event_with_the_frames_that_arrived(tmp_path):
    """The camera sends frames before the capture event: one still missing then is lost; don't wait."""
    from cart_bench.testkit import frame_chunks
    h = Harness(tmp_path)
    cam = h.cam
    for ch in frame_chunks(cam.epoch, 1, JPEG):
        h.send("carts/c001/cam/frame", ch)
    h.send("carts/c001/cam/frame", frame_chunks(cam.epoch, 2, JPEG)[0])      # frame 2 incomplete
    h.send(cam.topic, cam.capture([1, 2], ref=None, trigger="motion"))
    assert [len(j) for _, j in h.bursts] == [1]
    # a capture event whose frames all come later waits for them (up to burst_timeout_s)
    h.send(cam.topic, cam.capture([3], ref=None, trigger="motion"))
    assert len(h.bursts) == 1
    for ch in frame_chunks(cam.epoch, 3, JPEG):
        h.send("carts/c001/cam/frame", ch)
    assert len(h.bursts) == 2


def test_a_tick_that_only_moves_the_clock_writes_nothing(tmp_path):
    """Ticks while a movement waits for its vision commit nothing (no fsync a weight event would
    wait behind); the tick that decides it writes the prompt. A restart in between loses nothing."""
    from cart_bench.testkit import Board
    h = Harness(tmp_path)
    b = Board("c001")
    h.send(b.topic, b.unsettled())
    h.send(b.topic, b.weight(KETCHUP[1], unsettled_seq=b.seq))
    db = h.gw.store.db
    before = db.total_changes
    h.tick(200)
    h.tick(200)
    assert db.total_changes == before                  # clock only: nothing written
    assert h.gw.carts["c001"].engine.movement("m1")["state"] == "waiting"
    gw2 = Gateway(h.cfg, submit_burst=h._submit)       # a crash here: the stored state is the last real one
    assert gw2.carts["c001"].engine.movement("m1")["state"] == "waiting"
    gw2.store.close()
    h.tick(1200)                                       # the 1.5 s vision wait is over: a prompt
    assert db.total_changes > before
    assert h.last("carts/c001/screen/prompt")["prompt_id"] == "c001-p1"
    gw3 = Gateway(h.cfg, submit_burst=h._submit)
    assert gw3.carts["c001"].engine.open_prompts()[0]["prompt_id"] == "c001-p1"
