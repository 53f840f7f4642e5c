"""render_still: a still at SXGA/UXGA with the item's EAN-13 at its printed size."""
import numpy as np
import pytest

from cart_gateway.catalogue import Catalogue
from cart_model.render import EAN_MODULE_MM, VIEW_MM, render_still

CAT = Catalogue.load()


def _first(shape):
    return next(s.sku for s in CAT if s.shape == shape)


@pytest.mark.parametrize("res,size", [("SXGA", (1280, 1024)), ("UXGA", (1600, 1200))])
def test_still_size_and_printed_code_size(res, size):
    img, t = render_still(CAT, _first("box"), 7, res, scale=1.0)
    assert img.size == size
    b = t["barcode"]
    assert b["facing"] and b["ean13"] == CAT[_first("box")].ean13
    # module px = 0.33 mm x magnification x px per mm at the item (scale 1)
    px_per_mm = (size[0] // 320) * 320 / VIEW_MM
    lo, hi = 0.85 * EAN_MODULE_MM * px_per_mm, 1.3 * EAN_MODULE_MM * px_per_mm
    assert lo * 0.9 <= b["module_px"] <= hi * 1.01


def test_facing_away_draws_no_code_and_keeps_the_scene():
    a, ta = render_still(CAT, _first("box"), 9, "UXGA", facing=True)
    b, tb = render_still(CAT, _first("box"), 9, "UXGA", facing=False)
    assert ta["barcode"]["facing"] and not tb["barcode"]["facing"]
    diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(axis=2) > 40
    assert 0 < diff.mean() < 0.02          # only the code's few thousand pixels differ
    assert ta["bbox"] == tb["bbox"]


def test_cans_and_bottles_are_curved_produce_has_no_code():
    for shape in ("can", "bottle"):
        for seed in range(6):
            t = render_still(CAT, _first(shape), seed, "SXGA")[1]["barcode"]
            if not t["ladder"]:
                assert t["curved"] and -0.9 <= t["theta0"] <= 0.9
                break
        else:
            pytest.fail(f"no wrapped code on a {shape} in 6 seeds")
    assert render_still(CAT, _first("produce"), 1, "SXGA")[1]["barcode"]["facing"] is False


def test_bad_resolution_is_named():
    with pytest.raises(ValueError, match="still resolution 'QSXGA'"):
        render_still(CAT, _first("box"), 1, "QSXGA")
