"""Cart state persisted in parts, proportional to what changed: a long seeded session saved
after every engine step reloads to exactly the engine's state, and a step writes a bounded
number of rows however long the decision log has grown."""
from __future__ import annotations

from cart_bench.scenario import Session, _respond
from cart_bench.synth import synthetic
from cart_gateway.reconcile import CartReconciler, ReconcileConfig
from cart_gateway.store import Store


def test_a_long_session_saved_step_by_step_reloads_exactly(tmp_path):
    skus = synthetic(120, seed=3)
    eng = CartReconciler("c001", skus, ReconcileConfig(log_limit=200))
    sess = Session(skus, cart="c001", seed=3)
    st = Store(tmp_path / "g.sqlite3")
    writes = []
    for _ in range(100):
        for ev in sess.movement():
            fx = eng.step(ev)
            _respond(eng, sess, fx)             # prompts and reviews answered with the truth
            st.begin()
            writes.append(st.save_cart("c001", 1, 0, eng.s, {}))
            st.commit()
        st.begin()
        eng.advance(sess.t)
        writes.append(st.save_cart("c001", 1, 0, eng.s, {}))
        st.commit()
    assert len(eng.decisions()) > 48        # a long log (no longer part of the stored state)
    st.close()
    st = Store(tmp_path / "g.sqlite3")
    [(cart, session, vbase, state, clock)] = st.load_carts()
    assert state == eng.s
    # rows written per save do not grow with the log (a few movement / line / log parts)
    assert max(writes[-50:]) <= 40


def test_a_resumed_cart_changed_again_stores_the_change(tmp_path):
    """The store compares each part with its own copy of what it stored (not pickled bytes): a
    cart loaded, changed by its engine and saved again writes the change and reloads exactly."""
    skus = synthetic(120, seed=4)
    sess = Session(skus, cart="c001", seed=4)
    eng = CartReconciler("c001", skus)
    st = Store(tmp_path / "g.sqlite3")
    for _ in range(20):
        for ev in sess.movement():
            _respond(eng, sess, eng.step(ev))
    st.begin()
    st.save_cart("c001", 1, 0, eng.s, {})
    st.commit()
    for _ in range(2):                       # resume, change, save; twice
        [(_, _, _, state, _)] = st.load_carts()
        eng = CartReconciler.from_dict(state, skus)
        for _ in range(10):
            for ev in sess.movement():
                _respond(eng, sess, eng.step(ev))
        st.begin()
        assert st.save_cart("c001", 1, 0, eng.s, {}) > 0
        st.commit()
    st.close()
    [(_, _, _, state, _)] = Store(tmp_path / "g.sqlite3").load_carts()
    assert state == eng.s


def test_the_next_shoppers_basket_at_the_same_version_number_is_stored(tmp_path):
    """Lines are compared only when the basket's version moved; a new session counts its
    version from 0 again, so the same number in the next session must still write its lines."""
    skus = synthetic(120, seed=6)
    st = Store(tmp_path / "g.sqlite3")
    first, second = CartReconciler("c001", skus), CartReconciler("c001", skus)
    for eng, seed in ((first, 6), (second, 7)):
        sess = Session(skus, cart="c001", seed=seed)
        while len(eng.s["lines"]) < 3:
            for ev in sess.movement():
                _respond(eng, sess, eng.step(ev))
    first.s["version"] = second.s["version"] = max(first.s["version"], second.s["version"])
    assert first.s["lines"] != second.s["lines"]
    st.begin()
    st.save_cart("c001", 1, 0, first.s, {})
    st.save_cart("c001", 2, 10, second.s, {})    # the receipt, then the next shopper, in one batch
    st.commit()
    st.close()
    [(_, session, _, state, _)] = Store(tmp_path / "g.sqlite3").load_carts()
    assert session == 2 and state["lines"] == second.s["lines"]


def test_a_clock_changed_in_place_is_stored_and_an_unchanged_one_is_not_rewritten(tmp_path):
    """The service keeps a cart's board clock offsets in one dict it changes in place
    (CartRt.time_of): the store compares it with its own copy, so a changed offset is written
    and an unchanged clock writes no `carts` row; after a reload (or a rollback) it is read anew."""
    skus = synthetic(40, seed=5)
    eng = CartReconciler("c001", skus, ReconcileConfig())
    st = Store(tmp_path / "g.sqlite3")
    heads = []
    st.db.set_trace_callback(lambda sql: heads.append(sql) if sql.startswith("INSERT OR REPLACE INTO carts") else None)
    clock = {"scale/1": 100}

    def save():
        heads.clear()
        st.begin()
        st.save_cart("c001", 1, 0, eng.s, clock)
        st.commit()
        return len(heads)
    assert save() == 1
    assert save() == 0                  # nothing changed
    clock["scale/1"] = 250              # in place, as time_of does
    assert save() == 1
    clock["cam/1"] = 7
    assert save() == 1
    st.begin()
    st.save_cart("c001", 1, 0, eng.s, clock)
    st.rollback()                       # the store forgets what it believed stored
    assert save() == 1
    st.close()
    st = Store(tmp_path / "g.sqlite3")
    st.db.set_trace_callback(lambda sql: heads.append(sql) if sql.startswith("INSERT OR REPLACE INTO carts") else None)
    [(_, _, _, _, stored)] = st.load_carts()
    assert stored == {"scale/1": 250, "cam/1": 7}
    clock = dict(stored)
    assert save() == 0                  # as loaded
    clock["scale/1"] = 300
    assert save() == 1
    st.close()
