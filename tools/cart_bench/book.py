"""Persisting the WeightBook after a batch that learned a few SKUs, in a store that has learned
its whole catalogue: the per-SKU rows written now vs the one JSON row of the whole book before."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from cart_gateway.reconcile import WeightBook
from cart_gateway.store import Store

from .synth import store_catalogue


def bench_book(skus: int = 30000, changed: int = 5, rounds: int = 20) -> dict:
    cat = store_catalogue(skus)
    book = WeightBook.for_catalogue(cat)
    names = [s.sku for s in cat]
    for s in cat:
        book.observe(s.sku, s.weight_mean_g)     # every SKU learned once
    with tempfile.TemporaryDirectory() as d:
        st = Store(Path(d) / "g.sqlite3")
        st.begin()
        st.save_book(book.to_dict())
        st.commit()

        def whole_row():      # what a save was before (one JSON row of the whole book)
            st.db.execute("INSERT OR REPLACE INTO book VALUES (1, ?)", (json.dumps(book.to_dict(), sort_keys=True),))

        def rows():           # what _save_book does now
            few = names[:changed]
            st.save_book({"v": 1, "stats": {s: book.stats[s] for s in few}}, only=few)
        res = {"bench": "book", "skus": len(names), "changed": changed,
               "whole_row_bytes": len(json.dumps(book.to_dict(), sort_keys=True))}
        for key, f in (("whole_row_ms", whole_row), ("rows_ms", rows)):
            st.begin()
            c = time.process_time()
            for _ in range(rounds):
                f()
            res[key] = round((time.process_time() - c) / rounds * 1000, 3)    # CPU ms per save
            st.rollback()
        st.close()
    print(f"WeightBook save after a batch that learned {changed} of {len(names)} learned SKUs: "
          f"{res['rows_ms']} ms CPU as rows, {res['whole_row_ms']} ms as one {res['whole_row_bytes']}-byte row")
    return res
