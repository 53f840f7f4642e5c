"""Cart state persisted in parts, proportional to what changed: a long seeded session saved
after every engine step reloads to exactly the engine's state, and a step writes a bounded
number of rows however long the decision log has grown."""
from __future__ import annotations

from cart_bench.scenario import Session, _respond
from cart_bench.synth import synthetic
from cart_gateway.reconcile import CartReconciler, ReconcileConfig
from cart_gateway.store import LOG_RECHECK, Store


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
    assert len(eng.s["log"]) > LOG_RECHECK * 3      # the log is long enough that records were skipped
    st.close()
    st = Store(tmp_path / "g.sqlite3")
    [(cart, session, vbase, state, clock)] = st.load_carts()
    assert state == eng.s
    # rows written per save do not grow with the log (a few movement / line / log parts)
    assert max(writes[-50:]) <= 40
