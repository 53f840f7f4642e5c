"""Warm start: a committed int8 detector back into Keras, so a new round fine-tunes it instead
of training from scratch (hours of CPU went into the committed stages).

The converter folds each BatchNorm into its convolution (weights and bias) and the ReLU6 into
the op, so the Keras model rebuilt here has no BN: conv + bias + ReLU6 per layer, the same
strides and padding, weights dequantized per channel. The first convolution also absorbed
the `Rescaling(1/255)`; it is put back (weights x 255) so that the input stays 0..255 and the
first layer's weights have the scale the others have. Logit rows are carried over by label:
a label the old model lacks (a new personal class) starts from small random weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _const(it, t) -> np.ndarray:
    """A constant tensor of the int8 model, dequantized (per channel when it is)."""
    q = it.get_tensor(t["index"]).astype(np.float32)
    qp = t["quantization_parameters"]
    scales, zeros, axis = qp["scales"], qp["zero_points"], qp["quantized_dimension"]
    if len(scales) == 0:
        return q
    shape = [1] * q.ndim
    if len(scales) > 1:
        shape[axis] = len(scales)
    return (q - np.asarray(zeros, np.float32).reshape(shape)) * np.asarray(scales, np.float32).reshape(shape)


def read_layers(model_path: Path) -> list[dict]:
    """The int8 model's weighted ops in graph order: {op, w (Keras layout), b, stride, act}."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(model_path))
    it.allocate_tensors()
    td = {t["index"]: t for t in it.get_tensor_details()}
    out = []
    for op in it._get_ops_details():
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        _, wi, bi = (int(v) for v in op["inputs"][:3])
        w, b = _const(it, td[wi]), _const(it, td[bi])
        if name == "CONV_2D":             # [out, kh, kw, in] -> [kh, kw, in, out]
            w = w.transpose(1, 2, 3, 0)
        elif name == "DEPTHWISE_CONV_2D":  # [1, kh, kw, ch] -> [kh, kw, ch, 1]
            w = w.transpose(1, 2, 3, 0)
        else:                              # [out, in] -> [in, out]
            w = w.T
        oshape = td[int(op["outputs"][0])]["shape"]
        ishape = td[int(op["inputs"][0])]["shape"]
        stride = int(ishape[1]) // int(oshape[1]) if name != "FULLY_CONNECTED" else 1
        out.append({"op": name, "w": w, "b": b, "stride": stride, "in": int(op["inputs"][0])})
    return out


def _folded_convs(L, x, convs: list[dict]):
    """The committed trunk's convolutions (BN folded into them) as Keras layers on x; the first
    layer's weights take the Rescaling(1/255) back out, as the int8 model reads 0..255."""
    for k, ly in enumerate(convs):
        w = ly["w"] * (255.0 if k == 0 else 1.0)
        if ly["op"] == "CONV_2D":
            layer = L.Conv2D(w.shape[3], w.shape[:2], strides=ly["stride"], padding="same")
        else:
            layer = L.DepthwiseConv2D(w.shape[:2], strides=ly["stride"], padding="same")
        x = layer(x)
        layer.set_weights([w, ly["b"]])
        x = L.ReLU(6.0)(x)
    return x


def build_folded(tf, layers: list[dict], input_hw, old_labels: list[str], new_labels: list[str],
                 centroid_head: bool, seed: int = 0, dropout: float = 0.2):
    """The committed model as Keras (BN folded), its logits re-indexed to new_labels."""
    L = tf.keras.layers
    x_in = L.Input((*input_hw, 3), name="image")
    x = L.Rescaling(1 / 255.0)(x_in)
    convs = [ly for ly in layers if ly["op"] != "FULLY_CONNECTED"]
    fcs = [ly for ly in layers if ly["op"] == "FULLY_CONNECTED"]
    trunk, head_conv = (convs[:-1], convs[-1]) if centroid_head else (convs, None)
    x = _folded_convs(L, x, trunk)
    g = L.GlobalAveragePooling2D()(x)
    g = L.Dropout(dropout)(g)
    logit_fc = fcs[-1]                # the converter emits the centroid FC first, the logits FC last
    w_old, b_old = logit_fc["w"], logit_fc["b"]
    old_index = {lab: i for i, lab in enumerate(old_labels)}
    rng = np.random.default_rng(seed)
    w_new = rng.normal(0, float(w_old.std()) * 0.5, (w_old.shape[0], len(new_labels))).astype(np.float32)
    b_new = np.full(len(new_labels), float(np.median(b_old)), np.float32)
    for j, lab in enumerate(new_labels):
        if lab in old_index:
            w_new[:, j], b_new[j] = w_old[:, old_index[lab]], b_old[old_index[lab]]
    logits_layer = L.Dense(len(new_labels), name="logits")
    logits = logits_layer(g)
    logits_layer.set_weights([w_new, b_new])
    if not centroid_head:
        return tf.keras.Model(x_in, {"logits": logits})
    m_layer = L.Conv2D(head_conv["w"].shape[3], 1, activation="relu")
    m = m_layer(x)
    m_layer.set_weights([head_conv["w"], head_conv["b"]])
    m = L.Flatten()(m)
    c_fc = fcs[0]
    c_layer = L.Dense(2, activation="sigmoid", name="centroid")
    centroid = c_layer(m)
    c_layer.set_weights([c_fc["w"], c_fc["b"]])
    return tf.keras.Model(x_in, {"logits": logits, "centroid": centroid})


