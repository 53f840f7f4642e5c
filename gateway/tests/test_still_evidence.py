"""A still's classifier evidence counts as the still it is (issue 13): kept apart from the
burst's frames (reconcile/still_fusion.py), not averaged in as one frame of nine. A sure
still settles what the burst alone leaves open; a burst that clearly names another item
than a sure still sends the movement to the shopper with the conflict on record."""
import pytest

from cart_gateway.detectors.api import Candidate
from cart_gateway.reconcile import ReconcileConfig, Unsettled, Vision, WeightChange
from cart_gateway.reconcile.inputs import PERSONAL_PREFIX, VisionSummary
from cart_gateway.reconcile.still_fusion import PERSONAL, STILL_SURE, FrameMeans, fuse, pooled
from cart_gateway.vision import StillFrame

BURST_FRAMES = 8   # a burst's frames (docs/camera.md); the old merge weighed a still as 1 of 9


def _engine():
    from cart_bench.synth import catalogue, sku
    from cart_gateway.reconcile import CartReconciler
    skus = [sku("soup", 420.0, 6.0, 199), sku("beans", 425.0, 6.0, 149)]   # told apart only by sight or code
    cat = catalogue(skus)
    return CartReconciler("c1", cat, ReconcileConfig(wait_for_still=True, merge_gap_ms=0)), {s.sku: s for s in skus}


def _burst(scores: dict, n=BURST_FRAMES) -> Vision:
    return Vision(1200, [[Candidate(k, v, 0.5, 0.5) for k, v in scores.items()] for _ in range(n)], (),
                  "c1/scale/1/1", [f"c1/1/{i + 1}" for i in range(n)])


def _still(scores: dict, barcodes=()) -> Vision:
    frames = [StillFrame([Candidate(k, v, 0.5, 0.5) for k, v in scores.items()])] if scores else []
    return Vision(2700, frames, tuple(barcodes), "c1/scale/1/1", ["c1/1/99"], still=True)


def _placement(burst: Vision, still: Vision | None, still_first=False) -> tuple[dict, object]:
    e, cat = _engine()
    e.step(Unsettled(1, 1, 1000, 0.0))
    if still_first and still is not None:
        e.step(still)
    e.step(burst)
    fx = e.step(WeightChange(1, 2, 1900, 421.0, 421.0, 0.7, 1))
    if still is not None and not still_first:
        assert not [d for d in fx["decisions"] if d.get("move_id")]       # waiting for the still
        fx = e.step(still)
    elif still is None:
        fx = e.advance(1900 + e.cfg.vision_max_wait_ms + 5000)
    return [d for d in fx["decisions"] if d.get("move_id")][-1], e


UNSURE = {"soup": 0.45, "beans": 0.45, None: 0.1}     # the burst hesitates between the look-alikes
SURE_SOUP = {"soup": 0.995, "beans": 0.003, None: 0.002}


def test_a_sure_still_is_not_diluted_by_the_bursts_frames():
    v = VisionSummary.of(_burst(UNSURE))
    v.merge(VisionSummary.of(_still(SURE_SOUP)))
    old = (0.45 * BURST_FRAMES + 0.995) / (BURST_FRAMES + 1)        # the frame-weighted mean it replaced
    assert v.scores["soup"] == pytest.approx(0.995) and old < 0.52
    assert v.n_frames == BURST_FRAMES + 1 and v.stills == 1 and v.still_conflict is None
    assert v.burst_part.scores == pytest.approx({"soup": 0.45, "beans": 0.45})   # the burst's own kept


def test_a_sure_still_settles_a_placement_the_burst_alone_would_not():
    d, _ = _placement(_burst(UNSURE), None)
    assert d["outcome"] != "accept"                                   # the burst alone: the shopper is asked
    d, e = _placement(_burst(UNSURE), _still(SURE_SOUP))
    assert d["outcome"] == "accept" and e.basket()["lines"][0]["sku"] == "soup"
    assert "still_conflict" not in d


@pytest.mark.parametrize("still_first", [False, True])
def test_a_burst_that_clearly_disagrees_with_a_sure_still_is_not_accepted_silently(still_first):
    d, e = _placement(_burst({"beans": 0.95, None: 0.05}), _still(SURE_SOUP), still_first)
    assert d["outcome"] in ("ask", "review")                          # neither item accepted on the camera
    assert d["still_conflict"]["still"] == "soup" and d["still_conflict"]["burst"] == "beans"
    assert not [ln for ln in e.basket()["lines"] if ln["status"] == "accepted"]


def test_a_barcode_read_on_the_still_settles_against_a_disagreeing_burst():
    e, cat = _engine()
    d, e = _placement(_burst({"beans": 0.95, None: 0.05}), _still({}, [cat["soup"].ean13]))
    assert d["outcome"] == "accept" and "barcode" in d["evidence"]
    assert e.basket()["lines"][0]["sku"] == "soup"


