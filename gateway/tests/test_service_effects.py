"""Every effect of every engine call is applied, published and stored (issue 11, points 1, 9, 11)."""
from gwcore import JUICE, KETCHUP, Harness

from cart_gateway.service import Gateway
from cart_bench.testkit import answer, checkout, verdict


def _restart(h: Harness) -> None:
    h.gw.store.close()
    h.gw = Gateway(h.cfg, submit_burst=h._submit)


def test_checkout_after_the_vision_wait_publishes_the_prompt_it_opens_and_is_not_stuck(tmp_path):
    # issue 11.1: the checkout's own clock advance decides the waiting item and opens a
    # prompt; it must reach the screen, and answering it must let the checkout through
    h = Harness(tmp_path)
    h.move(JUICE[1])                                   # weight only: waits for vision
    n = len(h.out)
    h.send("carts/c001/checkout", checkout("r1"), dt_ms=2000)   # after the 1.5 s wait, before a tick
    assert h.last("carts/c001/receipt")["reason"] == "open_prompts"
    prompts = [p for p in h.out[n:] if p.topic == "carts/c001/screen/prompt"]
    assert len(prompts) == 1
    pid = h.last("carts/c001/screen/prompt")["prompt_id"]
    assert [p["prompt_id"] for p in h.last("carts/c001/screen/state")["prompts"]] == [pid]
    assert h.basket()["open_prompts"] == 1
    _restart(h)                                        # also after a restart
    h.send("carts/c001/screen/answer", answer(pid, "a1", sku=JUICE[0]))
    h.send("carts/c001/checkout", checkout("r2"))
    rec = h.last("carts/c001/receipt")
    assert rec["ok"] and [ln["sku"] for ln in rec["lines"]] == [JUICE[0]]


def test_checkout_after_the_vision_wait_stores_and_queues_the_review_it_opens(tmp_path):
    h = Harness(tmp_path)
    h.move(-500.0)                                     # out of an empty basket: a review once decided
    h.send("carts/c001/checkout", checkout("r1"), dt_ms=2000)
    assert h.last("carts/c001/receipt")["reason"] == "open_reviews"
    new = h.last("gateway/gw1/review/new")
    assert new is not None and new["cart"] == "c001"
    assert [r["review_id"] for r in h.last("gateway/gw1/review/queue")["reviews"]] == [new["review_id"]]
    _restart(h)
    assert [r["review_id"] for r in h.gw.store.open_reviews()] == [new["review_id"]]
    h.send("gateway/gw1/review/verdict", verdict(new["review_id"], "v1", None, 1))
    h.send("carts/c001/checkout", checkout("r2"))
    assert h.last("carts/c001/receipt")["ok"]


def _session_with_a_prompt(h: Harness, req: str) -> str:
    h.move(JUICE[1])
    h.tick(2000)
    pid = h.last("carts/c001/screen/prompt")["prompt_id"]
    return pid


def test_prompt_and_review_ids_are_unique_per_cart_across_sessions(tmp_path):
    # issue 11.9: ids restarted at p1 / r1 in every session
    h = Harness(tmp_path)
    p1 = _session_with_a_prompt(h, "a")
    h.send("carts/c001/screen/answer", answer(p1, "a1", sku=JUICE[0]))
    h.move(-500.0)
    h.tick(2000)
    r1 = h.last("gateway/gw1/review/new")["review_id"]
    h.send("gateway/gw1/review/verdict", verdict(r1, "v1", None, 1))
    h.send("carts/c001/checkout", checkout("k1"))
    assert h.last("carts/c001/receipt")["ok"]
    _restart(h)
    p2 = _session_with_a_prompt(h, "b")
    h.move(-500.0)
    h.tick(2000)
    r2 = h.last("gateway/gw1/review/new")["review_id"]
    assert p2 != p1 and r2 != r1
    rows = {r["review_id"]: r["status"] for r in h.gw.store.all_reviews()}
    assert rows == {r1: "closed", r2: "open"}           # the old review's row is not overwritten


