"""Train the detector from scratch (TensorFlow/Keras, imported lazily), convert it to
full-integer int8 TFLite, and fit the temperature on the validation split with the
converted model, which is what the gateway runs."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .calibrate import ece, fit_temperature


def _tf(threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:        # TF already ran in this process: its thread pools are fixed
        pass
    return tf


def build_model(tf, n_classes: int, input_hw=(96, 128), width: float = 1.0, centroid_head: bool = True):
    """A small MobileNet-like trunk (depthwise-separable blocks, ReLU6, BN) with two heads:
    class logits (n_classes, index 0 = no product) from global pooling, and the item's
    centroid (cx, cy in 0..1) from a flattened 1x1-conv map, which keeps where things are.
    The second stage (native-resolution crop) has the logits head only."""
    L = tf.keras.layers
    x_in = L.Input((*input_hw, 3), name="image")
    x = _trunk(tf, x_in, width)
    g = L.GlobalAveragePooling2D()(x)
    g = L.Dropout(0.2)(g)
    logits = L.Dense(n_classes, name="logits")(g)
    if not centroid_head:
        return tf.keras.Model(x_in, {"logits": logits})
    m = L.Conv2D(8, 1, activation="relu")(x)
    m = L.Flatten()(m)
    centroid = L.Dense(2, activation="sigmoid", name="centroid")(m)
    return tf.keras.Model(x_in, {"logits": logits, "centroid": centroid})


def _trunk(tf, x_in, width: float):
    """3x3 conv (stride 2) then six depthwise-separable blocks, BN + ReLU6 throughout."""
    L = tf.keras.layers
    ch = lambda c: max(8, int(c * width))
    x = L.Rescaling(1 / 255.0)(x_in)
    x = L.Conv2D(ch(16), 3, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    for filters, stride in [(32, 2), (48, 2), (48, 1), (96, 2), (96, 1), (160, 2)]:
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
        x = L.Conv2D(ch(filters), 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
    return x


def _centroid_loss(tf):
    def loss(y_true, y_pred):  # y_true: cx, cy, has_product; no centroid for "no product"
        err = tf.reduce_sum(tf.square(y_true[:, :2] - y_pred), axis=-1)
        return tf.reduce_mean(err * y_true[:, 2])
    return loss


def convert_int8(tf, model, rep_x: np.ndarray) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for i in range(len(rep_x)):
            yield [rep_x[i:i + 1].astype(np.float32)]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def tflite_outputs(model_path: Path, labels_path: Path, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """Raw outputs (logits..., cx, cy) of a converted model, through the gateway's own detector."""
    from cart_gateway.detectors import create_detector
    det = create_detector({"type": "cpu", "model_path": model_path, "labels_path": labels_path,
                           "num_threads": threads, "calibration_path": model_path.with_suffix(".none.json")})
    return np.stack([det.detect_raw(xi) for xi in x])


