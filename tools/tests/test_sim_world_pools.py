"""The virtual store's world: the store-size catalogue (`--catalogue store-20k`) and the scene pools."""
import json
from collections import Counter

import numpy as np
import pytest

from cart_gateway.catalogue import Catalogue, CatalogueError
from cart_sim.scenario import load_scenario
from cart_sim.world import ScenePool, load_catalogue, read_raw_cache, write_raw_cache


@pytest.fixture(scope="module")
def store20k(tmp_path_factory):
    d = tmp_path_factory.mktemp("cat")
    return load_catalogue("store-20k", d), d


def test_store_20k_is_a_store_size_catalogue_in_the_gateways_schema(store20k):
    cat, d = store20k
    assert len(cat) >= 20000
    assert Catalogue.load(cat.source).skus() == cat.skus()          # an ordinary file the gateway loads
    packs = [s for s in cat if not s.sold_by_weight]
    fams = Counter(s.family for s in packs)
    assert sum(v >= 2 for v in fams.values()) > 0.8 * len(fams)      # look-alike families
    produce = sum(s.sold_by_weight for s in cat)
    assert produce == 300                                             # 1.5 %: ~300 produce items per store
    nets = Counter(s.net_g for s in packs)                            # nominal sizes shared across brands
    assert nets.most_common(1)[0][1] > 500
    assert all(s.look and "bg" in s.look for s in cat)                # the renderer can draw every SKU
    assert load_catalogue("store-20k", d).source == cat.source        # written once, then reused
    packaged = Catalogue.load()
    assert all(s.sku in cat and cat[s.sku] == s for s in packaged)    # the SKUs the shipped detector knows


def test_unknown_catalogue_name_is_refused_by_name(tmp_path):
    with pytest.raises(CatalogueError, match="store-9k"):
        load_catalogue("store-9k", tmp_path)


def test_renderer_draws_generated_store_skus(store20k):
    from cart_model.render import render_scene
    cat, _ = store20k
    for sku in (cat.skus()[0], cat.skus()[12345], cat.skus()[-1]):   # a pack, another, loose produce
        img, truth = render_scene(cat, sku, 5, basket_skus=cat.skus()[100:103], pool_style=True)
        assert img.size == (320, 240) and truth["bbox"] is not None


def _pool(cat, seed, tmp_path, n=8):
    cam = dict(load_scenario("hard")["camera"], pool_per_condition=n)
    return ScenePool(cat, cam, seed=seed, cache_dir=tmp_path)


def test_pool_has_8_views_per_condition_that_depend_on_the_pool_seed(tmp_path):
    cat = Catalogue.load()
    assert load_scenario("default")["camera"]["pool_per_condition"] >= 8
    sku = cat.skus()[3]
    p1, p2 = _pool(cat, 1, tmp_path), _pool(cat, 2, tmp_path)
    views = [np.asarray(p1._render(p1.key(sku, "clear", i)), np.int16) for i in range(8)]
    for i in range(8):
        for j in range(i):
            assert np.abs(views[i] - views[j]).mean() > 5          # 8 different views
    other = np.asarray(p2._render(p2.key(sku, "clear", 0)), np.int16)
    assert np.abs(views[0] - other).mean() > 5                     # another pool seed, another view
    again = np.asarray(_pool(cat, 1, tmp_path)._render(p1.key(sku, "clear", 0)), np.int16)
    assert np.array_equal(views[0], again)                         # same seed, same view
    assert p1.tag != p2.tag


def test_personal_item_scenes_are_their_own_scenes(tmp_path):
    cat = Catalogue.load()
    p = _pool(cat, 1, tmp_path)
    hand = p.key(None, "hand", 2)
    assert p.scene_of(hand + "|phone") == hand + "|phone"
    a = np.asarray(p._render(hand), np.int16)
    seen = [np.asarray(p._render(hand + "|" + k), np.int16) for k in ("bag", "phone", "wallet", "keys", "toy")]
    for s in seen:
        assert np.abs(s - a).mean() > 3                            # the personal item is drawn in view
    assert np.abs(seen[0] - seen[1]).mean() > 3


def test_pool_renders_lazily_only_what_is_asked_and_saves_merged(tmp_path):
    cat = Catalogue.load()
    p = _pool(cat, 3, tmp_path, n=8)
    keys = [p.key(cat.skus()[0], "clear", i) for i in (0, 1, 1, 9)]   # 9 is view 1 again
    for k in keys:
        c = p.candidates(k)
        assert isinstance(c, list) and c
    assert p.rendered == 2
    # another worker saved its scenes meanwhile: both survive
    r1, z2 = p.raw(keys[0])
    write_raw_cache(p.path, {"other|clear|0": (r1 * 0, z2 * 0)})
    p.save()
    on_disk = read_raw_cache(p.path)
    assert "other|clear|0" in on_disk and p.key(cat.skus()[0], "clear", 1) in on_disk
    q = _pool(cat, 3, tmp_path, n=8)
    q.candidates(keys[0])
    assert q.rendered == 0                                        # cached on disk
    f = p.figures()
    assert f["pool_seed"] == 3 and f["pool_views_per_condition"] == 8 and f["pool_render_ms_per_view"] > 0


def test_bench_refuses_a_bad_catalogue_by_name(tmp_path, capsys):
    from cart_sim.cli import main
    bad = tmp_path / "cat.json"
    bad.write_text('{"schema": 1, "items": [{"sku": "X"}]}')
    assert main(["bench", "--baskets", "1", "--catalogue", str(bad)]) == 2
    assert "missing field" in capsys.readouterr().err
    assert main(["bench", "--baskets", "1", "--catalogue", "store-9k"]) == 2
    assert "store-9k" in capsys.readouterr().err


def test_bench_json_reports_pool_seed_and_catalogue_and_runs_on_store_20k(store20k, monkeypatch, capsys):
    from cart_sim.cli import main
    _, d = store20k
    monkeypatch.setenv("CART_SIM_CACHE", str(d))
    assert main(["bench", "--baskets", "2", "--json", "--oracle", "vision", "--pool-seed", "5",
                 "--catalogue", "store-20k"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["pool_seed"] == 5 and out["pool_views_per_condition"] == 8
    assert out["catalogue"]["name"] == "store-20k" and out["catalogue"]["skus"] == 20000
    assert out["baskets"] == 2 and out["items"] > 0
    # the gateway runs on the same catalogue: it knows every SKU the shoppers handle and scan
    assert out["gateway_refused_messages"] == {} and out["checkout_refused_baskets"] == 0
    assert main(["bench", "--baskets", "1", "--json", "--oracle", "vision"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["pool_seed"] == 1 and out["catalogue"] == {"name": "packaged", "skus": 317,
                                                          "load_s": out["catalogue"]["load_s"]}


@pytest.mark.parametrize("occ", [0.1, 0.3, 0.6])
def test_pool_hand_covers_about_the_requested_share_of_the_item(occ):
    import random

    from PIL import Image

    from cart_model.render import _hand_many
    box = (110, 70, 200, 190)
    shares = []
    for i in range(20):
        c = Image.new("RGBA", (320, 240), (0, 0, 0, 0))
        _hand_many(c, random.Random(i), box, occ)
        shares.append((np.asarray(c)[70:190, 110:200, 3] > 0).mean())
    assert abs(np.mean(shares) - occ) < 0.05 and max(shares) < occ + 0.12, shares
