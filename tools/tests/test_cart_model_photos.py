"""`cart-model train --photos`: a folder per SKU of real photos."""
import pytest

from cart_gateway.catalogue import Catalogue
from cart_model import dataset
from cart_model.render import encode_jpeg, render_scene


def test_folder_per_sku_dataset(tmp_path):
    cat = Catalogue.load()
    skus = cat.skus()[:2]
    for k, sku in enumerate([*skus, "__none__"]):
        (tmp_path / sku).mkdir()
        for i in range(3):
            img, _ = render_scene(cat, None if sku == "__none__" else sku, k * 10 + i)
            if i == 2:
                img.save(tmp_path / sku / f"{i}.png")
            else:
                (tmp_path / sku / f"{i}.jpg").write_bytes(encode_jpeg(img))
    (tmp_path / skus[0] / "notes.txt").write_text("ignored")
    d = dataset.load_photo_folders(tmp_path)
    assert list(d["labels"]) == ["__none__", *skus]
    assert d["x"].shape == (9, 96, 128, 3)
    assert sorted(d["y"].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (d["c"][:, 2] == 0).all()  # no centroid truth for photos: its loss is masked
    tr, va = dataset.split_photos(d, 0.2)
    assert len(tr["y"]) + len(va["y"]) == 9 and len(va["y"]) >= 1


def test_empty_photo_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no SKU folders"):
        dataset.load_photo_folders(tmp_path)
    (tmp_path / "SKU0001").mkdir()
    with pytest.raises(ValueError, match="no .jpg/.png"):
        dataset.load_photo_folders(tmp_path)