def warm_model(tf, model_dir: Path, stage: str, input_hw, new_labels: list[str], seed: int = 0):
    """Keras model of the committed stage ('frame': detector.tflite, 'crop': detector_crop.tflite)."""
    model_dir = Path(model_dir)
    old_labels = [ln.strip() for ln in (model_dir / "detector_labels.txt").read_text(encoding="utf-8").splitlines()
                  if ln.strip()]
    path = model_dir / ("detector.tflite" if stage == "frame" else "detector_crop.tflite")
    return build_folded(tf, read_layers(path), input_hw, old_labels, new_labels,
                        centroid_head=stage == "frame", seed=seed)


def widen_layers(layers: list[dict], factor: int = 2, embed_dim: int | None = None, seed: int = 0) -> list[dict]:
    """Net2WiderNet (Chen et al. 2016) on the folded still trunk: every channel copied `factor`
    times, the next layer's input weights split between the copies at random (shares summing
    to 1, so the function is unchanged and the copies learn apart); `embed_dim` > the old
    width appends embedding units with small weights. Exact up to those new units."""
    rng = np.random.default_rng(seed)
    out, widened = [], False               # widened: this layer's input channels were copied
    for ly in layers:
        w, b = ly["w"].astype(np.float32), ly["b"].astype(np.float32)
        if ly["op"] == "DEPTHWISE_CONV_2D":                  # per channel: copy along the channel axis
            w, b = np.concatenate([w] * factor, axis=2), np.concatenate([b] * factor)
        else:
            axis = 2 if ly["op"] == "CONV_2D" else 0
            if widened:                                       # split the copied inputs' weights
                shares = rng.dirichlet(np.ones(factor), size=w.shape[axis]).astype(np.float32)
                w = np.concatenate([np.moveaxis(np.moveaxis(w, axis, -1) * shares[:, k], -1, axis)
                                    for k in range(factor)], axis=axis)
            if ly["op"] == "CONV_2D":                         # copy the output channels
                w, b = np.concatenate([w] * factor, axis=3), np.concatenate([b] * factor)
            elif embed_dim and embed_dim > w.shape[1]:        # the embedding: new units start small
                extra = rng.normal(0, float(w.std()) * 0.05, (w.shape[0], embed_dim - w.shape[1]))
                w = np.concatenate([w, extra.astype(np.float32)], axis=1)
                b = np.concatenate([b, np.zeros(embed_dim - len(b), np.float32)])
        widened = True
        out.append(dict(ly, w=w, b=b))
    return out


def warm_still_model(tf, model_dir: Path, input_hw, labels: list[str], seed: int = 0, dropout: float = 0.1,
                     widen: int = 1, embed_dim: int | None = None):
    """The committed still classifier (`still.tflite` + `still_gallery.npz`) as Keras: the folded
    trunk, the embedding layer, and a cosine head whose row for each label is that label's first
    gallery entry (its trained head row; a label the gallery lacks starts random). The trunk is
    fully convolutional, so another input side (128, 160) reuses the same weights. widen > 1 /
    embed_dim: the same function in a wider trunk / embedding (`widen_layers`)."""
    from cart_gateway.detectors.still import Gallery
    model_dir = Path(model_dir)
    layers = read_layers(model_dir / "still.tflite")
    if widen > 1 or embed_dim:
        layers = widen_layers(layers, widen if widen > 1 else 1, embed_dim, seed)
    with np.load(model_dir / "still_gallery.npz") as z:
        gallery = Gallery([str(s) for s in z["labels"]], z["vectors"])
    L = tf.keras.layers
    x_in = L.Input((*input_hw, 3), name="image")
    x = L.Rescaling(1 / 255.0)(x_in)
    convs = [ly for ly in layers if ly["op"] != "FULLY_CONNECTED"]
    fcs = [ly for ly in layers if ly["op"] == "FULLY_CONNECTED"]
    x = _folded_convs(L, x, convs)
    g = L.Dropout(dropout)(L.GlobalAveragePooling2D()(x))
    emb_fc = fcs[-1]
    emb_layer = L.Dense(emb_fc["w"].shape[1], name="embed")
    emb = emb_layer(g)
    emb_layer.set_weights([emb_fc["w"], emb_fc["b"]])
    unit = L.UnitNormalization(name="unit")(emb)
    dim = emb_fc["w"].shape[1]
    rng = np.random.default_rng(seed)
    head = rng.normal(0, 1, (dim, len(labels))).astype(np.float32)
    first = {}
    for lb, v in zip(gallery.entry_labels, gallery.vectors):
        first.setdefault(lb, v)
    for j, lb in enumerate(labels):
        if lb in first:
            head[:, j] = 0.0
            head[:len(first[lb]), j] = first[lb]      # a wider embedding: the new units start at 0
    head /= np.linalg.norm(head, axis=0, keepdims=True)
    cos_layer = L.Dense(len(labels), use_bias=False, name="cos",
                        kernel_constraint=tf.keras.constraints.UnitNorm(axis=0))
    cos = cos_layer(unit)
    cos_layer.set_weights([head])
    return tf.keras.Model(x_in, cos), tf.keras.Model(x_in, emb)
