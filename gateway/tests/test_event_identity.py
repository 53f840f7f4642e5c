"""Event identity across a re-flash and a board swap (issue 11.2, protocol §5).

A board mints a random instance id at its first boot (`inst`); the gateway keys duplicates,
gaps, the clock and frames by (cart, board, inst, epoch), so a re-flashed or new board that
starts again at epoch 1, seq 1 loses nothing, while a redelivered event is still dropped.
Events without `inst` (older firmware) keep the identity they had."""
import json
import sqlite3

from gwcore import JPEG, JUICE, KETCHUP, Harness

from cart_gateway.store import Store
from cart_bench.testkit import Board, frame_chunks


class InstBoard(Board):
    """A board that sends its instance id, as the firmware does (proto.INSTANCE)."""

    def __init__(self, cart, board, inst, **kw):
        super().__init__(cart, board, **kw)
        self.inst = inst

    def _head(self, type_, dt_ms):
        return dict(super()._head(type_, dt_ms), inst=self.inst)


OLD, NEW = "0123456789abcdef", "fedcba9876543210"


def _send_all(h, board, payloads):
    for p in payloads:
        h.send(board.topic, p)


def test_a_reflashed_board_starting_again_at_epoch_1_loses_no_event(tmp_path):
    h = Harness(tmp_path)
    old = InstBoard("c001", "scale", OLD)
    sent = [p for _ in range(3) for _, p in old.movement(JUICE[1])]
    _send_all(h, old, sent)
    new = InstBoard("c001", "scale", NEW)              # re-flashed: epoch 1, seq 1 again
    new.total = old.total
    again = [p for _ in range(3) for _, p in new.movement(KETCHUP[1])]
    _send_all(h, new, again)
    assert h.gw.store.event_count() == 12 and h.count("duplicates") == 0
    assert h.count("events", "weight") == 6
    moves = {**h.gw.carts["c001"].engine.s["moves"], **h.gw.carts["c001"].engine.s["done"]}
    assert len(moves) == 6 and len({(m["epoch"], m["seq"]) for m in moves.values()}) == 6
    # real duplicates (same instance, epoch, seq) are still dropped, of both boards
    h.send(new.topic, again[3])
    h.send(old.topic, sent[0])
    assert h.gw.store.event_count() == 12 and h.count("duplicates") == 2
    assert h.gw.store.open_gaps() == []


