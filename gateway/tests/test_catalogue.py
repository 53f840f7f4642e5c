import json

import pytest

from cart_gateway.catalogue import Catalogue, CatalogueError, SHAPES, ean13_check_digit, ean13_valid


@pytest.fixture(scope="module")
def cat():
    return Catalogue.load()


def test_packaged_catalogue_meets_the_spec(cat):
    assert len(cat) >= 300
    produce = [s for s in cat if s.sold_by_weight]
    assert 0.07 <= len(produce) / len(cat) <= 0.13
    packs = [s for s in cat if not s.sold_by_weight]
    assert min(s.net_g for s in packs) == pytest.approx(20) and max(s.net_g for s in packs) == pytest.approx(3000)
    assert all(ean13_valid(s.ean13) for s in cat)
    assert {s.shape for s in cat} == set(SHAPES)
    # Look-alike families: several SKUs share a family.
    fams = {}
    for s in packs:
        fams.setdefault(s.family, []).append(s)
    assert sum(len(v) > 1 for v in fams.values()) >= 80
    # Gross weight is net plus packaging; spread is a small share of it.
    for s in packs:
        assert s.weight_mean_g >= s.net_g + s.tare_g - 0.1
        assert 0 < s.weight_sd_g < 0.06 * s.weight_mean_g


def test_lookups(cat):
    s = next(iter(cat))
    assert cat[s.sku] is s and s.sku in cat and "SKU9999" not in cat
    assert cat.by_ean(s.ean13) is s
    assert cat.by_ean("0000000000000") is None
    assert cat.skus()[0] == s.sku and len(cat.skus()) == len(cat)


def test_check_digit_known_value():
    assert ean13_check_digit("400638133393") == 1  # 4006381333931, a well-known example
    assert ean13_valid("4006381333931") and not ean13_valid("4006381333932")


def _write(tmp_path, doc):
    p = tmp_path / "cat.json"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


def _rec(**kw):
    r = dict(sku="SKU0001", name="A", brand="B", family="F1", variant="v", shape="box", ean13="4006381333931",
             price_cents=199, sold_by_weight=False, net_g=250.0, tare_g=20.0, weight_mean_g=271.0, weight_sd_g=4.6)
    r.update(kw)
    return r


@pytest.mark.parametrize("rec, words", [
    (_rec(ean13="4006381333932"), ["SKU0001", "ean13"]),
    (_rec(shape="crate"), ["SKU0001", "shape"]),
    (_rec(price_cents="1.99"), ["SKU0001", "price_cents"]),
    (_rec(net_g=True), ["SKU0001", "net_g"]),
    (_rec(weight_mean_g=0), ["weight_mean_g"]),
    ({k: v for k, v in _rec().items() if k != "tare_g"}, ["SKU0001", "tare_g"]),
    (_rec(colour="red"), ["unknown", "colour"]),
])
def test_bad_record_names_file_and_field(tmp_path, rec, words):
    p = _write(tmp_path, {"schema": 1, "items": [rec]})
    with pytest.raises(CatalogueError) as e:
        Catalogue.load(p)
    assert str(p) in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(CatalogueError, match="not found"):
        Catalogue.load(tmp_path / "nope.json")
    with pytest.raises(CatalogueError, match="cannot read"):
        Catalogue.load(_write(tmp_path, "{not json"))
    with pytest.raises(CatalogueError, match="schema"):
        Catalogue.load(_write(tmp_path, {"schema": 2, "items": [_rec()]}))
    with pytest.raises(CatalogueError, match="duplicate ean13"):
        Catalogue.load(_write(tmp_path, {"schema": 1, "items": [_rec(), _rec(sku="SKU0002")]}))


def test_good_minimal_file(tmp_path):
    c = Catalogue.load(_write(tmp_path, {"schema": 1, "items": [_rec()]}))
    assert len(c) == 1 and c["SKU0001"].net_g == 250.0 and c["SKU0001"].look is None
