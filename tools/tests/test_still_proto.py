"""The still embedding's prototype loss and class-balanced batches (cart_model.still_proto)."""
import numpy as np

from cart_gateway.catalogue import Catalogue
from cart_model.still_proto import appearance, balanced_order, families, proto_loss
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


def _family_runs(seq, family_of):
    """Maximal runs of one family along a sequence of groups' labels: (family, length)."""
    runs = []
    for c in seq:
        f = family_of[c]
        if runs and runs[-1][0] == f:
            runs[-1][1] += 1
        else:
            runs.append([f, 1])
    return runs


def test_family_batches_put_a_familys_labels_side_by_side():
    family_of = ["none", "F1", "F1", "F1", "F2", "F2", "F3"]
    y = np.concatenate([np.full(n, c) for c, n in enumerate([12, 8, 8, 9, 8, 7, 8])])
    order = balanced_order(y, 4, np.random.default_rng(0), family_of)
    groups = y[order].reshape(-1, 4)
    assert (groups == groups[:, :1]).all()                      # still groups of one label
    seq = [int(c) for c in groups[:, 0]]
    assert sorted(set(seq)) == list(range(7))
    runs = _family_runs(seq, family_of)
    # a block is one group of each of a family's labels: F1 comes in runs of 3 labels, F2 of 2
    assert all(n % 3 == 0 for f, n in runs if f == "F1") and all(n % 2 == 0 for f, n in runs if f == "F2")
    assert len(runs) <= 9                                        # 9 blocks: none 3, F1 2, F2 2, F3 2
    plain = balanced_order(y, 4, np.random.default_rng(0))       # without families: the same epoch length
    assert len(plain) == len(order)
    assert len(_family_runs([int(c) for c in y[plain].reshape(-1, 4)[:, 0]], family_of)) > 9


def test_families_come_from_the_catalogue_and_personal_items_share_one():
    cat = Catalogue.load()
    first = next(iter(cat))
    a, b = [s for s in cat if s.family == first.family][:2]
    fam = families([a.sku, b.sku, "personal:bag", "personal:phone", "__none__"], cat)
    assert fam[0] == fam[1] == f"sku:{a.family}"
    assert fam[2] == fam[3] == "personal" and fam[4] == "__none__"


def test_appearance_augmentation_keeps_the_window_shape_and_range():
    tf = _tf(2)
    tf.random.set_seed(0)
    img = tf.constant(np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.float32))
    outs = [appearance(tf, img).numpy() for _ in range(12)]
    assert all(o.shape == (32, 32, 3) and o.min() >= 0 and o.max() <= 255 for o in outs)
    assert sum(not np.allclose(o, img.numpy()) for o in outs) >= 4          # most windows are changed
