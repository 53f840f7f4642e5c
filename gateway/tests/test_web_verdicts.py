"""The verdict and screen-answer forms become exactly the §13 / §11 payloads the gateway accepts."""
import json
import pytest

from cart_gateway import protocol as P
from cart_gateway.catalogue import Catalogue
from cart_gateway.web.forms import CatalogueSearch, screen_answer, screen_choice, verdict_payload

CAT = Catalogue.load()
SEARCH = CatalogueSearch(CAT)


def _v(**form):
    v = verdict_payload(CAT, "c001-r1", form)
    P.decode_verdict(json.dumps(v).encode())       # the gateway's decoder accepts it
    return v


def test_each_verdict_kind():
    assert _v(kind="one", sku="SKU0001", qty="2")["sku"] == "SKU0001"
    assert _v(kind="one", sku=CAT["SKU0001"].ean13)["sku"] == "SKU0001"      # an EAN-13 names the SKU
    assert (_v(kind="personal")["sku"], _v(kind="personal")["qty"]) == (None, 1)
    assert (_v(kind="nothing")["sku"], _v(kind="nothing")["qty"]) == (None, 0)
    v = _v(kind="skus", skus="SKU0001,SKU0001,SKU0002")
    assert v["adds"] == [{"sku": "SKU0001", "qty": 2}, {"sku": "SKU0002", "qty": 1}] and v["removes"] == []
    v = _v(kind="several", add_sku_1="SKU0060", add_qty_1="1", rem_sku_1="SKU0014", rem_qty_1="1",
           add_sku_2="personal", add_qty_2="1")
    assert v["adds"] == [{"sku": "SKU0060", "qty": 1}, {"sku": None, "qty": 1}]
    assert v["removes"] == [{"sku": "SKU0014", "qty": 1}] and (v["sku"], v["qty"]) == ("SKU0060", 1)
    assert _v(kind="one", sku="SKU0001")["verdict_id"] != _v(kind="one", sku="SKU0001")["verdict_id"]


@pytest.mark.parametrize("form, what", [
    ({"kind": "one", "sku": "NOPE"}, "not a SKU or an EAN-13"),
    ({"kind": "one", "sku": ""}, "choose a product"),
    ({"kind": "one", "sku": "SKU0001", "qty": "0"}, "1 to 99"),
    ({"kind": "one", "sku": "SKU0001", "qty": "1e9"}, "not a whole number"),
    ({"kind": "one", "sku": "SKU0001", "qty": "NaN"}, "not a whole number"),
    ({"kind": "several"}, "at least one product"),
    ({"kind": "several", "add_sku_1": "SKU0001", "add_qty_1": "-3"}, "1 to 99"),
    ({"kind": "skus", "skus": ",".join(["SKU0001"] * 9)}, "1 to 8"),
    ({"kind": "drop-table"}, "unknown verdict kind"),
])
def test_bad_verdict_forms_are_refused_with_the_reason(form, what):
    with pytest.raises(ValueError, match=what):
        verdict_payload(CAT, "c001-r1", form)


def test_catalogue_search_exact_codes_first_then_every_word():
    assert SEARCH("SKU0060")[0].sku == "SKU0060"
    assert SEARCH(CAT["SKU0060"].ean13)[0].sku == "SKU0060"
    hits = SEARCH("rice basmati")
    assert hits and all("rice" in s.name.lower() and "basmati" in s.name.lower() for s in hits)
    assert SEARCH("no such product xyz") == []


def test_screen_answers():
    prompt = {"options": [{"sku": "SKU0001", "name": "a"}, {"sku": "SKU0001", "name": "a+b", "skus": ["SKU0001", "SKU0002"]}]}
    assert screen_choice(prompt, {"choice": "option", "option": "0"}) == {"sku": "SKU0001"}
    assert screen_choice(prompt, {"choice": "option", "option": "1"}) == {"skus": ["SKU0001", "SKU0002"]}
    assert screen_choice(prompt, {"choice": "personal"}) == {"personal": True}
    assert screen_choice(prompt, {"choice": "none"}) == {"none": True}
    assert screen_choice(prompt, {"choice": "barcode", "barcode": "4074391500087"}) == {"barcode": "4074391500087"}
    for bad in ({"choice": "option", "option": "7"}, {"choice": "option", "option": "x"},
                {"choice": "barcode", "barcode": "12ab"}, {"choice": "x"}):
        with pytest.raises(ValueError):
            screen_choice(prompt, bad)
    ans = screen_answer(dict(prompt, prompt_id="c001-p1"), {"choice": "none"})
    P.decode_answer(json.dumps(ans).encode())
    assert ans["prompt_id"] == "c001-p1" and ans["answer_id"].startswith("scr-")


def test_search_hits_closest_to_the_movements_weight_come_first():
    hits = SEARCH("rice basmati", near_g=2000.0)
    assert abs(hits[0].weight_mean_g - 2000) < abs(hits[-1].weight_mean_g - 2000)
    assert all(abs(a.weight_mean_g - 2000) <= abs(b.weight_mean_g - 2000) for a, b in zip(hits, hits[1:]))
