"""cart-bench: each bench ends with one JSON line with --json; the handler's scoring timer
times the scorers the engine really calls; the store catalogue has families and weight-alikes."""
from __future__ import annotations

import json

from cart_bench.cli import main
from cart_bench.synth import store_catalogue


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_reconcile_bench_json_names_the_weight_and_answer_figures(capsys):
    assert main(["reconcile", "--skus", "400", "--moves", "30", "--json"]) == 0
    res = _last_json(capsys)
    assert res["bench"] == "reconcile" and res["skus"] == 400
    assert res["weight_n"] > 10 and res["weight_p50_ms"] > 0 and res["weight_p99_ms"] >= res["weight_p50_ms"]
    assert "answer_p99_ms" in res
    assert res["basket_items_missing"] == 0 and res["basket_items_extra"] == 0   # truthful answers: exact basket


def test_reconcile_bench_checks_out_at_the_basket_size(capsys):
    assert main(["reconcile", "--skus", "400", "--moves", "40", "--basket-items", "8", "--json"]) == 0
    res = _last_json(capsys)
    assert res["baskets"] >= 3 and res["basket_lines"] <= 8


def test_handler_bench_times_the_scoring_that_runs(capsys):
    assert main(["handler", "-n", "3000", "--json"]) == 0
    res = _last_json(capsys)
    assert res["events"] == 3000 and res["events_per_cpu_s"] > 0
    # every weight movement is scored once at its decision: the timer saw those calls
    assert res["score_calls"] >= 50 and res["score_cpu_s"] > 0


def test_store_catalogue_of_any_size_has_families_and_weight_alikes():
    from cart_model.catalogue_gen import weight_alike_pairs
    cat = store_catalogue(2000, seed=3)
    assert len(cat) == 2000 and len({s.sku for s in cat}) == 2000
    packs = [s for s in cat if not s.sold_by_weight]
    fams = {}
    for s in packs:
        fams.setdefault(s.family, []).append(s)
    assert sum(len(v) >= 2 for v in fams.values()) > 0.8 * len(fams)     # look-alike families
    assert 0.01 * len(cat) <= sum(s.sold_by_weight for s in cat) <= 0.1 * len(cat)   # synth.PRODUCE_SHARE, 1.5 %
    assert len(weight_alike_pairs(cat)) > len(packs)       # packs of other families at the same weight
    assert [s.sku for s in store_catalogue(2000, seed=3)] == [s.sku for s in cat]   # seeded


def test_book_bench_writes_the_learned_skus_rows_and_names_both_costs(capsys):
    assert main(["book", "--skus", "300", "--changed", "3", "--json"]) == 0
    res = _last_json(capsys)
    assert res["bench"] == "book" and res["skus"] == 300 and res["changed"] == 3
    assert res["rows_ms"] >= 0 and res["whole_row_ms"] >= 0 and res["whole_row_bytes"] > 300 * 10


def test_handler_breakdown_names_the_stages_and_puts_every_one_back(capsys):
    from cart_gateway.service import Gateway
    from cart_gateway.store import Store
    before = (Gateway.handle, Store.save_cart)
    assert main(["handler", "-n", "600", "--breakdown", "--json"]) == 0
    res = _last_json(capsys)
    own = res["cpu_self_s"]
    assert {"scoring", "CartReconciler.step", "CartStates.save_cart", "Gateway.handle", "decoding.decode_event"} <= set(own)
    assert own["CartStates.save_cart"] > 0 and own["decoding.decode_event"] > 0
    assert sum(own.values()) <= res["cpu_s"] * 1.05 + 0.05     # self times: nothing counted twice
    assert (Gateway.handle, Store.save_cart) == before
