"""Training the still embedding for the way the gateway scores it.

The gateway scores a still by its cosine to each label's gallery row, and the rows that win
are *view means* (the normalised mean of a few enrolled views), not the CosFace head rows the
trainer learns (docs/model_card.md, round 3). So beside the CosFace head this trains on the
prototype itself (prototypical networks, Snell et al. 2017): batches of P labels x K windows,
each window scored against every label's mean of the batch's *other* windows of that label
(leave-one-out), by the same scaled cosine.

Appearance augmentation (`appearance`): colour casts, gamma, saturation, a vignette, a
specular spot, blur and sensor noise, so that the embedding leans less on the renderer's one
lighting: the unseen evaluation style has a warm cast, a specular spot and a vignette (its
fonts and floor cannot be imitated per pixel and are left to generalisation).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cart_gateway.detectors.still import PERSONAL_PREFIX


def proto_loss(tf, n_classes: int, scale: float, margin: float = 0.0):
    """Cross-entropy of each window against the batch's leave-one-out view means (unit inputs).
    A label with no other window in the batch is not a candidate; a window whose own label has
    none is not scored."""
    def loss(y_true, u):
        y = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        own = tf.one_hot(y, n_classes)                          # B x N
        sums = tf.matmul(own, u, transpose_a=True)              # N x d: per-label sums
        dots = tf.matmul(u, sums, transpose_b=True)             # u_i . sum_c
        num = dots - own                                        # minus u_i . u_i = 1 for its own label
        sq = tf.reduce_sum(sums * sums, 1)[None, :] - 2.0 * own * dots + own   # |sum_c - own u_i|^2
        others = tf.reduce_sum(own, 0)[None, :] - own
        valid = others > 0.5
        cos = num / tf.sqrt(tf.maximum(sq, 1e-6))
        logits = tf.where(valid, scale * (cos - margin * own), -1e4)
        scored = tf.cast(tf.reduce_sum(own * tf.cast(valid, tf.float32), 1) > 0, tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        return tf.reduce_sum(ce * scored) / tf.maximum(tf.reduce_sum(scored), 1.0)
    return loss


def _label_groups(y: np.ndarray, c, per_class: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Label c's windows as about n / per_class groups of per_class (with replacement when short)."""
    idx = rng.permutation(np.flatnonzero(y == c))
    n_groups = max(1, int(round(len(idx) / per_class)))
    need = n_groups * per_class
    if need > len(idx):
        idx = np.concatenate([idx, rng.choice(idx, need - len(idx))])
    return list(idx[:need].reshape(n_groups, per_class))


def balanced_order(y: np.ndarray, per_class: int, rng: np.random.Generator,
                   family_of: Sequence[str] | None = None) -> np.ndarray:
    """One epoch's indices as groups of `per_class` windows of one label, groups shuffled: a
    batch of P x per_class is P labels with a prototype each. A label with fewer windows than
    a group is drawn with replacement; a label gets about n / per_class groups.

    family_of (one name per label index): the groups of one family's labels go side by side,
    one group of each label per block, blocks shuffled, so that a batch holds whole look-alike
    families and the prototype loss's negatives are the labels a still is confused with
    (round 4: with 32 random labels of 271 a look-alike was rarely in the batch)."""
    labels = np.unique(y)
    groups = {int(c): _label_groups(y, c, per_class, rng) for c in labels}
    if family_of is None:
        flat = [g for c in labels for g in groups[int(c)]]
        order = rng.permutation(len(flat))
        return np.concatenate([flat[i] for i in order])
    members: dict[str, list[int]] = {}
    for c in labels:
        members.setdefault(family_of[int(c)], []).append(int(c))
    blocks = []
    for fam in sorted(members):
        cs = members[fam]
        for r in range(max(len(groups[c]) for c in cs)):
            block = [groups[c][r] for c in rng.permutation(cs) if r < len(groups[c])]
            blocks.append(np.concatenate(block))
    order = rng.permutation(len(blocks))
    return np.concatenate([blocks[i] for i in order])


def families(labels: Sequence[str], catalogue) -> list[str]:
    """Each label's look-alike family for `balanced_order`: the catalogue's family of an SKU,
    one family for the personal items (told apart from each other, not from a product), and
    the label itself for "no product" or anything the catalogue does not hold."""
    out = []
    for lb in labels:
        if lb in catalogue:
            out.append(f"sku:{catalogue[lb].family}")
        elif lb.startswith(PERSONAL_PREFIX):
            out.append("personal")
        else:
            out.append(lb)
    return out


def appearance(tf, img):
    """One window (float 0..255, H x W x 3) under a random light, camera and colour it was not
    rendered with; about a third of windows are left as rendered."""
    h, w = img.shape[0], img.shape[1]
    u = lambda lo, hi, shape=(): tf.random.uniform(shape, lo, hi)
    x = img / 255.0
    x = x * u(0.8, 1.2, (1, 1, 3))                                     # colour cast
    x = tf.pow(tf.clip_by_value(x, 1e-4, 1.0), u(0.75, 1.35))          # gamma
    grey = tf.reduce_mean(x, -1, keepdims=True)
    x = grey + (x - grey) * u(0.6, 1.4)                                # saturation
    yy, xx = tf.meshgrid(tf.linspace(-1.0, 1.0, h), tf.linspace(-1.0, 1.0, w), indexing="ij")
    x = x * (1.0 - u(0.0, 0.45) * (yy * yy + xx * xx) / 2.0)[..., None]  # vignette
    cy, cx, sd = u(-1.0, 1.0), u(-1.0, 1.0), u(0.2, 0.6)
    spot = tf.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sd * sd))
    x = x + (u(0.0, 0.35) * tf.cast(u(0.0, 1.0) < 0.5, tf.float32)) * spot[..., None]   # specular spot
    blurred = tf.nn.avg_pool2d(x[None], 3, 1, "SAME")[0]
    x = tf.where(u(0.0, 1.0) < 0.2, blurred, x)
    x = x + tf.random.normal(tf.shape(x), 0.0, u(0.0, 0.025))          # sensor noise
    out = tf.clip_by_value(x, 0.0, 1.0) * 255.0
    return tf.where(u(0.0, 1.0) < 0.33, img, out)


def proto_dataset(tf, x: np.ndarray, y: np.ndarray, batch: int, per_class: int, seed: int, augment,
                  style: bool, epochs: int = 1, family_of: Sequence[str] | None = None):
    """An endless class-balanced dataset of (window, {"cos": y, "unit": y}) batches; steps per
    epoch = len(x) // batch. `augment`: the shift/brightness jitter map of train._augmented.
    The order of every epoch (and a spare) is drawn here, as a tensor: a Python generator
    (Dataset.from_generator) runs as a py_func inside the input pipeline, which can deadlock
    beside train._tf's single inter-op thread (tensorflow#48418, #10369)."""
    rng = np.random.default_rng(seed)
    xs, ys = tf.constant(x), tf.constant(y.astype(np.int32))
    order = np.concatenate([balanced_order(y, per_class, rng, family_of) for _ in range(epochs + 1)])

    def one(i):
        img = tf.cast(tf.gather(xs, i), tf.float32)
        if augment is not None:
            img = augment(img)
        if style:
            img = appearance(tf, img)
        lab = tf.gather(ys, i)
        return img, {"cos": lab, "unit": lab}
    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).repeat()
    return ds.map(one, num_parallel_calls=2).batch(batch - batch % per_class).prefetch(2)
