"""Persistence proportional to change (issue 12): the engine marks the basket lines and personal
items it changed (`CartReconciler.dirty`), `save_cart` writes only those, and what is stored is
still exactly the engine's state, through the engine alone and through the gateway's batches.
The basket payload's cached line JSON is byte for byte what a full serialisation writes."""
from __future__ import annotations

import json

from cart_bench.scenario import Session, _respond
from cart_bench.stream import ingest_stream
from cart_bench.synth import synthetic
from cart_gateway.config import parse_config
from cart_gateway.reconcile import CartReconciler, ReconcileConfig
from cart_gateway.service import Gateway, dumps
from cart_gateway.store import Store


def _plain(state: dict) -> dict:
    return json.loads(json.dumps(state))     # what the database can hold: JSON types


def _line_rows(store: Store, cart: str) -> dict[str, str]:
    return dict(store.db.execute("SELECT part, value FROM cart_parts WHERE cart=? AND part LIKE 'lines/L%'",
                                 (cart,)).fetchall())


def test_a_save_writes_only_the_lines_the_step_changed_and_reloads_exactly(tmp_path):
    skus = synthetic(120, seed=5)
    eng = CartReconciler("c001", skus, ReconcileConfig(merge_gap_ms=0))    # each settle its own movement
    sess = Session(skus, cart="c001", seed=5)
    st = Store(tmp_path / "g.sqlite3")
    line_writes = []
    personal_seen, most = False, 0
    for _ in range(120):
        for ev in sess.movement():
            _respond(eng, sess, eng.step(ev))
            before = _line_rows(st, "c001")
            touched = set(eng.dirty.lines)
            st.begin()
            st.save_cart("c001", 1, 0, eng.s, {}, eng.dirty)
            st.commit()
            eng.dirty.stored()
            after = _line_rows(st, "c001")
            changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
            # every line row that changed was marked by the engine (none found only by comparing)
            assert changed <= {f"lines/{i}" for i in touched}
            if eng.dirty.known:
                line_writes.append(len(changed))
            personal_seen = personal_seen or bool(eng.s["personal"])
            most = max(most, len(eng.s["lines"]))
    assert most >= 20 and personal_seen and line_writes    # a long basket, with personal items
    assert max(line_writes) <= 3                           # a movement changes a line or two, not the basket
    st.close()
    st = Store(tmp_path / "g.sqlite3")
    [(_, _, _, state, _)] = st.load_carts()
    assert state == _plain(eng.s)


def test_a_line_changed_without_the_engine_marking_it_is_not_rewritten(tmp_path):
    """The dirty set is what decides: the store does not compare unmarked lines (that is the
    saving), so a change made outside basket.py would not be stored. Mutations of lines belong in
    basket.py, which marks them."""
    skus = synthetic(60, seed=6)
    eng = CartReconciler("c001", skus, ReconcileConfig(merge_gap_ms=0))
    sess = Session(skus, cart="c001", seed=6)
    st = Store(tmp_path / "g.sqlite3")
    while len(eng.s["lines"]) < 3:
        for ev in sess.movement():
            _respond(eng, sess, eng.step(ev))
    for _ in range(2):              # the first save compares everything; the second uses the dirty set
        st.begin()
        st.save_cart("c001", 1, 0, eng.s, {}, eng.dirty)
        st.commit()
        eng.dirty.stored()
    ln = eng.s["lines"][0]
    ln["qty"] += 1                  # behind the engine's back
    eng.s["version"] += 1           # (so the lines are not skipped by version alone)
    st.begin()
    st.save_cart("c001", 1, 0, eng.s, {}, eng.dirty)
    st.commit()
    stored = json.loads(_line_rows(st, "c001")[f"lines/{ln['line_id']}"])
    assert stored["qty"] == ln["qty"] - 1
    # without a dirty set (or when it is not known) every part is compared: the change is stored
    eng.s["version"] += 1
    st.begin()
    st.save_cart("c001", 1, 0, eng.s, {})
    st.commit()
    assert json.loads(_line_rows(st, "c001")[f"lines/{ln['line_id']}"])["qty"] == ln["qty"]
    st.close()


def _gateway(tmp_path, carts):
    return Gateway(parse_config({"state_dir": str(tmp_path), "carts": {"known": carts},
                                 "detector": {"enabled": False}, "reconcile": {"merge_gap_ms": 0}}))


