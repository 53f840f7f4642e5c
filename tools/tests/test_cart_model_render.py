"""Catalogue generator and renderer: seeded, valid barcodes, sensible truth."""
import numpy as np
import pytest
import zxingcpp

from cart_gateway.catalogue import Catalogue, ean13_valid
from cart_model.catalogue_gen import e_mark_tne_g, generate, pack_spread_g, weight_alike_pairs
from cart_model.render import CAMERA_SIZE, _barcode, encode_jpeg, package_image, render_scene


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


def test_generator_is_seeded_and_matches_the_committed_file(cat):
    a, b = generate(1), generate(1)
    assert a.to_json() == b.to_json()
    assert a.to_json() == Catalogue.load().to_json()  # the committed file is `cart-model catalogue`
    assert generate(2).to_json() != a.to_json()


def test_e_mark_tolerances():
    # Directive 76/211/EEC: 9% at <= 50 g, 4.5 g at 50..100 g, 9 g at 200..300 g, 15 g at 0.5..1 kg, 1.5% above.
    assert e_mark_tne_g(20) == pytest.approx(1.8)
    assert e_mark_tne_g(80) == pytest.approx(4.5)
    assert e_mark_tne_g(250) == pytest.approx(9.0)
    assert e_mark_tne_g(750) == pytest.approx(15.0)
    assert e_mark_tne_g(2000) == pytest.approx(30.0)
    assert pack_spread_g(250, 0) == pytest.approx(9 / 1.96, abs=0.01)


def test_weight_alike_pairs_exist_across_families(cat):
    pairs = weight_alike_pairs(cat)
    assert len(pairs) > 50
    assert all(cat[a].family != cat[b].family for a, b in pairs)


@pytest.mark.parametrize("shape", ["box", "bottle", "can", "bag"])
def test_package_carries_its_real_barcode(cat, shape):
    # The symbol pasted onto the package is the SKU's own EAN-13. At QVGA scale it is
    # only ~30 px wide (unreadable, as on the real camera), so decode the source symbol.
    sku = next(s for s in cat if s.shape == shape)
    codes = [r.text for r in zxingcpp.read_barcodes(_barcode(sku.ean13))]
    assert codes == [sku.ean13] and ean13_valid(sku.ean13)
    assert package_image(sku).mode == "RGBA"


def test_scene_is_reproducible_and_truth_sane(cat):
    sku = cat.skus()[10]
    a, ta = render_scene(cat, sku, 123, [cat.skus()[3]], occlusion=0.3, blur=0.5)
    b, tb = render_scene(cat, sku, 123, [cat.skus()[3]], occlusion=0.3, blur=0.5)
    c, _ = render_scene(cat, sku, 124, [cat.skus()[3]], occlusion=0.3, blur=0.5)
    assert a.size == CAMERA_SIZE
    assert np.array_equal(np.asarray(a), np.asarray(b)) and ta == tb
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert ta["sku"] == sku and 0 <= ta["cx"] <= 1 and 0 <= ta["cy"] <= 1
    x0, y0, x1, y1 = ta["bbox"]
    assert x0 <= ta["cx"] <= x1 and y0 <= ta["cy"] <= y1
    jpeg = encode_jpeg(a, 80)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) < 131072  # fits one protocol frame (§7)


def test_no_product_scene(cat):
    img, t = render_scene(cat, None, 5, cat.skus()[:3], occlusion=0.4, blur=0.0)
    assert t == {"sku": None, "cx": 0.5, "cy": 0.5, "bbox": None}


def test_item_partly_out_of_view_has_clipped_truth(cat):
    _, t = render_scene(cat, cat.skus()[0], 7, [], out_of_view=0.4, scale=1.3)
    x0, y0, x1, y1 = t["bbox"]
    assert x0 == 0 or y0 == 0 or x1 == 1 or y1 == 1


def test_gateway_and_cli_import_without_tensorflow():
    import subprocess
    import sys
    code = ("import sys, cart_gateway.detectors, cart_gateway.catalogue, cart_model.cli, cart_model.evaluate, "
            "cart_model.render, cart_model.dataset; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    import os
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
