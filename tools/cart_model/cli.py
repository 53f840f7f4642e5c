"""cart-model: catalogue, render, train, eval. TensorFlow is imported only by `train`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "gateway" / "cart_gateway" / "data"


def _catalogue(args) -> int:
    from .catalogue_gen import generate, weight_alike_pairs
    cat = generate(args.seed)
    Path(args.out).write_text(cat.to_json() + "\n", encoding="utf-8")
    produce = sum(s.sold_by_weight for s in cat)
    print(json.dumps({"out": str(args.out), "skus": len(cat), "produce": produce,
                      "families": len({s.family for s in cat}), "weight_alike_pairs": len(weight_alike_pairs(cat))}))
    return 0


def _skus(cat, limit: int | None) -> list[str]:
    skus = cat.skus()
    return skus[:limit] if limit else skus


def _render(args) -> int:
    from cart_gateway.catalogue import Catalogue
    from . import dataset
    cat = Catalogue.load(args.catalogue)
    skus = _skus(cat, args.limit_skus)
    t0 = time.time()
    if args.pool:   # the virtual store's pool-style views, personal kinds as classes
        seed = {"train": dataset.POOL_TRAIN_SEED, "val": dataset.POOL_VAL_SEED,
                "test": dataset.POOL_TEST_SEED}[args.split] + 10 * args.seed
        data = dataset.render_pool_split(args.catalogue, skus, args.scenes, seed, workers=args.workers,
                                         crops=args.crops, mix=dataset.parse_mix(args.mix) if args.mix else None)
    else:
        seed0 = {"train": dataset.TRAIN_SEED0, "val": dataset.VAL_SEED0, "test": dataset.TEST_SEED0}[args.split] + args.seed
        data = dataset.render_split(args.catalogue, skus, args.scenes, seed0, workers=args.workers, crops=args.crops)
    dataset.save(Path(args.out), data)
    if args.sheet:
        from PIL import Image
        from .render import contact_sheet
        contact_sheet([Image.fromarray(a) for a in data["x"][:48]]).save(args.sheet)
    print(json.dumps({"out": str(args.out), "scenes": len(data["y"]), "classes": len(data["labels"]),
                      "seconds": round(time.time() - t0, 1)}))
    return 0


def _render_still(args) -> int:
    import numpy as np

    from cart_gateway.catalogue import Catalogue
    from . import still_crops as sc
    skus = _skus(Catalogue.load(args.catalogue), args.limit_skus)
    trained, _ = sc.split_skus(skus)
    seed0 = {"train": sc.STILL_TRAIN0, "val": sc.STILL_VAL0}[args.split] + args.seed
    t0 = time.time()
    if args.from_stills:
        data = sc.render_still_crops(args.catalogue, trained, skus, args.scenes, seed0 + sc.FROM_STILLS0,
                                     Path(args.model_dir), workers=args.workers, personal_share=args.personal_share)
    else:
        data = sc.render_crops(args.catalogue, trained, skus, args.scenes, seed0, workers=args.workers,
                               personal_share=args.personal_share)
    sc.save(Path(args.out), data)
    extra = {}
    if "centre_err" in data:
        e = data["centre_err"]
        extra = {"centre_err_median": round(float(np.median(e)), 4), "centre_err_p90": round(float(np.quantile(e, 0.9)), 4)}
    print(json.dumps({"out": str(args.out), "windows": len(data["y"]), "classes": len(data["labels"]),
                      "seconds": round(time.time() - t0, 1), **extra}))
    return 0


def _train(args) -> int:
    import numpy as np

    if args.lr is None:
        args.lr = 1e-3 if args.stage == "still" else (3e-4 if args.init_from else 3e-3)

    from . import dataset
    if args.stage == "still":
        from . import still_crops as sc
        from .train import train_still
        parts = [sc.load(Path(d)) for d in args.data]
        if any(list(p["labels"]) != list(parts[0]["labels"]) for p in parts):
            print("error: the --data files have different labels", file=sys.stderr)
            return 2
        tr = {"x": np.concatenate([p["x"] for p in parts]), "y": np.concatenate([p["y"] for p in parts]),
              "labels": parts[0]["labels"]}
        va = sc.load(Path(args.val))
        train_still(tr, va, Path(args.out_dir), epochs=args.epochs, batch=args.batch, threads=args.threads,
                    width=args.width, seed=args.seed, budget_minutes=args.budget_minutes,
                    input_size=args.still_input, lr=args.lr, margin=args.margin,
                    margin_warmup=args.margin_warmup, augment=not args.no_augment, init_from=args.init_from,
                    widen=args.widen, embed_dim=args.embed_dim, proto_weight=args.proto_weight,
                    per_class=args.per_class, style_augment=args.style_augment,
                    family_batches=args.family_batches, catalogue_path=args.catalogue)
        return 0
    from .train import train
    if args.photos:
        tr, va = dataset.split_photos(dataset.load_photo_folders(Path(args.photos)))
    else:
        # Each stage needs only its own images: drop the other's before concatenating (memory).
        skip = "x" if args.stage == "crop" else "xc"
        parts = [{k: v for k, v in dataset.load(Path(d)).items() if k != skip} for d in args.data]
        if any(list(p["labels"]) != list(parts[0]["labels"]) for p in parts):
            print("error: the --data files have different labels", file=sys.stderr)
            return 2
        tr = {k: (np.concatenate([p[k] for p in parts]) if k != "labels" else parts[0][k]) for k in parts[0]}
        va = {k: v for k, v in dataset.load(Path(args.val)).items() if k != skip}
        if list(tr["labels"]) != list(va["labels"]):
            print("error: train and val datasets have different labels", file=sys.stderr)
            return 2
    if args.stage == "crop":
        from .train import train_crop
        train_crop(tr, va, Path(args.out_dir), epochs=args.epochs, batch=args.batch, threads=args.threads,
                   width=args.width, seed=args.seed, budget_minutes=args.budget_minutes, lr=args.lr,
                   init_from=args.init_from)
    else:
        train(tr, va, Path(args.out_dir), epochs=args.epochs, batch=args.batch, threads=args.threads,
              width=args.width, seed=args.seed, budget_minutes=args.budget_minutes, lr=args.lr,
              init_from=args.init_from)
    return 0


def _calibrate(args) -> int:
    if args.still:
        from .still_eval import calibrate_still
        calibrate_still(Path(args.model_dir), args.catalogue, args.scenes, args.seed, args.enrol_views, args.workers,
                        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                        enrol_trained=args.enrol_trained)
        return 0
    from .fuse import calibrate_two_stage
    calibrate_two_stage(Path(args.model_dir), args.catalogue, args.scenes, args.seed, args.workers, pool=args.pool,
                        raw_cache=Path(args.raw_cache) if args.raw_cache else None)
    return 0


def _enrol(args) -> int:
    from .still_eval import StillClassifier, enrol, enrol_photos
    model_dir = Path(args.model_dir)
    if args.photos:
        enrol_photos(model_dir, Path(args.photos))
        return 0
    if not args.labels:
        print("error: enrol needs --photos DIR or --labels SKU...", file=sys.stderr)
        return 2
    clf = StillClassifier(model_dir / "still.tflite")
    enrol(clf, args.catalogue, args.labels, args.views, args.workers).save(model_dir / "still_gallery.npz")
    return 0


def _eval(args) -> int:
    res = {}
    sections = set(args.sections.split(","))
    if "detector" in sections:
        from .evaluate import evaluate
        res = evaluate(Path(args.model_dir), args.catalogue, args.scenes, args.seed,
                       latency_frames=args.latency_frames, workers=args.workers)
    if "pool" in sections:
        from .pool_eval import pool_eval
        res["pool"] = pool_eval(Path(args.model_dir), args.catalogue, args.pool_views, args.seed, args.workers)
    if "barcode" in sections and args.stills > 0:
        from .stills_eval import barcode_eval
        res["barcode"] = barcode_eval(args.catalogue, args.stills, args.seed, args.still_res,
                                      args.still_view_mm, args.p_facing)
    if "still" in sections and args.stills > 0 and (Path(args.model_dir) / "still.tflite").exists():
        from .still_eval import still_eval
        res["still"] = still_eval(Path(args.model_dir), args.catalogue, args.stills, args.seed, args.workers,
                                  big=args.still_big, big_views=args.enrol_views,
                                  log=(lambda s: None) if args.json else print,
                                  cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    if not args.json:
        for k, v in res.items():
            if k != "confusion":
                print(f"{k}: {v}")
    print(json.dumps(res))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="cart-model", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("catalogue", help="write the generated store catalogue")
    c.add_argument("--out", default=str(DATA_DIR / "catalogue.json"))
    c.add_argument("--seed", type=int, default=1)
    c.set_defaults(fn=_catalogue)
    r = sub.add_parser("render", help="render a seeded scene dataset (.npz at the model's input size)")
    r.add_argument("--out", required=True)
    r.add_argument("--catalogue", default=None)
    r.add_argument("--split", choices=["train", "val", "test"], default="train")
    r.add_argument("--scenes", type=int, default=1000)
    r.add_argument("--seed", type=int, default=0, help="offset inside the split's seed range")
    r.add_argument("--limit-skus", type=int, default=None, help="only the first N SKUs (smoke runs)")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--crops", action="store_true", help="also store the second stage's native-resolution crops (xc)")
    r.add_argument("--pool", action="store_true",
                   help="pool-style scenes (the simulator's fast-mode views: basket items under the moved one, "
                        "hands, personal items) with the personal:<kind> classes")
    r.add_argument("--mix", default=None,
                   help="--pool: condition shares, e.g. clear=0.1,hard=0.15,personal=0.4,held=0.3 (default: the "
                        "pool's mix; held = a product held as a personal item is, a hard negative)")
    r.add_argument("--sheet", default=None, help="also save a PNG contact sheet of the first 48 scenes")
    r.set_defaults(fn=_render)
    rs = sub.add_parser("render-still", help="render still-classifier training windows (.npz; trained SKUs only)")
    rs.add_argument("--out", required=True)
    rs.add_argument("--catalogue", default=None)
    rs.add_argument("--split", choices=["train", "val"], default="train")
    rs.add_argument("--scenes", type=int, default=1000)
    rs.add_argument("--seed", type=int, default=0, help="offset inside the split's seed range")
    rs.add_argument("--limit-skus", type=int, default=None)
    rs.add_argument("--workers", type=int, default=2)
    rs.add_argument("--personal-share", type=float, default=0.0,
                    help="share of personal items (needs tools/cart_model/personal.py)")
    rs.add_argument("--from-stills", action="store_true",
                    help="cut each window from a real UXGA still around the burst model's stage-1 centroid, "
                         "exactly as the gateway does (--model-dir's detector; ~5x the render time)")
    rs.add_argument("--model-dir", default=str(DATA_DIR), help="--from-stills: the burst detector's directory")
    rs.set_defaults(fn=_render_still)
    t = sub.add_parser("train", help="train, convert to int8 TFLite, fit the temperature")
    t.add_argument("--data", nargs="+", help="train .npz file(s) from `render` (concatenated)")
    t.add_argument("--val", help="validation .npz from `render --split val`")
    t.add_argument("--photos", help="instead: a folder per SKU of real photos")
    t.add_argument("--catalogue", default=None, help="still stage, --family-batches: the families' catalogue")
    t.add_argument("--out-dir", default=str(DATA_DIR))
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--width", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--stage", choices=["frame", "crop", "still"], default="frame",
                   help="frame: stage 1 (whole frame, centroid); crop: stage 2 on the --crops windows "
                        "(writes detector_crop.tflite; then run `calibrate`); still: the still classifier on "
                        "`render-still` windows (writes still.tflite, still_gallery.npz, still.calib.json)")
    t.add_argument("--still-input", type=int, default=None,
                   help="still stage: model input side (default: the 160 px window; smaller is resized)")
    t.add_argument("--lr", type=float, default=None,
                   help="Adam's peak learning rate (default: 3e-3 frame/crop from scratch, 1e-3 still, "
                        "3e-4 with --init-from)")
    t.add_argument("--init-from", default=None,
                   help="fine-tune the int8 model(s) in this directory (e.g. the shipped gateway/cart_gateway/data) "
                        "instead of training from scratch; labels carried over by name (still stage: still.tflite "
                        "and its gallery's rows; any --still-input, the trunk is fully convolutional)")
    t.add_argument("--margin", type=float, default=0.15, help="still stage: CosFace margin after the warm-up")
    t.add_argument("--margin-warmup", type=int, default=2,
                   help="still stage: epochs at margin 0 before it ramps to --margin over as many epochs")
    t.add_argument("--no-augment", action="store_true", help="still stage: no shift/brightness jitter")
    t.add_argument("--widen", type=int, default=1,
                   help="still stage with --init-from: copy every trunk channel this many times (Net2WiderNet)")
    t.add_argument("--embed-dim", type=int, default=None,
                   help="still stage: embedding units (default 128; with --init-from, more units start small)")
    t.add_argument("--proto-weight", type=float, default=0.0,
                   help="still stage: weight of the loss on the batch's view-mean prototypes (0: CosFace only)")
    t.add_argument("--per-class", type=int, default=4,
                   help="still stage, --proto-weight: windows per label in a batch (batch = labels x this)")
    t.add_argument("--family-batches", action="store_true",
                   help="still stage, --proto-weight: each batch holds whole look-alike families (hard negatives)")
    t.add_argument("--style-augment", action="store_true",
                   help="still stage: appearance augmentation (colour cast, gamma, vignette, specular spot, blur)")
    t.add_argument("--budget-minutes", type=float, default=None,
                   help="fit the cosine schedule into this wall time (after timing epoch 1)")
    t.set_defaults(fn=_train)
    k = sub.add_parser("calibrate", help="fit the two-stage fusion weight and temperature on validation frames")
    k.add_argument("--model-dir", default=str(DATA_DIR))
    k.add_argument("--catalogue", default=None)
    k.add_argument("--scenes", type=int, default=2000)
    k.add_argument("--seed", type=int, default=0, help="offset inside the validation seed range")
    k.add_argument("--workers", type=int, default=2)
    k.add_argument("--still", action="store_true",
                   help="the still classifier instead: enrol the held-out SKUs (and personal kinds), "
                        "then fit its temperature on --scenes validation stills")
    k.add_argument("--pool", action="store_true", help="fit the fusion on pool-style views (`render --pool` models)")
    k.add_argument("--raw-cache", default=None,
                   help="keep the stages' raw outputs on the validation frames in this .npz (a refit reuses them)")
    k.add_argument("--enrol-views", type=int, default=6, help="--still: rendered views per enrolled label")
    k.add_argument("--cache-dir", default=None, help="--still: keep the rendered validation stills here")
    k.add_argument("--enrol-trained", action="store_true",
                   help="--still: also add a rendered-views row to every trained label (beside its head row)")
    k.set_defaults(fn=_calibrate)
    n = sub.add_parser("enrol", help="add SKUs (or personal:<kind>) to the still classifier's gallery, no retraining")
    n.add_argument("--model-dir", default=str(DATA_DIR))
    n.add_argument("--photos", help="a folder per label of pictures framed on the item (a store's own photos)")
    n.add_argument("--labels", nargs="+", help="instead: render --views views of these catalogue SKUs")
    n.add_argument("--views", type=int, default=6)
    n.add_argument("--catalogue", default=None)
    n.add_argument("--workers", type=int, default=2)
    n.set_defaults(fn=_enrol)
    e = sub.add_parser("eval", help="evaluate on held-out seeded scenes; last line is one JSON object")
    e.add_argument("--model-dir", default=str(DATA_DIR))
    e.add_argument("--catalogue", default=None)
    e.add_argument("--scenes", type=int, default=1000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--latency-frames", type=int, default=200)
    e.add_argument("--workers", type=int, default=2, help="processes rendering the test scenes")
    e.add_argument("--json", action="store_true", help="print only the JSON line")
    e.add_argument("--sections", default="detector,barcode,still",
                   help="comma list: detector, barcode, still, pool (the burst model on the simulator's pool views)")
    e.add_argument("--pool-views", type=int, default=40, help="pool: views per condition and camera")
    e.add_argument("--still-big", type=int, default=0,
                   help="still: also enrol this many never-trained SKUs of a generated catalogue and score them")
    e.add_argument("--enrol-views", type=int, default=2, help="views per SKU for --still-big")
    e.add_argument("--cache-dir", default=None, help="still: keep the rendered held-out stills here")
    e.add_argument("--stills", type=int, default=150, help="held-out stills for the barcode and still sections (0: skip)")
    e.add_argument("--still-res", choices=["SXGA", "UXGA"], default="UXGA")
    e.add_argument("--still-view-mm", type=float, default=720.0,
                   help="view width at the item's depth (docs/camera.md \"Barcodes on packs\")")
    e.add_argument("--p-facing", type=float, default=0.35, help="share of stills whose code faces the camera")
    e.set_defaults(fn=_eval)
    args = p.parse_args(argv)
    if getattr(args, "fn", None) is _render and args.mix:
        if not args.pool:
            p.error("--mix needs --pool")
        from .dataset import parse_mix
        try:
            parse_mix(args.mix)
        except ValueError as e:
            p.error(str(e))
    if getattr(args, "fn", None) is _train and not args.photos and not (args.data and args.val):
        p.error("train needs --data and --val, or --photos")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
