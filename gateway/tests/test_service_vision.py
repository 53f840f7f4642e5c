"""Capture bursts: frames reassembled, the real detector and zxing-cpp run, the result feeds the reconciler."""
import json

from gwcore import JUICE, Harness, barcode_jpeg
from gwhelp import Watcher, publisher, start_gateway, stop, write_config

from cart_gateway.catalogue import Catalogue
from cart_bench.testkit import Board, frame_chunks
from cart_gateway.vision import BurstDetector, DetectorWorker, read_ean13

EAN = Catalogue.load()[JUICE[0]].ean13


def test_zxing_reads_the_barcode_in_a_frame():
    assert read_ean13(barcode_jpeg(EAN)) == [EAN]
    assert read_ean13(b"not a jpeg") == []


def test_burst_with_a_barcode_is_accepted_through_the_real_detector(tmp_path):
    h = Harness(tmp_path)
    det = BurstDetector.from_config(h.cfg.detector)
    jpeg = barcode_jpeg(EAN)
    sc, cam = h.scale, h.cam
    h.send(sc.topic, sc.unsettled())
    h.send(cam.topic, cam.capture([1], ref=f"c001/scale/1/{sc.seq}"))
    for ch in frame_chunks(cam.epoch, 1, jpeg):
        h.send("carts/c001/cam/frame", ch, dt_ms=2)
    h.send(sc.topic, sc.weight(JUICE[1], unsettled_seq=sc.seq))
    (burst_id, jpegs), = h.bursts
    assert jpegs == [jpeg]                       # reassembled byte for byte
    frames, codes = det.run(jpegs)
    assert codes == [EAN] and len(frames) == 1 and all(0 <= c.score <= 1 for c in frames[0])
    h.bursts.clear()
    h.gw.store.begin()
    h.gw.apply_vision(burst_id, frames, codes, h.t)
    h.gw.store.commit()
    line = h.gw.carts["c001"].engine.basket()["lines"][0]
    assert (line["sku"], line["status"]) == (JUICE[0], "accepted")
    d = h.gw.carts["c001"].engine.decisions()[-1]
    assert d["outcome"] == "accept" and "barcode" in d["evidence"]


def test_worker_queue_is_bounded_and_off_the_calling_thread():
    import threading
    done = []
    seen_threads = set()

    class Slow(BurstDetector):
        def run(self, jpegs):
            seen_threads.add(threading.current_thread().name)
            ev.wait(5)
            return [[] for _ in jpegs], []
    ev = threading.Event()
    w = DetectorWorker(Slow(None, False), size=2, on_result=lambda *a: done.append(a[0]))
    w.start()
    accepted = [w.submit(f"b{i}", [b"x"]) for i in range(5)]
    # one is being worked on, two wait in the queue: the rest are refused, not blocking ingest
    assert accepted.count(True) in (2, 3) and accepted[-1] is False
    ev.set()
    w.stop()
    w._thread.join(5)
    assert seen_threads == {"detector"} and done


def test_live_gateway_runs_detection_on_frames_from_mosquitto(mosquitto, tmp_path):
    cfg = write_config(tmp_path, mosquitto.port, detector=True)
    gw = start_gateway(cfg, log=tmp_path / "gw.log")
    w = Watcher(mosquitto.port)
    pub = publisher(mosquitto.port)
    try:
        w.wait(lambda: (w.json("gateway/gw1/status") or {}).get("state") == "online", 60, "gateway online")
        sc, cam = Board("c001"), Board("c001", "cam", mono_ms=77_000)
        pub.publish(sc.topic, sc.unsettled(), qos=1).wait_for_publish(5)
        pub.publish(cam.topic, cam.capture([1], ref=f"c001/scale/1/{sc.seq}"), qos=1)
        for ch in frame_chunks(cam.epoch, 1, barcode_jpeg(EAN)):
            pub.publish("carts/c001/cam/frame", ch, qos=1)
        pub.publish(sc.topic, sc.weight(JUICE[1], unsettled_seq=sc.seq), qos=1).wait_for_publish(5)

        def accepted():
            b = w.json("carts/c001/basket")
            return b and any(ln["sku"] == JUICE[0] and ln["status"] == "accepted" for ln in b["lines"])
        w.wait(accepted, 30, "juice accepted from the barcode in the frame")
        # frames never leave the gateway: no topic carried the JPEG
        assert not any(t.startswith(("carts/c001/basket", "gateway/")) and b"\xff\xd8" in p for t, p in w.all)
    finally:
        pub.loop_stop()
        w.close()
        stop(gw)