def test_a_burst_that_missed_the_item_does_not_contradict_the_still():
    v = VisionSummary.of(_burst({None: 0.9}))          # the hand hid it in every frame
    v.merge(VisionSummary.of(_still(SURE_SOUP)))
    assert v.still_conflict is None and v.scores["soup"] == pytest.approx(0.995)


def test_stills_average_among_themselves_and_a_barcode_only_still_leaves_the_burst():
    v = VisionSummary.of(_burst(UNSURE))
    v.merge(VisionSummary.of(_still({}, ["4006381333931"])))   # a barcode-only still (classifier off)
    assert v.scores == pytest.approx({"soup": 0.45, "beans": 0.45}) and v.still_part is None and v.stills == 1
    v.merge(VisionSummary.of(_still(SURE_SOUP)))
    v.merge(VisionSummary.of(_still({"soup": 0.965, None: 0.035})))
    assert v.scores["soup"] == pytest.approx((0.995 + 0.965) / 2) and v.stills == 3
    assert v.barcodes == ["4006381333931"]


def test_a_still_frame_inside_a_burst_is_kept_apart_too():
    frames = [[Candidate("beans", 0.4, 0.5, 0.5)]] * 4 + [StillFrame([Candidate("soup", 0.99, 0.5, 0.5)])]
    v = VisionSummary.of(Vision(1000, frames))
    assert v.scores["soup"] == pytest.approx(0.99) and v.burst_part.n == 4 and v.still_part.n == 1


def test_the_parts_survive_the_engines_state_and_old_records_load():
    v = VisionSummary.of(_burst({"beans": 0.95}))
    v.merge(VisionSummary.of(_still(SURE_SOUP)))
    back = VisionSummary.from_dict(v.to_dict())
    assert back == v and back.still_conflict["burst"] == "beans"
    back.merge(VisionSummary.of(_burst({"beans": 0.95})))            # merged again after a reload: same rule
    assert back.burst_part.n == 2 * BURST_FRAMES and back.still_part.n == 1
    old = VisionSummary.of(_burst(UNSURE)).to_dict()
    assert "still_part" not in old and VisionSummary.from_dict(old).still_part is None


def test_fusion_of_personal_items_and_the_prefix():
    assert PERSONAL == PERSONAL_PREFIX
    burst = FrameMeans(8, {"cola": 0.8}, 0.2, {})
    still = FrameMeans(1, {"cola": 0.01}, 0.0, {"bag": 0.99})
    f = fuse(burst, still)
    assert f.conflict["still"] == "personal:bag" and f.conflict["burst"] == "cola"
    assert f.means.personal_scores["bag"] == pytest.approx(0.495) and f.means.scores["cola"] == pytest.approx(0.405)
    assert fuse(FrameMeans(), still).means == still and fuse(burst, FrameMeans()).means == burst


def test_a_still_that_is_not_sure_is_pooled_with_the_burst_not_put_in_its_place():
    """A classifier right about half the time must not throw away the burst: below STILL_SURE
    the two are pooled (burst x still^0.5, normalised): agreement raises the label, a still
    that leans the other way pulls it below what agreement gives, and neither erases it."""
    burst = FrameMeans(8, {"soup": 0.8, "beans": 0.1}, 0.1, {})
    leaning_wrong = FrameMeans(1, {"soup": 0.35, "beans": 0.55}, 0.1, {})
    f = fuse(burst, leaning_wrong)
    assert f.means.scores["soup"] > f.means.scores["beans"] > 0      # the burst's clear best survives
    assert f.conflict["still"] == "beans" and f.conflict["burst"] == "soup"
    agreeing = FrameMeans(1, {"soup": 0.7, "beans": 0.2}, 0.1, {})
    g = fuse(burst, agreeing).means
    assert g.scores["soup"] > max(0.8, f.means.scores["soup"]) and fuse(burst, agreeing).conflict is None
    assert sum(g.scores.values()) + g.none_score == pytest.approx(1.0)   # the still's mass
    # the old rule (the still in the burst's place) would have made beans the best
    assert fuse(burst, leaning_wrong).means.scores != leaning_wrong.scores
    # a label only the still named gets the floor from the burst, not zero
    new = FrameMeans(1, {"cola": 0.6}, 0.4, {})
    h = pooled(burst, new, 1.0, 0.5)
    assert 0 < h.scores["cola"] < 0.6 and set(h.scores) == {"soup", "beans", "cola"}
    # a sure still is still the camera's evidence alone
    sure = FrameMeans(1, {"soup": STILL_SURE + 0.01}, 0.0, {})
    assert fuse(FrameMeans(8, {"beans": 0.3}, 0.2, {}), sure).means == sure