def test_events_without_an_instance_keep_their_identity_and_dedupe(tmp_path):
    h = Harness(tmp_path)
    legacy = Board("c001", "scale")
    msgs = [p for _, p in legacy.movement(JUICE[1])]
    _send_all(h, legacy, msgs)
    h.send(legacy.topic, msgs[1])
    assert h.count("duplicates") == 1
    ids = [r[0] for r in h.gw.store.db.execute("SELECT event_id FROM events ORDER BY rowid")]
    assert ids == ["c001/scale/1/1", "c001/scale/1/2"]
    # the same board after a firmware update that sends `inst`: a new stream, nothing dropped
    upd = InstBoard("c001", "scale", NEW)
    _send_all(h, upd, [p for _, p in upd.movement(KETCHUP[1])])
    assert h.gw.store.event_count() == 4 and h.count("duplicates") == 1
    assert h.gw.store.db.execute("SELECT event_id FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0] \
        == f"c001/scale/{NEW}/1/2"


def test_a_database_from_before_instance_ids_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE seqs (cart TEXT, board TEXT, epoch INTEGER, high INTEGER NOT NULL, PRIMARY KEY (cart, board, epoch));
        CREATE TABLE gaps (id INTEGER PRIMARY KEY AUTOINCREMENT, cart TEXT, board TEXT, epoch INTEGER,
                           lo INTEGER NOT NULL, hi INTEGER NOT NULL, t_ms INTEGER NOT NULL);
        INSERT INTO seqs VALUES ('c1', 'scale', 1, 9);
        INSERT INTO gaps (cart, board, epoch, lo, hi, t_ms) VALUES ('c1', 'scale', 1, 4, 5, 0);""")
    db.commit()
    db.close()
    s = Store(path)
    assert not s.add_event("c1/scale/1/3", "c1", "scale", 1, 3, "weight", 1, b"{}")    # received before
    assert s.add_event("c1/scale/1/4", "c1", "scale", 1, 4, "weight", 1, b"{}")        # fills the old gap
    assert s.open_gaps() == [{"cart": "c1", "board": "scale", "epoch": 1, "lo": 4, "hi": 5}]
    assert s.add_event(f"c1/scale/{NEW}/1/3", "c1", "scale", 1, 3, "weight", 1, b"{}", inst=NEW)
    s.close()


def test_a_reflashed_camera_frames_are_not_taken_for_the_old_cameras(tmp_path):
    h = Harness(tmp_path)
    scale = InstBoard("c001", "scale", OLD)
    for cam_inst, item in ((OLD, JUICE), (NEW, KETCHUP)):
        cam = InstBoard("c001", "cam", cam_inst, mono_ms=5000)
        h.send("carts/c001/cam/status", json.dumps({
            "v": 1, "cart": "c001", "board": "cam", "inst": cam_inst, "epoch": 1, "mono_ms": 5000,
            "wall_ms": None, "synced": False, "state": "online", "fw": "0.1.0"}).encode())
        h.send(scale.topic, scale.unsettled())
        useq = scale.seq
        for n in (1, 2):                  # as the camera sends them: the frames, then the capture event
            for ch in frame_chunks(1, n, JPEG):
                h.send("carts/c001/cam/frame", ch, dt_ms=5)
        h.send(cam.topic, cam.capture([1, 2], ref=f"c001/scale/{OLD}/1/{useq}"))   # epoch 1, frames 1, 2 both times
        h.send(scale.topic, scale.weight(item[1], unsettled_seq=useq))
        h.vision(item[0])
    assert len(h.gw.store.frames()) == 4                  # the new camera's frames were stored too
    b = h.basket()
    assert [(ln["sku"], ln["status"]) for ln in b["lines"]] == [(JUICE[0], "accepted"), (KETCHUP[0], "accepted")]


def test_frame_chunks_and_capture_refs_cannot_make_stream_rows(tmp_path):
    h = Harness(tmp_path)
    cam = InstBoard("c001", "cam", NEW, mono_ms=5000)
    h.send(cam.topic, cam.capture([1], ref=f"c001/scale/{OLD}/77/1"))        # names a scale stream never seen
    rows = h.gw.store.db.execute("SELECT COUNT(*) FROM seqs").fetchone()[0]
    for epoch in range(2, 52):                                               # epochs the camera never announced
        h.send("carts/c001/cam/frame", frame_chunks(epoch, 1, JPEG)[0], dt_ms=1)
    assert h.gw.store.db.execute("SELECT COUNT(*) FROM seqs").fetchone()[0] == rows == 1


def test_the_firmwares_instance_id_is_what_the_gateway_decodes(monkeypatch):
    from cartfw import proto
    from cart_gateway import protocol as P
    monkeypatch.setattr(proto, "INSTANCE", NEW)
    ev = P.decode_event(P.parse_topic("carts/c001/scale/evt"),
                        proto.encode_event("c001", "scale", 2, 7, "unsettled", {"total_g": 1.0}, (5, None, False)))
    st = P.decode_status(P.parse_topic("carts/c001/scale/status"),
                         proto.encode_status("c001", "scale", 2, (5, None, False), True))
    assert ev.inst == st.inst == NEW and ev.event_id == proto.identity("c001", "scale", 2, 7, NEW)
    monkeypatch.setattr(proto, "INSTANCE", None)    # older firmware: no field, the old identity
    ev = P.decode_event(P.parse_topic("carts/c001/scale/evt"),
                        proto.encode_event("c001", "scale", 2, 7, "unsettled", {"total_g": 1.0}, (5, None, False)))
    assert ev.inst is None and ev.event_id == "c001/scale/2/7" == proto.identity("c001", "scale", 2, 7)
