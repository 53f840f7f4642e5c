"""Stills (protocol §7.1) at the gateway: the decoder's still flag and resolution,
the per-kind size limit, corrupt and oversized stills refused and counted, and
barcodes read from the still (full frame and around bar-like regions) fed to
the engine as the barcode evidence it already knows."""
import io

import pytest
from gwcore import JUICE, Harness

from cart_gateway import protocol as P
from cart_gateway.barcodes import StillBarcodeReader, code_regions
from cart_gateway.catalogue import Catalogue
from cart_gateway.frames import Assemblies, FrameTooLarge
from cart_gateway.vision import BurstDetector, check_still
from cartfw import framing

CAT = Catalogue.load()
EAN = CAT[JUICE[0]].ean13


def _rotated_code(ean: str, angle: float, size=(1600, 1200)) -> bytes:
    """A flat EAN-13 at 3 px/module turned by `angle` on a grey UXGA still."""
    import numpy as np
    from PIL import Image
    from cart_model.render import _flat_code
    code = _flat_code(ean, 3.0, 60.0).rotate(angle, expand=True, fillcolor=(128, 128, 128))
    img = Image.new("RGB", size, (128, 128, 128))
    img.paste(code, (700, 400))
    a = np.asarray(img).astype(np.int16) + np.random.default_rng(1).integers(-4, 5, (size[1], size[0], 3))
    buf = io.BytesIO()
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _still(seed=5, view_mm=200.0, res="UXGA") -> bytes:
    from cart_model.render import encode_jpeg, render_still
    img, _ = render_still(CAT, JUICE[0], seed, res, view_mm=view_mm, scale=1.2)
    return encode_jpeg(img)


# ---------------------------------------------------------------- decoder, limits

def test_firmware_still_chunks_decode_with_flag_and_resolution():
    data = _rotated_code(EAN, 0)
    chunks = framing.encode(data, 3, 9, 4096, still_res=5)
    decoded = [P.decode_frame_chunk(c) for c in chunks]
    assert all(c.still and (c.width, c.height) == (1600, 1200) for c in decoded)
    asm = P.FrameAssembler(decoded[0], 0)
    assert [asm.add(c) for c in decoded][-1] == data
    frame = P.decode_frame_chunk(framing.encode(b"\xff\xd8x", 3, 10)[0])
    assert not frame.still and frame.width == 0


@pytest.mark.parametrize("fmt,size,count,match", [
    (0x61, 1000, 1, r"field 'fmt': 0x61 is not 0x01 \(JPEG frame\) or 0xR1"),
    (0x52, 1000, 1, r"field 'fmt': 0x52"),
    (0x51, 524289, 128, r"field 'size': 524289 is not in 1..524288 \(a still\)"),
    (0x51, 4000, 129, r"field 'count': 129 is not in 1..128"),
    (0x01, 200000, 64, r"field 'size': 200000 is not in 1..131072"),
    (0x01, 4000, 65, r"field 'count': 65 is not in 1..64"),
])
def test_decoder_refuses_bad_still_headers(fmt, size, count, match):
    payload = P.CHUNK_HEADER.pack(b"CF", 1, fmt, 1, 1, 0, count, size, 0) + b"x" * 100
    with pytest.raises(P.ProtocolError, match=match):
        P.decode_frame_chunk(payload)


def test_assemblies_bound_stills_by_their_own_limit():
    a = Assemblies(4, 5000, still_max_bytes=100_000)
    big = P.decode_frame_chunk(P.CHUNK_HEADER.pack(b"CF", 1, 0x51, 1, 1, 0, 30, 120_000, 0) + b"x" * 4096)
    with pytest.raises(FrameTooLarge, match="still: field 'size' 120000 bytes is over this gateway's limit of 100000"):
        a.add("c001", big, 0)
    assert len(a) == 0
    frame = P.decode_frame_chunk(P.CHUNK_HEADER.pack(b"CF", 1, 0x01, 1, 2, 0, 30, 120_000, 0) + b"x" * 4096)
    assert a.add("c001", frame, 0) == ("partial", None, [])    # burst frames keep §7's limit


def test_check_still_refuses_wrong_resolution_and_non_jpeg():
    check_still(_rotated_code(EAN, 0), 1600, 1200)
    with pytest.raises(P.ProtocolError, match="JPEG is 1600x1200, field 'fmt' declares 1280x1024"):
        check_still(_rotated_code(EAN, 0), 1280, 1024)
    with pytest.raises(P.ProtocolError, match="not a readable JPEG"):
        check_still(b"\xff\xd8garbage", 1600, 1200)


# ---------------------------------------------------------------- service

def _send_still(h, data, frame, res=5, ref=None):
    cam = h.cam
    for ch in framing.encode(data, cam.epoch, frame, 4096, still_res=res):
        h.send("carts/c001/cam/frame", ch, dt_ms=2)
    w, hh = framing.RESOLUTIONS[res]
    d = cam._head("capture", 50)
    d.update(trigger="settled", ref=ref, frames=[frame], frame_ms=[cam.mono], still={"w": w, "h": hh})
    import json
    h.send(cam.topic, json.dumps(d).encode())


def _metric(h, label):
    return h.gw.metrics.frames.labels(label)._value.get()


