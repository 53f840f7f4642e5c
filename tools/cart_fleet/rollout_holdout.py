"""The held-out scenes a gateway evaluates a new model on before it swaps it in
(cart_gateway/data/holdout, rollout.Checker): seeded scenes of the test split, rendered
and JPEG-encoded as the camera sends them, with their truth.

    PYTHONPATH=gateway:tools python -m cart_fleet.rollout_holdout --out gateway/cart_gateway/data/holdout
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# Far above the seeds `cart-model evaluate` draws (TEST_SEED0 + 0..scenes): disjoint from
# training, validation and the model card's test scenes.
HOLDOUT_SEED_OFFSET = 1_000_000


def write_holdout(out: Path, scenes: int = 64, catalogue=None, workers: int = 1) -> dict:
    from cart_gateway.detectors import create_detector, default_detector_config
    from cart_model import dataset
    skus = create_detector(default_detector_config()).labels[1:]
    seed0 = dataset.TEST_SEED0 + HOLDOUT_SEED_OFFSET
    jpegs, truths = dataset.render_jpegs(catalogue, skus, scenes, seed0, workers)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (jpeg, truth) in enumerate(zip(jpegs, truths)):
        name = f"scene{i:03d}.jpg"
        (out / name).write_bytes(jpeg)
        rows.append({"file": name, "sku": truth["sku"]})
    doc = {"v": 1, "source": f"cart_model.dataset.render_jpegs, test split seeds {seed0}..{seed0 + scenes - 1}",
           "scenes": rows}
    (out / "scenes.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="cart-fleet holdout", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scenes", type=int, default=64)
    ap.add_argument("--catalogue", help="catalogue JSON (default: the packaged one)")
    args = ap.parse_args(argv)
    doc = write_holdout(args.out, args.scenes, args.catalogue)
    print(f"{args.out}: {len(doc['scenes'])} scenes ({doc['source']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