def test_a_late_answer_from_the_previous_session_does_not_close_the_new_prompt(tmp_path):
    h = Harness(tmp_path)
    p1 = _session_with_a_prompt(h, "a")
    h.send("carts/c001/screen/answer", answer(p1, "a1", sku=JUICE[0]))
    h.send("carts/c001/checkout", checkout("k1"))
    assert h.last("carts/c001/receipt")["ok"]
    p2 = _session_with_a_prompt(h, "b")
    # the previous shopper's screen answers its old prompt again (a new answer id): ignored
    h.send("carts/c001/screen/answer", answer(p1, "a-late", sku=KETCHUP[0]))
    eng = h.gw.carts["c001"].engine
    assert [p["prompt_id"] for p in eng.open_prompts()] == [p2]
    assert eng.basket()["open_reviews"] == 0 and eng.decisions()[-1]["outcome"] == "ignored"


def test_a_cart_stuck_by_a_dropped_effect_is_repaired_at_start(tmp_path):
    # a state an older gateway left: the engine opened a prompt and a review nobody was told of
    h = Harness(tmp_path)
    h.move(JUICE[1])
    h.move(-500.0)
    rt = h.gw.carts["c001"]
    s = h.gw.store
    s.begin()
    rt.engine.advance(h.t + 3000)                      # effects dropped, as _on_checkout did
    s.save_cart("c001", rt.session, rt.version_base, rt.engine.s, rt.clock)
    s.commit()
    _restart(h)
    topics = [t for _, t, *_ in h.gw.store.outbox()]
    assert "carts/c001/screen/prompt" in topics and "gateway/gw1/review/new" in topics
    assert len(h.gw.store.open_reviews()) == 1


# ---------------------------------------------------------------- issue 11.11: counters
def test_a_verdict_for_an_unknown_review_is_counted_as_a_bad_message(tmp_path):
    h = Harness(tmp_path)
    h.send("gateway/gw1/review/verdict", verdict("c001-r404", "v1", KETCHUP[0], 1))
    assert h.count("bad", "unknown_review") == 1


def _fail_once(monkeypatch):
    from cart_gateway.reconcile import CartReconciler, ReconcileError
    real = CartReconciler.step
    state = {"armed": True}

    def step(self, item):
        if state["armed"]:
            state["armed"] = False
            raise ReconcileError("injected fault")
        return real(self, item)
    monkeypatch.setattr(CartReconciler, "step", step)


def test_events_total_does_not_count_an_event_whose_write_was_rolled_back(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    _fail_once(monkeypatch)
    u = h.scale.unsettled()
    h.send(h.scale.topic, u)                          # the engine fails: the savepoint is rolled back
    assert h.gw.store.event_count() == 0 and h.count("events", "unsettled") == 0
    h.send(h.scale.topic, u)                          # redelivered: stored now, counted once
    assert h.gw.store.event_count() == 1 and h.count("events", "unsettled") == 1


def test_events_total_counts_a_failed_batch_once_after_its_redo(tmp_path, monkeypatch):
    import pytest

    from cart_gateway.service import BatchFailed
    h = Harness(tmp_path)
    items = [("msg", h.scale.topic, h.scale.unsettled(), h.t + i) for i in range(3)]
    s = h.gw.store
    s.begin()
    h.gw.handle_batch(items[:1])                      # a good batch counts its event
    s.commit()
    _fail_once(monkeypatch)
    s.begin()
    with pytest.raises(BatchFailed):
        h.gw.handle_batch(items[1:])
    s.rollback()                                      # what the live adapter does
    h.gw.reload()
    assert h.count("events", "unsettled") == 1
    s.begin()
    for _, topic, payload, t in items[1:]:
        h.gw.handle(topic, payload, t)
    s.commit()
    assert h.gw.store.event_count() == 3 and h.count("events", "unsettled") == 3
