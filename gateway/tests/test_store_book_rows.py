"""The WeightBook is stored per SKU: a batch that learned from a few sales writes those SKUs'
rows, not the whole book; a database holding the book in one JSON row (as before) loads, and
its first save writes it as rows."""
from __future__ import annotations

import json

from cart_gateway.config import parse_config
from cart_gateway.service import Gateway
from cart_gateway.store import Store


def _gateway(tmp_path):
    return Gateway(parse_config({"state_dir": str(tmp_path), "carts": {"known": ["c001"]},
                                 "detector": {"enabled": False}}))


def _learn(gw, sales, t_ms):
    """Confirmed sales taught to the book, then a batch (a tick) that persists them; the rows
    of book_stats it wrote."""
    rows = []
    gw.store.db.set_trace_callback(lambda sql: rows.append(sql) if "INTO book_stats" in sql else None)
    gw.store.begin()
    for sku, w in sales:
        gw.book.observe(sku, w)
    gw.handle_batch([("tick", t_ms)])
    gw.store.commit()
    gw.store.db.set_trace_callback(None)
    return rows


def test_a_batch_writes_the_rows_of_the_skus_it_learned_and_they_reload(tmp_path):
    gw = _gateway(tmp_path)
    skus = [s.sku for s in gw.catalogue if not s.sold_by_weight]
    first = _learn(gw, [(s, 100.0 + i) for i, s in enumerate(skus[:30])], 1_000)
    assert len(first) == 30          # the first save onto a new database: every learned SKU
    again = _learn(gw, [(skus[3], 104.0), (skus[7], 110.0)], 2_000)
    assert len(again) == 2           # then what changed
    assert _learn(gw, [], 3_000) == []
    book = gw.book.to_dict()
    gw.store.close()
    st = Store(tmp_path / "gateway.sqlite3")
    assert st.load_book() == book
    st.close()
    gw2 = _gateway(tmp_path)
    assert gw2.book.to_dict() == book
    assert len(_learn(gw2, [(skus[40], 99.0)], 4_000)) == 1     # resumed: still what changed only
    gw2.store.close()


def test_a_book_stored_in_one_row_loads_and_is_then_written_as_rows(tmp_path):
    gw = _gateway(tmp_path)
    skus = [s.sku for s in gw.catalogue if not s.sold_by_weight][:5]
    old = {"v": 1, "stats": {s: [2.0, 50.0 + i, 0.5] for i, s in enumerate(skus)}}
    gw.store.begin()      # as a gateway before per-SKU rows wrote it
    gw.store.db.execute("INSERT OR REPLACE INTO book VALUES (1, ?)", (json.dumps(old, sort_keys=True),))
    gw.store.commit()
    gw.store.close()
    gw = _gateway(tmp_path)
    assert gw.book.to_dict() == old
    assert gw.book.params(skus[0])[0] != _gateway(tmp_path / "fresh").book.params(skus[0])[0]   # learned, not priors
    rows = _learn(gw, [(skus[0], 51.0)], 1_000)
    assert len(rows) == 5            # the whole book once, as rows
    want = gw.book.to_dict()
    gw.store.close()
    gw = _gateway(tmp_path)
    assert gw.book.to_dict() == want and want["stats"][skus[0]][0] == 3.0
    gw.store.close()


def test_a_rolled_back_batch_leaves_the_book_as_stored_and_the_next_save_is_whole(tmp_path):
    gw = _gateway(tmp_path)
    skus = [s.sku for s in gw.catalogue if not s.sold_by_weight]
    _learn(gw, [(skus[0], 100.0)], 1_000)
    gw.store.begin()
    gw.book.observe(skus[1], 200.0)
    gw.handle_batch([("tick", 2_000)])
    gw.store.rollback()              # the batch failed: the service rolls back and reloads
    gw.reload()
    assert set(gw.book.to_dict()["stats"]) == {skus[0]}
    _learn(gw, [(skus[2], 300.0)], 3_000)
    gw.store.close()
    st = Store(tmp_path / "gateway.sqlite3")
    assert set(st.load_book()["stats"]) == {skus[0], skus[2]}
    st.close()
