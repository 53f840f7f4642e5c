"""`cart-model eval --still-big N` (still_eval.big_catalogue_eval), small: N never-trained SKUs
of a generated catalogue enrolled into the committed gallery, their held-out stills scored,
and the 317-SKU catalogue's trained and enrolled SKUs scored again in the grown gallery."""
import numpy as np

from cart_gateway.catalogue import Catalogue
from cart_gateway.detectors.still import DEFAULT_STILL_MODEL, StillClassifier
from cart_model import still_crops as sc
from cart_model.still_eval import big_catalogue_eval, burst_detector, embed_stills


def test_grown_catalogue_is_scored_for_new_trained_and_enrolled_skus(tmp_path):
    clf = StillClassifier(DEFAULT_STILL_MODEL)
    det = burst_detector(DEFAULT_STILL_MODEL.parent)
    skus = Catalogue.load().skus()
    trained, unseen = sc.split_skus(skus)
    items = [trained[0], unseen[0]]
    specs, ss = sc.render_still_scenes(None, items, items, 4, sc.STILL_TEST0, "train", 1, cache_dir=tmp_path)
    E, _ = embed_stills(clf, det, ss)
    n0 = len(clf.gallery)
    out = big_catalogue_eval(clf, det, 5, 1, 3, 0, 1, log=lambda s: None, cache_dir=tmp_path,
                             base=(specs, E, set(trained), set(unseen)))
    grown = out["with_trained_gallery"]
    assert out["skus"] == 5 and grown["gallery_labels"] == n0 + 5 and grown["n"] == 3
    assert out["enrolled_only"]["gallery_labels"] == 5 + 1           # the new SKUs and "no product"
    got = grown["trained_skus"]["n"] + grown["unseen_skus_enrolled"]["n"]
    assert got == sum(s.label in set(trained) | set(unseen) for s in specs) and got >= 1
    for sec in (grown, grown["trained_skus"], out["enrolled_only"]):
        if sec["n"]:
            assert 0.0 <= sec["top1"] <= 1.0 and np.isfinite(sec["ece"])