def test_the_gateways_batches_store_exactly_the_engines_states(tmp_path):
    """The handler bench's stream (weights, unsettled, answers in the stream) in batches of 40:
    after every commit, a second connection reads each cart back and gets the engine's state;
    and every published basket is the bytes a full serialisation of the final basket gives."""
    carts = [f"c{i:03d}" for i in range(6)]
    msgs, _ = ingest_stream(720, carts, answers=True)
    gw = _gateway(tmp_path, carts)
    t = 1_700_000_000_000
    items = []
    for topic, p in msgs:
        t += 400                       # board time runs in the stream; receive time with it
        items.append(("msg", topic, p, t))
    checked = baskets = 0
    for i in range(0, len(items), 40):
        gw.store.begin()
        outs = gw.handle_batch(items[i:i + 40])
        gw.store.commit()
        other = Store(tmp_path / "gateway.sqlite3")
        stored = {c: st for c, _, _, st, _ in other.load_carts()}
        other.close()
        for cart, rt in gw.carts.items():
            assert stored[cart] == _plain(rt.engine.s), f"cart {cart} after batch {i // 40}"
            checked += 1
        for p in outs:
            if p.topic.endswith("/basket"):
                rt = gw.carts[p.topic.split("/")[1]]
                full = dict(rt.engine.basket(), version=rt.version())
                assert p.encoded() == dumps(full)
                baskets += 1
    lines = sum(len(rt.engine.s["lines"]) for rt in gw.carts.values())
    answered = sum(1 for rt in gw.carts.values() for d in rt.engine.decisions() if d["outcome"] == "answer")
    assert lines > 100 and answered >= 20 and baskets > 30 and checked > 50
    gw.store.close()


def test_a_rolled_back_batch_is_stored_right_by_the_next_one(tmp_path):
    """After a rollback the store forgets what it believed stored and the gateway reloads its
    engines (fresh dirty sets): the next batch's saves compare everything again and the database
    ends equal to the engines."""
    carts = ["c001", "c002"]
    msgs, _ = ingest_stream(200, carts, answers=True)
    gw = _gateway(tmp_path, carts)
    t = 1_700_000_000_000
    items = []
    for topic, p in msgs:
        t += 400
        items.append(("msg", topic, p, t))
    gw.store.begin()
    gw.handle_batch(items[:60])
    gw.store.commit()
    gw.store.begin()
    gw.handle_batch(items[60:120])      # handled, then rolled back (as after a failed commit)
    gw.store.rollback()
    gw.reload()
    for i in range(60, len(items), 30):
        gw.store.begin()
        gw.handle_batch(items[i:i + 30])
        gw.store.commit()
    other = Store(tmp_path / "gateway.sqlite3")
    stored = {c: st for c, _, _, st, _ in other.load_carts()}
    other.close()
    assert stored == {c: _plain(rt.engine.s) for c, rt in gw.carts.items()}
    assert all(rt.engine.s["lines"] for rt in gw.carts.values())
    gw.store.close()


def test_the_next_shoppers_first_movement_is_stored_though_the_last_basket_had_one_of_that_id(tmp_path):
    """A new session numbers its movements from m1 again: the last basket's decided m1 (a part
    never compared again within its session) must not hide the new m1 when both fall in one save
    (checkout and the next shopper's first movement in one batch)."""
    skus = synthetic(60, seed=7)
    cfg = ReconcileConfig(merge_gap_ms=0)
    eng = CartReconciler("c001", skus, cfg)
    sess = Session(skus, cart="c001", seed=7)
    st = Store(tmp_path / "g.sqlite3")
    while (eng.movement("m1") or {}).get("state") != "done":
        for ev in sess.movement():
            _respond(eng, sess, eng.step(ev))
    for _ in range(2):
        st.begin()
        st.save_cart("c001", 1, 0, eng.s, {}, eng.dirty)
        st.commit()
        eng.dirty.stored()
    nxt = CartReconciler("c001", skus, cfg)
    sess2 = Session(skus, cart="c001", seed=8)
    while nxt.movement("m1") is None:
        for ev in sess2.movement():
            nxt.step(ev)
    assert nxt.movement("m1") is not None and nxt.movement("m1") != eng.movement("m1")
    st.begin()
    st.save_cart("c001", 2, 10, nxt.s, {}, nxt.dirty)
    st.commit()
    st.close()
    st = Store(tmp_path / "g.sqlite3")
    [(_, session, _, state, _)] = st.load_carts()
    assert session == 2 and state == _plain(nxt.s)
