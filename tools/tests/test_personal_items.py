"""cart_model.personal: the shopper's own things the classifier learns (bags, phones, wallets, keys, toys)."""
import numpy as np
import pytest

from cart_model.personal import KINDS, draw_personal


def test_kinds_are_the_policy_labels():
    assert KINDS == ("bag", "phone", "wallet", "keys", "toy")


@pytest.mark.parametrize("kind", KINDS)
def test_tile_is_rgba_item_on_transparent_background(kind):
    rng = np.random.default_rng(3)
    for size in (32, 96, 160):
        a = draw_personal(kind, rng, size)
        assert a.shape == (size, size, 4) and a.dtype == np.uint8
        cover = (a[..., 3] > 0).mean()
        assert 0.04 < cover < 0.95, (kind, size, cover)     # an item, with background around it
        assert a[0, 0, 3] == 0 or a[-1, -1, 3] == 0 or a[0, -1, 3] == 0 or a[-1, 0, 3] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_same_generator_state_same_image_and_new_draws_differ(kind):
    a = draw_personal(kind, np.random.default_rng(11), 64)
    b = draw_personal(kind, np.random.default_rng(11), 64)
    assert np.array_equal(a, b)
    rng = np.random.default_rng(12)
    tiles = [draw_personal(kind, rng, 64).astype(np.int16) for _ in range(12)]
    for i in range(len(tiles)):
        for j in range(i):
            assert np.abs(tiles[i] - tiles[j]).mean() > 2.0, (kind, i, j)   # no two draws alike


def _features(a: np.ndarray) -> np.ndarray:
    """Crude, rotation-tolerant features: colour of the item, its cover and its spread."""
    m = a[..., 3] > 127
    rgb = a[..., :3][m].astype(np.float64) / 255 if m.any() else np.zeros((1, 3))
    hsv_sat = rgb.max(1) - rgb.min(1)
    ys, xs = np.nonzero(m) if m.any() else (np.zeros(1), np.zeros(1))
    cov = np.cov(np.stack([xs, ys])) if len(xs) > 2 else np.eye(2)
    ev = np.sort(np.linalg.eigvalsh(cov))
    elong = ev[0] / max(ev[1], 1e-6)
    fill = m.sum() / max(1.0, np.pi * 4 * np.sqrt(max(ev[0], 1e-6) * max(ev[1], 1e-6)))
    return np.array([*rgb.mean(0), *rgb.std(0), hsv_sat.mean(), elong, fill])


def test_kinds_are_told_apart_by_a_simple_classifier():
    """Kinds differ visibly: even a nearest-centroid rule on 9 crude features beats chance (0.2) well."""
    rng = np.random.default_rng(5)
    train = {k: np.array([_features(draw_personal(k, rng, 64)) for _ in range(60)]) for k in KINDS}
    mu = {k: v.mean(0) for k, v in train.items()}
    sd = np.concatenate(list(train.values())).std(0) + 1e-9
    right = n = 0
    for k in KINDS:
        for _ in range(30):
            f = _features(draw_personal(k, rng, 64))
            guess = min(KINDS, key=lambda c: np.sum(((f - mu[c]) / sd) ** 2))
            right += guess == k
            n += 1
    assert right / n > 0.5, right / n


def test_unknown_kind_and_tiny_tile_are_refused_by_name():
    with pytest.raises(ValueError, match="umbrella"):
        draw_personal("umbrella", np.random.default_rng(0), 64)
    with pytest.raises(ValueError, match="size"):
        draw_personal("bag", np.random.default_rng(0), 4)
