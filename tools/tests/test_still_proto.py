"""The still embedding's prototype loss and class-balanced batches (cart_model.still_proto)."""
import numpy as np

from cart_model.still_proto import appearance, balanced_order, proto_loss
from cart_model.train import _tf


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _reference_loss(u, y, n_classes, scale, margin):
    """Brute force: each window against every label's leave-one-out mean of the batch."""
    losses = []
    for i in range(len(u)):
        logits, own_ok = [], False
        for c in range(n_classes):
            members = [j for j in range(len(u)) if y[j] == c and j != i]
            if not members:
                logits.append(-1e4)
                continue
            proto = _unit(u[members].sum(0))
            logits.append(scale * (float(u[i] @ proto) - (margin if c == y[i] else 0.0)))
            own_ok |= c == y[i]
        if own_ok:
            lg = np.array(logits)
            losses.append(np.log(np.exp(lg - lg.max()).sum()) + lg.max() - lg[y[i]])
    return float(np.mean(losses))


def test_the_prototype_loss_scores_each_window_against_the_other_windows_means():
    tf = _tf(2)
    rng = np.random.default_rng(3)
    y = np.array([0, 0, 1, 1, 1, 2, 3, 3], np.int32)          # label 2 has no other window: not scored
    u = _unit(rng.normal(size=(len(y), 16))).astype(np.float32)
    got = float(proto_loss(tf, 5, 16.0, 0.15)(tf.constant(y), tf.constant(u)))
    assert abs(got - _reference_loss(u.astype(np.float64), y, 5, 16.0, 0.15)) < 1e-3


def test_the_prototype_loss_is_low_when_each_label_is_its_own_direction_and_high_when_swapped():
    tf = _tf(2)
    y = np.repeat(np.arange(4), 3).astype(np.int32)
    base = np.eye(4, 8, dtype=np.float32)
    tight = _unit(base[y] + 0.05 * np.random.default_rng(0).normal(size=(12, 8))).astype(np.float32)
    loss = proto_loss(tf, 4, 16.0)
    assert float(loss(tf.constant(y), tf.constant(tight))) < 0.01
    mixed = tight[np.random.default_rng(1).permutation(12)]    # labels no longer match directions
    assert float(loss(tf.constant(y), tf.constant(mixed))) > 1.0


def test_balanced_batches_are_groups_of_one_label_and_cover_every_label():
    y = np.array([0] * 20 + [1] * 2 + [2] * 9 + [3] * 1)
    order = balanced_order(y, 4, np.random.default_rng(0))
    groups = y[order].reshape(-1, 4)
    assert (groups == groups[:, :1]).all()                      # a group is one label
    assert set(groups[:, 0]) == {0, 1, 2, 3}                    # a label with 1-2 windows still appears
    assert abs(len(order) - len(y)) <= 4 * 4                    # about one epoch
    assert set(order) <= set(range(len(y)))


def test_appearance_augmentation_keeps_the_window_shape_and_range():
    tf = _tf(2)
    tf.random.set_seed(0)
    img = tf.constant(np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.float32))
    outs = [appearance(tf, img).numpy() for _ in range(12)]
    assert all(o.shape == (32, 32, 3) and o.min() >= 0 and o.max() <= 255 for o in outs)
    assert sum(not np.allclose(o, img.numpy()) for o in outs) >= 4          # most windows are changed