def train(train_data: dict, val_data: dict, out_dir: Path, epochs: int = 20, batch: int = 64,
          threads: int = 2, width: float = 1.0, seed: int = 0, lr: float = 3e-3,
          budget_minutes: float | None = None, init_from: Path | None = None, log=print) -> dict:
    """Stage 1. With budget_minutes the cosine schedule is per epoch and shortened to fit the
    wall time (_TimeBudget); without, it is per step over `epochs`. init_from: a model
    directory whose detector.tflite is fine-tuned (warmstart.py) instead of a fresh trunk."""
    tf = _tf(threads)
    tf.keras.utils.set_random_seed(seed)
    labels = [str(s) for s in train_data["labels"]]
    x, y, c = train_data["x"], train_data["y"], train_data["c"]
    if init_from:
        from .warmstart import warm_model
        model = warm_model(tf, Path(init_from), "frame", x.shape[1:3], labels, seed)
    else:
        model = build_model(tf, len(labels), x.shape[1:3], width)
    steps = epochs * int(np.ceil(len(x) / batch))
    budget = _TimeBudget(tf, lr, epochs, budget_minutes * 60, log) if budget_minutes else None
    sched = lr if budget else tf.keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.02)
    model.compile(optimizer=tf.keras.optimizers.Adam(sched),
                  loss={"logits": tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        "centroid": _centroid_loss(tf)},
                  loss_weights={"logits": 1.0, "centroid": 5.0},
                  metrics={"logits": ["accuracy"]})
    t0 = time.time()
    hist = model.fit(x.astype(np.float32), {"logits": y, "centroid": c}, batch_size=batch, epochs=epochs,
                     validation_data=(val_data["x"].astype(np.float32), {"logits": val_data["y"], "centroid": val_data["c"]}),
                     verbose=2, shuffle=True, callbacks=budget.callbacks() if budget else None)
    train_s = time.time() - t0
    epochs = len(hist.history.get("loss", [])) or epochs
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, labels_path = out_dir / "detector.tflite", out_dir / "detector_labels.txt"
    rng = np.random.default_rng(seed)
    rep = x[rng.choice(len(x), min(300, len(x)), replace=False)]
    model_path.write_bytes(convert_int8(tf, model, rep))
    labels_path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    # Temperature from the int8 model's own logits on the validation split.
    raw = tflite_outputs(model_path, labels_path, val_data["x"], threads)
    logits = raw[:, :len(labels)]
    t = fit_temperature(logits, val_data["y"])
    from cart_gateway.detectors.api import softmax
    info = {"temperature": round(t, 4),
            "val_top1_int8": float((logits.argmax(1) == val_data["y"]).mean()),
            "val_ece_before": round(ece(softmax(logits), val_data["y"]), 4),
            "val_ece_after": round(ece(softmax(logits / t), val_data["y"]), 4),
            "val_n": int(len(val_data["y"])), "train_n": int(len(y)), "epochs": epochs,
            "init_from": Path(init_from).name if init_from else None, "lr": lr,
            "train_seconds": round(train_s, 1), "model_bytes": model_path.stat().st_size,
            "keras_val_acc": [round(float(v), 4) for v in hist.history.get("val_logits_accuracy", [])]}
    model_path.with_suffix(".calib.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log(json.dumps(info))
    return info


class _TimeBudget:
    """Per-epoch cosine learning rate over as many epochs as fit in a wall-time budget:
    after the first epoch the run knows its epoch time and shortens the schedule to fit."""

    def __init__(self, tf, lr: float, epochs: int, budget_s: float | None, log):
        self.tf, self.lr, self.epochs, self.budget_s, self.log = tf, lr, epochs, budget_s, log
        self.t0 = None

    def callbacks(self):
        tf = self.tf
        outer = self

        class CB(tf.keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                outer.t0 = time.time()

            def on_epoch_begin(self, epoch, logs=None):
                t = epoch / max(1, outer.epochs - 1) if outer.epochs > 1 else 0.0
                lr = outer.lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(1.0, t))))
                self.model.optimizer.learning_rate.assign(lr)

            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0 and outer.budget_s:
                    fit = int(outer.budget_s // max(1e-3, time.time() - outer.t0))
                    if fit < outer.epochs:
                        outer.log(f"time budget: {outer.epochs} -> {max(1, fit)} epochs")
                        outer.epochs = max(1, fit)
                if epoch + 1 >= outer.epochs:
                    self.model.stop_training = True
        return [CB()]


def train_crop(train_data: dict, val_data: dict, out_dir: Path, epochs: int = 20, batch: int = 64,
               threads: int = 2, width: float = 1.0, seed: int = 0, lr: float = 3e-3,
               budget_minutes: float | None = None, init_from: Path | None = None, log=print) -> dict:
    """Second stage: classify the native-resolution crop (`xc`) around the item. Writes
    detector_crop.tflite (int8, logits only) into out_dir; labels are the first stage's.
    init_from: fine-tune that directory's detector_crop.tflite (warmstart.py)."""
    tf = _tf(threads)
    tf.keras.utils.set_random_seed(seed)
    if "xc" not in train_data or "xc" not in val_data:
        raise ValueError("the second stage needs crops: render with `cart-model render --crops`")
    labels = [str(s) for s in train_data["labels"]]
    x, y = train_data["xc"], train_data["y"]
    if init_from:
        from .warmstart import warm_model
        model = warm_model(tf, Path(init_from), "crop", x.shape[1:3], labels, seed)
    else:
        model = build_model(tf, len(labels), x.shape[1:3], width, centroid_head=False)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss={"logits": tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                  metrics={"logits": ["accuracy"]})
    budget = _TimeBudget(tf, lr, epochs, budget_minutes * 60 if budget_minutes else None, log)
    t0 = time.time()
    hist = model.fit(x, {"logits": y}, batch_size=batch, epochs=epochs,
                     validation_data=(val_data["xc"], {"logits": val_data["y"]}),
                     verbose=2, shuffle=True, callbacks=budget.callbacks())
    train_s = time.time() - t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "detector_crop.tflite"
    rng = np.random.default_rng(seed)
    rep = x[rng.choice(len(x), min(300, len(x)), replace=False)]
    path.write_bytes(convert_int8(tf, model, rep))
    info = {"crop_train_n": int(len(y)), "crop_epochs": len(hist.history.get("loss", [])),
            "crop_train_seconds": round(train_s, 1), "crop_model_bytes": path.stat().st_size,
            "crop_keras_val_acc": [round(float(v), 4) for v in hist.history.get("val_accuracy",
                                   hist.history.get("val_logits_accuracy", []))]}
    log(json.dumps(info))
    return info


# ---------------------------------------------------------------- still crop classifier
STILL_SCALE = 16.0      # CosFace scale s: logits = s * (cos - m * onehot) in training
STILL_MARGIN = 0.15     # CosFace margin m (Wang et al. 2018): tighter classes, so unseen SKUs separate
STILL_EMBED = 128


def build_still_model(tf, n_classes: int, input_hw, width: float = 1.0, dim: int = STILL_EMBED):
    """Trunk -> pooled -> dense embedding (`embed`, what the gateway runs) -> cosine head
    (`cos`, training only: its normalised weights become the trained classes' gallery rows)."""
    L = tf.keras.layers
    x_in = L.Input((*input_hw, 3), name="image")
    g = L.GlobalAveragePooling2D()(_trunk(tf, x_in, width))
    g = L.Dropout(0.1)(g)
    emb = L.Dense(dim, name="embed")(g)
    unit = L.UnitNormalization(name="unit")(emb)
    cos = L.Dense(n_classes, use_bias=False, name="cos",
                  kernel_constraint=tf.keras.constraints.UnitNorm(axis=0))(unit)
    return tf.keras.Model(x_in, cos), tf.keras.Model(x_in, emb)


def _cosface_loss(tf, n_classes: int, s: float = STILL_SCALE, m=STILL_MARGIN):
    """`m` may be a tf.Variable so a callback can warm the margin up from 0."""
    def loss(y_true, cos):
        y = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        logits = s * (cos - m * tf.one_hot(y, n_classes))
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    return loss


def _margin_warmup(tf, var, margin: float, warmup_epochs: int):
    """Margin 0 (plain normalised softmax) for the first epochs, then ramped to `margin`: a
    from-scratch trunk under a full CosFace margin collapses to the commonest label."""
    class CB(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            var.assign(margin * min(1.0, max(0.0, (epoch - warmup_epochs + 1) / max(1, warmup_epochs))))
    return CB()


def _jitter(tf, side: int):
    """A few pixels of shift and some brightness/contrast jitter on one window: ~15 windows
    per SKU is too few to learn looks rather than the exact renders. No flips (text)."""
    pad = max(2, side // 16)

    def aug(img):
        img = tf.cast(img, tf.float32)
        img = tf.image.resize_with_crop_or_pad(img, side + 2 * pad, side + 2 * pad)
        img = tf.image.random_crop(img, (side, side, 3))
        img = tf.image.random_brightness(img, 20.0)
        img = tf.image.random_contrast(img, 0.8, 1.2)
        return tf.clip_by_value(img, 0.0, 255.0)
    return aug


def _augmented(tf, x, y, batch: int, seed: int, style: bool = False):
    """Shuffled training batches under `_jitter` (and, with `style`, still_proto.appearance)."""
    aug = _jitter(tf, x.shape[1])
    if style:
        from .still_proto import appearance
        jit = aug

        def aug(img):
            return appearance(tf, jit(img))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.map(lambda img, lab: (aug(img), lab), num_parallel_calls=2).batch(batch).prefetch(2)


def train_still(train_data: dict, val_data: dict, out_dir: Path, epochs: int = 8, batch: int = 64,
                threads: int = 2, width: float = 1.0, seed: int = 0, lr: float = 1e-3,
                budget_minutes: float | None = None, input_size: int | None = None,
                margin: float = STILL_MARGIN, margin_warmup: int = 2, augment: bool = True,
                init_from: Path | None = None, widen: int = 1, embed_dim: int | None = None,
                proto_weight: float = 0.0, per_class: int = 4, style_augment: bool = False,
                family_batches: bool = False, catalogue_path=None, log=print) -> dict:
    """Still classifier: writes still.tflite (int8 in, embedding out), still_gallery.npz
    (the trained classes' head directions) and still.calib.json (temperature fitted on the
    validation windows with the int8 model; `cart-model calibrate --still` refits it on
    real stills). init_from: fine-tune that directory's still.tflite + gallery (warmstart.py),
    `widen` times as wide and with `embed_dim` units if given. proto_weight > 0: also the
    loss on the batch's view-mean prototypes (still_proto.py), batches of labels x per_class;
    style_augment: appearance augmentation (still_proto.appearance); family_batches: those
    batches hold whole look-alike families of the catalogue (still_proto.balanced_order)."""
    import hashlib

    from cart_gateway.detectors.api import softmax
    from cart_gateway.detectors.still import Gallery, _unit
    tf = _tf(threads)
    tf.keras.utils.set_random_seed(seed)
    labels = [str(s) for s in train_data["labels"]]
    x, y = train_data["x"], train_data["y"]
    if input_size and input_size != x.shape[1]:       # train on the windows as the gateway resizes them
        from cart_gateway.detectors.still import fit_window
        x = np.stack([fit_window(w, input_size) for w in x])
        val_data = dict(val_data, x=np.stack([fit_window(w, input_size) for w in val_data["x"]]))
    if init_from:
        from .warmstart import warm_still_model
        model, embed = warm_still_model(tf, Path(init_from), x.shape[1:3], labels, seed,
                                        widen=widen, embed_dim=embed_dim)
    else:
        model, embed = build_still_model(tf, len(labels), x.shape[1:3], width, dim=embed_dim or STILL_EMBED)
    m_var = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    budget = _TimeBudget(tf, lr, epochs, budget_minutes * 60 if budget_minutes else None, log)
    callbacks = budget.callbacks() + [_margin_warmup(tf, m_var, margin, margin_warmup)]
    t0 = time.time()
    if proto_weight > 0:
        from .still_proto import families, proto_dataset, proto_loss
        family_of = None
        if family_batches:
            from cart_gateway.catalogue import Catalogue
            family_of = families(labels, Catalogue.load(catalogue_path))
        fit_model = tf.keras.Model(model.input, {"cos": model.output, "unit": model.get_layer("unit").output})
        fit_model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                          loss={"cos": _cosface_loss(tf, len(labels), m=m_var),
                                "unit": proto_loss(tf, len(labels), STILL_SCALE, margin)},
                          loss_weights={"cos": 1.0, "unit": proto_weight}, metrics={"cos": ["accuracy"]})
        ds = proto_dataset(tf, x, y, batch, per_class, seed, _jitter(tf, x.shape[1]) if augment else None,
                           style_augment, epochs, family_of)
        hist = fit_model.fit(ds, steps_per_epoch=max(1, len(x) // batch), epochs=epochs, verbose=2,
                             validation_data=(val_data["x"], {"cos": val_data["y"], "unit": val_data["y"]}),
                             callbacks=callbacks)
    else:
        model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=_cosface_loss(tf, len(labels), m=m_var),
                      metrics=["accuracy"])
        # appearance augmentation always goes with the jitter
        fit_x = _augmented(tf, x, y, batch, seed, style_augment) if augment or style_augment else x
        hist = model.fit(fit_x, y if fit_x is x else None, batch_size=batch if fit_x is x else None, epochs=epochs,
                         validation_data=(val_data["x"], val_data["y"]), verbose=2, shuffle=True,
                         callbacks=callbacks)
    train_s = time.time() - t0
    hkey = lambda k: hist.history.get(k, hist.history.get(k.replace("accuracy", "cos_accuracy"), []))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "still.tflite"
    rng = np.random.default_rng(seed)
    path.write_bytes(convert_int8(tf, embed, x[rng.choice(len(x), min(300, len(x)), replace=False)]))
    w = _unit(model.get_layer("cos").get_weights()[0].T.astype(np.float32))
    Gallery(labels, w).save(out_dir / "still_gallery.npz")
    # Temperature on the validation windows, through the int8 model and the gallery as the gateway scores.
    from cart_gateway.detectors.still import StillClassifier
    cal_path = out_dir / "still.calib.json"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    cal_path.write_text(json.dumps({"scale": STILL_SCALE, "temperature": 1.0, "model_sha256": sha}), encoding="utf-8")
    clf = StillClassifier(path, num_threads=threads)
    order = {lb: i for i, lb in enumerate(clf.gallery.labels)}
    yv = np.array([order[labels[i]] for i in val_data["y"]])
    cos = np.stack([clf.gallery.cosines(clf.embed_window(v)) for v in val_data["x"]])
    t = fit_temperature(cos * STILL_SCALE, yv)
    info = {"scale": STILL_SCALE, "temperature": round(t, 4), "model_sha256": sha, "fitted_on": "val windows",
            "val_top1_int8": round(float((cos.argmax(1) == yv).mean()), 4),
            "val_ece": round(ece(softmax(cos * STILL_SCALE / t), yv), 4), "val_n": int(len(yv)),
            "train_n": int(len(y)), "epochs": len(hist.history.get("loss", [])), "train_seconds": round(train_s, 1),
            "model_bytes": path.stat().st_size, "classes": len(labels),
            "lr": lr, "margin": margin, "margin_warmup_epochs": margin_warmup, "augment": augment,
            "init_from": Path(init_from).name if init_from else None, "input": int(x.shape[1]),
            "widen": widen, "embed_dim": int(w.shape[1]), "proto_weight": proto_weight,
            "per_class": per_class if proto_weight > 0 else None, "style_augment": style_augment,
            "family_batches": bool(family_batches and proto_weight > 0),
            "keras_train_acc": [round(float(v), 4) for v in hkey("accuracy")],
            "keras_val_acc": [round(float(v), 4) for v in hkey("val_accuracy")]}
    cal_path.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log(json.dumps(info))
    return info
