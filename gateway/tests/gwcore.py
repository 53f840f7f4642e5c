"""A Gateway driven directly through its handler (no broker), for handler-level tests."""
from __future__ import annotations

import json
from pathlib import Path

from cart_gateway.config import parse_config
from cart_gateway.detectors import Candidate
from cart_gateway.service import Gateway
from cart_bench.testkit import Board, frame_chunks

JUICE = ("SKU0212", 1124.1)      # Dorfkind Juice Orange 1000 g
KETCHUP = ("SKU0217", 350.2)     # Rivale Ketchup Classic 300 g
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 9   # 2308 bytes: 3 chunks of 1024


class Harness:
    def __init__(self, tmp: Path, **cfg):
        base = {"gateway_id": "gw1", "state_dir": str(tmp / "state"), "carts": {"known": ["c001", "c002"]},
                "detector": {"enabled": False},
                # handler tests send a movement's messages 50 ms apart and read the decision at once:
                # settles are decided one by one (the engine's merge of one action's settles, issue 12,
                # is tested in test_reconcile_cases.py)
                "reconcile": {"merge_gap_ms": 0}}
        base.update(cfg)
        self.cfg = parse_config(base)
        self.bursts: list[tuple[str, list[bytes]]] = []
        self.gw = Gateway(self.cfg, submit_burst=self._submit)
        self.t = 1_700_000_000_000
        self.out = []
        self.scale = Board("c001", "scale")
        self.cam = Board("c001", "cam", mono_ms=5000)
        self.next_frame = 1

    def _submit(self, burst_id, jpegs):
        self.bursts.append((burst_id, jpegs))
        return True

    def send(self, topic: str, payload: bytes, dt_ms: int = 50):
        self.t += dt_ms
        s = self.gw.store
        s.begin()
        out = self.gw.handle(topic, payload, self.t)
        s.commit()
        self.out += out
        return out

    def tick(self, dt_ms: int):
        self.t += dt_ms
        s = self.gw.store
        s.begin()
        out = self.gw.tick(self.t)
        s.commit()
        self.out += out
        return out

    def vision(self, sku: str | None, score: float = 0.95, barcodes=()):
        burst_id, jpegs = self.bursts.pop(0)
        s = self.gw.store
        s.begin()
        out = self.gw.apply_vision(burst_id, [[Candidate(sku, score, 0.5, 0.5)] for _ in jpegs],
                                   list(barcodes), self.t)
        s.commit()
        self.out += out
        return out

    def move(self, delta_g: float, sku: str | None = None, frames: int = 2):
        """A movement: unsettled, capture burst + frames, weight; vision for `sku` if given."""
        sc, cam = self.scale, self.cam
        self.send(sc.topic, sc.unsettled())
        useq = sc.seq
        if sku is not None:
            nums = list(range(self.next_frame, self.next_frame + frames))
            self.next_frame += frames
            self.send(cam.topic, cam.capture(nums, ref=f"c001/scale/{sc.epoch}/{useq}"))
            for n in nums:
                for ch in frame_chunks(cam.epoch, n, JPEG):
                    self.send("carts/c001/cam/frame", ch, dt_ms=5)
        self.send(sc.topic, sc.weight(delta_g, unsettled_seq=useq))
        if sku is not None:
            self.vision(sku)

    def last(self, topic: str):
        for p in reversed(self.out):
            if p.topic == topic:
                return json.loads(p.payload)
        return None

    def basket(self, cart="c001"):
        return self.last(f"carts/{cart}/basket")

    def count(self, metric, *labels) -> float:
        m = getattr(self.gw.metrics, metric)
        return (m.labels(*labels) if labels else m)._value.get()


def barcode_jpeg(ean13: str) -> bytes:
    """A JPEG photo-like frame holding an EAN-13 barcode (python-barcode + Pillow)."""
    import io

    import barcode
    from barcode.writer import ImageWriter
    from PIL import Image
    buf = io.BytesIO()
    barcode.get("ean13", ean13[:12], writer=ImageWriter()).write(buf)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()
