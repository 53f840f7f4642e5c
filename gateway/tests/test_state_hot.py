"""The hot state (issue 12 speed): decided movements leave `moves` for `done`, so the policy's
per-step passes read only open ones; a save writes the small plain values as one head part and
no key-order part for the dicts whose order nothing reads; a database written by the code before
this (f5403a9) still loads and goes on."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cart_bench.scenario import Session, _respond
from cart_bench.stream import ingest_stream
from cart_bench.synth import synthetic
from cart_gateway.config import parse_config
from cart_gateway.reconcile import CartReconciler, ReconcileConfig
from cart_gateway.reconcile.inputs import Vision
from cart_gateway.service import Gateway
from cart_gateway.store import Store
from cart_gateway.store.cart_parts import HEAD, split_state

DATA = Path(__file__).parent / "data"


def _plain(state: dict) -> dict:
    return json.loads(json.dumps(state))


def _drive(n: int, seed: int = 5) -> CartReconciler:
    skus = synthetic(120, seed=seed)
    eng = CartReconciler("c001", skus, ReconcileConfig(merge_gap_ms=0))
    sess = Session(skus, cart="c001", seed=seed)
    for _ in range(n):
        for ev in sess.movement():
            _respond(eng, sess, eng.step(ev))
    return eng


def test_decided_movements_leave_the_open_ones_and_late_vision_still_finds_them():
    eng = _drive(30)
    s = eng.s
    assert s["done"], "the session decided movements recently (within vision_max_wait_ms)"
    assert all(m["state"] != "done" for m in s["moves"].values())
    assert all(m["state"] == "done" for m in s["done"].values())
    mv = next(iter(s["done"].values()))
    assert eng.movement(mv["id"]) is mv
    # a burst naming the decided movement's window: logged as late vision for that movement
    ref = f"c001/scale/{mv['epoch']}/{mv['unsettled_seq']}"
    fx = eng.step(Vision(s["now_ms"] + 1, [[]], (), ref, ("late-frame",)))
    [d] = [d for d in fx["decisions"] if d["outcome"] == "late_vision"]
    assert d["move_id"] == mv["id"] and d["movement"]["delta_g"] == round(mv["delta_g"], 1)
    # and it is forgotten once late vision, or a burst that may be its second look
    # (same_weight_swap_repeat_ms, docs/reconciliation.md §4.4.6), can no longer come
    eng.advance(s["now_ms"] + eng.cfg.vision_max_wait_ms + eng.cfg.same_weight_swap_repeat_ms + 1)
    assert not s["done"] and eng.movement(mv["id"]) is None


def test_an_old_state_with_decided_movements_in_moves_is_upgraded():
    old = json.loads((DATA / "cart_state_d7ec436.json").read_text())
    assert old["moves"]["m6"]["state"] == "done" and "done" not in old
    from test_reconcile_cases import SKUS as CASE_SKUS
    from cart_bench.synth import catalogue
    eng = CartReconciler.from_dict(old, catalogue(CASE_SKUS))
    assert "m6" in eng.s["done"] and "m6" not in eng.s["moves"]
    assert set(eng.s["moves"]) == {"m2", "m3", "m4", "m5"}


def test_a_step_that_moves_only_the_clock_and_counters_writes_one_row(tmp_path):
    eng = _drive(20)
    st = Store(tmp_path / "g.sqlite3")
    st.begin()
    st.save_cart("c001", 1, 0, eng.s, {}, eng.dirty)
    eng.dirty.stored()
    parts = split_state(eng.s)
    assert {"version", "now_ms", "n"} <= set(parts[HEAD]) and "now_ms" not in parts
    # dicts read by id only: items without a key-order part
    assert not {"prompts/", "reviews/", "done/", "moves/"} & set(parts)
    eng.s["now_ms"] += 1
    eng.s["n"]["decision"] += 1
    eng.s["version"] += 1
    assert st.save_cart("c001", 1, 0, eng.s, {}, eng.dirty) == 1      # the head only (three rows before)
    st.commit()
    st.close()
    st = Store(tmp_path / "g.sqlite3")
    [(_, _, _, state, _)] = st.load_carts()
    assert state == _plain(eng.s)
    st.close()


def test_pending_basket_lines_are_built_once_per_state():
    skus = synthetic(60, seed=3)
    eng = CartReconciler("c001", skus, ReconcileConfig(merge_gap_ms=0))
    sess = Session(skus, cart="c001", seed=3)
    for ev in sess.movement():
        eng.step(ev)
    _, lines = eng.basket_parts()
    pending = [ln for ln in lines if ln["line_id"].startswith("P-")]
    assert pending, "an undecided addition shows as a pending line"
    _, again = eng.basket_parts()
    assert [ln for ln in again if ln["line_id"].startswith("P-")][0] is pending[0]   # same object: JSON reused
    mv = eng.movement(pending[0]["line_id"][2:])
    mv["state"] = "review"
    _, third = eng.basket_parts()
    [p3] = [ln for ln in third if ln["line_id"] == pending[0]["line_id"]]
    assert p3["status"] == "review" and p3 is not pending[0]


def test_a_database_written_at_f5403a9_loads_and_goes_on(tmp_path):
    """gateway/tests/data/gateway_f5403a9.sqlite3: three carts' parts as f5403a9 stored them
    (decided movements in `moves`, key-order parts, one row per plain value); the states its
    engines held are in gateway_f5403a9.states.json. Made by that tree's Gateway on
    ingest_stream(120, carts, answers=True), 8 messages a batch, 60 ms apart."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    shutil.copy(DATA / "gateway_f5403a9.sqlite3", state_dir / "gateway.sqlite3")
    then = json.loads((DATA / "gateway_f5403a9.states.json").read_text())
    carts = ["c001", "c002", "c003"]
    cfg = parse_config({"state_dir": str(state_dir), "carts": {"known": carts}, "detector": {"enabled": False},
                        "reconcile": {"merge_gap_ms": 0}})
    gw = Gateway(cfg)
    assert set(gw.carts) == set(carts)
    for c in carts:
        s = gw.carts[c].engine.s
        old = then[c]
        assert {k: m for k, m in old["moves"].items() if m["state"] == "done"} == _plain(s["done"])
        assert {k: m for k, m in old["moves"].items() if m["state"] != "done"} == _plain(s["moves"])
        assert {k: v for k, v in old.items() if k != "moves"} == {k: v for k, v in _plain(s).items()
                                                                  if k not in ("moves", "done")}
    # the same stream goes on: its next 120 events, then the stored state is the engines'
    msgs, _ = ingest_stream(240, carts, answers=True)
    sent = len(ingest_stream(120, carts, answers=True)[0])     # (events and answers)
    assert msgs[:sent] == ingest_stream(120, carts, answers=True)[0] and sent % 8 == 0
    t = 1_700_000_000_000
    for i in range(sent, len(msgs), 8):
        gw.store.begin()
        gw.handle_batch([("msg", tp, p, t + 60 * (i + k)) for k, (tp, p) in enumerate(msgs[i:i + 8])])
        gw.store.commit()
    assert sum(len(rt.engine.s["lines"]) for rt in gw.carts.values()) > sum(len(then[c]["lines"]) for c in carts)
    engines = {c: _plain(rt.engine.s) for c, rt in gw.carts.items()}
    gw.store.close()
    st = Store(state_dir / "gateway.sqlite3")
    assert {c: s for c, _, _, s, _ in st.load_carts()} == engines
    rows = {p for (p,) in st.db.execute("SELECT part FROM cart_parts WHERE cart='c001'")}
    assert HEAD in rows and not {"version", "now_ms", "n", "moves/", "prompts/"} & rows   # old rows gone
    st.close()


def test_a_rolled_back_seq_is_not_believed_by_the_duplicate_check(tmp_path):
    """The store keeps each stream's highest seq in memory for the transaction (an event read it
    twice); a rollback, of the transaction or of a message's savepoint, must forget it."""
    st = Store(tmp_path / "g.sqlite3")
    st.begin()
    assert st.add_event("c1/scale/1/1", "c1", "scale", 1, 1, "weight", 0, b"{}")
    st.note_seq("c1", "scale", 1, 1, 0)
    st.commit()
    st.begin()
    st.note_seq("c1", "scale", 1, 5, 0)        # seqs 2..4 a gap, 5 received: rolled back below
    st.rollback()
    st.begin()
    assert st.add_event("c1/scale/1/3", "c1", "scale", 1, 3, "weight", 0, b"{}")   # not a duplicate
    assert st.note_seq("c1", "scale", 1, 3, 0) == ("gap", (2, 2))
    with pytest.raises(RuntimeError):
        with st.savepoint():
            st.note_seq("c1", "scale", 1, 9, 0)
            raise RuntimeError("the message failed")
    assert st.add_event("c1/scale/1/4", "c1", "scale", 1, 4, "weight", 0, b"{}")
    st.commit()
    st.close()