def test_oversized_still_refused_and_counted(tmp_path):
    h = Harness(tmp_path, frames={"still_max_bytes": 100_000})
    payload = P.CHUNK_HEADER.pack(b"CF", 1, 0x51, 1, 1, 0, 30, 120_000, 0) + b"x" * 4096
    h.send("carts/c001/cam/frame", payload)
    assert _metric(h, "oversized_still") == 1
    assert h.gw.metrics.bad.labels("malformed")._value.get() == 1
    assert len(h.gw.asm) == 0


def test_corrupt_still_refused_and_counted_nothing_lost(tmp_path):
    h = Harness(tmp_path)
    # CRC-correct bytes that are not a JPEG of the declared UXGA
    for ch in framing.encode(b"\xff\xd8" + b"junk" * 3000, h.cam.epoch, 1, 4096, still_res=5):
        h.send("carts/c001/cam/frame", ch, dt_ms=2)
    assert _metric(h, "still_refused") == 1
    assert not h.gw.store.frame_path("c001/%d/1" % h.cam.epoch)
    # the next, good still is stored
    _send_still(h, _rotated_code(EAN, 0), 2)
    assert h.gw.store.frame_path("c001/%d/2" % h.cam.epoch)


def test_still_barcode_settles_the_item_through_the_engine(tmp_path):
    h = Harness(tmp_path)
    sc = h.scale
    h.send(sc.topic, sc.unsettled())
    h.send(sc.topic, sc.weight(JUICE[1], unsettled_seq=sc.seq))
    _send_still(h, _still(), 1, ref=f"c001/scale/1/{sc.seq - 1}")
    (burst_id, jpegs), = h.bursts
    frames, codes = BurstDetector(None, True).run(jpegs)
    assert frames == [] and codes == [EAN]          # a still adds no candidate frames
    h.bursts.clear()
    h.gw.store.begin()
    h.gw.apply_vision(burst_id, frames, codes, h.t)
    h.gw.store.commit()
    line = h.gw.carts["c001"].engine.basket()["lines"][0]
    assert (line["sku"], line["status"]) == (JUICE[0], "accepted")
    d = h.gw.carts["c001"].engine.decisions()[-1]
    assert "barcode" in d["evidence"]


# ---------------------------------------------------------------- reader

def test_reader_finds_an_angled_code_around_its_region():
    jpeg = _rotated_code(EAN, 38)
    import zxingcpp
    from PIL import Image
    assert not [r for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(jpeg))) if r.text == EAN]
    r = StillBarcodeReader().read(jpeg)
    assert r.codes == [EAN] and r.where == "region"


def test_regions_point_across_the_bars():
    import numpy as np
    from PIL import Image
    g = np.asarray(Image.open(io.BytesIO(_rotated_code(EAN, 30))).convert("L"))
    top = code_regions(g)[0]
    assert abs(((top.angle_deg + 30) + 90) % 180 - 90) < 5   # code turned 30° CCW: gradient at -30° (y down)


def test_rendered_still_reads_when_modules_are_big_enough():
    # docs/camera.md: at the basket camera's view (720 mm) a printed code has < 1 px per module
    assert StillBarcodeReader().read(_still(view_mm=200.0)).codes == [EAN]
    assert StillBarcodeReader().read(_still(view_mm=720.0)).codes == []


def test_reader_survives_garbage():
    assert StillBarcodeReader().read(b"not a jpeg").codes == []


# ---------------------------------------------------------------- engine: wait for the still

def _engine(wait):
    from cart_gateway.reconcile import CartReconciler, ReconcileConfig
    from cart_bench.synth import catalogue, sku
    skus = [sku("soup", 420.0, 6.0, 199), sku("beans", 425.0, 6.0, 149)]   # told apart only by sight or code
    return CartReconciler("c1", catalogue(skus), ReconcileConfig(wait_for_still=wait, merge_gap_ms=0)), {s.sku: s for s in skus}   # no merge hold: the still wait alone


def _soup_placement(e):
    from cart_gateway.detectors.api import Candidate
    from cart_gateway.reconcile import Unsettled, Vision, WeightChange
    e.step(Unsettled(1, 1, 1000, 0.0))
    e.step(Vision(1200, [[Candidate("beans", 0.5, 0.5, 0.5)], [Candidate("soup", 0.5, 0.5, 0.5)]], (),
                  "c1/scale/1/1", ["c1/1/1", "c1/1/2"]))
    return e.step(WeightChange(1, 2, 1900, 421.0, 421.0, 0.7, 1))


def test_a_placement_waits_for_its_still_and_takes_its_barcode():
    from cart_gateway.reconcile import Vision
    e, cat = _engine(True)
    fx = _soup_placement(e)
    assert not [d for d in fx["decisions"] if d.get("move_id")]            # waiting for the still
    ean = cat["soup"].ean13
    fx = e.step(Vision(2700, (), [ean], "c1/scale/1/1", ["c1/1/3"], still=True))
    d = [d for d in fx["decisions"] if d.get("move_id")][-1]
    assert d["outcome"] == "accept" and "barcode" in d["evidence"]
    assert e.basket()["lines"][0]["sku"] == "soup"


def test_without_wait_for_still_the_burst_decides_at_once():
    e, _ = _engine(False)
    fx = _soup_placement(e)
    assert [d for d in fx["decisions"] if d.get("move_id")]                 # decided on the burst (a prompt)
