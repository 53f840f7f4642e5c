"""Frames/s through reassembly, detection and barcode reading (the detector thread)."""
from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

from .env import Env, client
from .testkit import Board, frame_chunks


def _test_jpeg(i: int) -> bytes:
    import numpy as np
    from PIL import Image
    # textured like a camera frame (noise compresses badly): ~20-30 kB at 320x240
    rng = np.random.default_rng(i)
    base = np.linspace(0, 255, 320, dtype=np.float32)[None, :, None].repeat(240, 0).repeat(3, 2)
    img = Image.fromarray(np.clip(base + rng.normal(0, 25, (240, 320, 3)), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def bench_frames(bursts: int = 40, per_burst: int = 4) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = Env(Path(d), detector=True)
        try:
            env.start_gateway()
            env.wait_online(60)
            pub = client(env.port, "bench-cam")
            time.sleep(0.5)
            cam = Board("c001", "cam")
            jpegs = [_test_jpeg(i) for i in range(8)]
            n = bursts * per_burst
            t0 = time.perf_counter()
            frame_no = 0
            for k in range(bursts):
                nums = list(range(frame_no + 1, frame_no + per_burst + 1))
                frame_no += per_burst
                for num in nums:
                    for ch in frame_chunks(cam.epoch, num, jpegs[num % 8]):
                        pub.publish("carts/c001/cam/frame", ch, qos=1)
                pub.publish(cam.topic, cam.capture(nums, ref=None, trigger="motion"), qos=1).wait_for_publish(30)
            deadline = time.time() + 300
            done_t = None
            while time.time() < deadline:
                m = env.metrics()
                if m.get("cart_gateway_inference_seconds_count", 0) >= bursts:
                    done_t = time.perf_counter()
                    break
                time.sleep(0.05)
            m = env.metrics()
            pub.loop_stop()
        finally:
            env.stop()
    inf = m.get("cart_gateway_inference_seconds_sum", 0.0)
    res = {"bench": "frames", "frames": n, "bursts": bursts, "frame_bytes": len(jpegs[0]),
           "frames_per_s": round(n / (done_t - t0), 1) if done_t else None,
           "bursts_run": m.get("cart_gateway_inference_seconds_count"),
           "detector_dropped": m.get("cart_gateway_detector_dropped_total"),
           "inference_ms_per_frame": round(inf / n * 1000, 2) if n else None}
    print(f"frames with detection: {res['frames_per_s']} frames/s ({res['bursts_run']} bursts, "
          f"{res['inference_ms_per_frame']} ms inference per frame, dropped {res['detector_dropped']})")
    return res

