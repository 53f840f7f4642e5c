"""What a scene-pool view shows (cart_sim.world.ScenePool draws its scenes with this): the moved
item under one viewing condition, other basket items lying under it, hands in many poses, the
shopper's own things (cart_model.personal). The pool cache is keyed by this file, not by the
cache's own code in world.py."""
from __future__ import annotations

import random
import zlib

NO_ITEM = "-"
CONDITIONS = ("clear", "hard", "oov")        # with an item
EMPTY_CONDITIONS = ("hand", "covered")        # no product in view

BASKET_MAX = 6            # other items in view under the moved one (estimate: a filled basket)
P_SAME_FAMILY = 0.3       # one of them a look-alike of the moved item (estimate)


def scene_of(key: str) -> str:
    """The pool scene of a frame key: sku|condition|view, plus the personal item in view (`|bag`)."""
    return "|".join(key.split("|")[:4])


class SceneDrawer:
    """Draws the pool scene of a key for one camera (occlusion_max, blur_max) and pool seed."""

    def __init__(self, catalogue, camera: dict, seed: int):
        self.cat, self.cam, self.seed = catalogue, camera, seed
        self._skus = catalogue.skus()
        self._family: dict[str, list[str]] | None = None

    def basket(self, rng: random.Random, sku: str | None) -> list[str]:
        """Other items already in the basket, seen under the moved one."""
        out = [self._skus[rng.randrange(len(self._skus))] for _ in range(rng.randint(0, BASKET_MAX))]
        if sku is not None and out and rng.random() < P_SAME_FAMILY:
            if self._family is None:
                self._family = {}
                for s in self.cat:
                    self._family.setdefault(s.family, []).append(s.sku)
            fam = [x for x in self._family[self.cat[sku].family] if x != sku]
            if fam:
                out[0] = rng.choice(fam)
        return [x for x in out if x != sku]

    def render_truth(self, key: str):
        """The pool scene of `key` and its truth (render_scene's; a personal item's box is its own)."""
        from PIL import Image, ImageFilter
        from cart_model.render import render_scene
        parts = scene_of(key).split("|")
        sku, cond = parts[0], parts[1]
        sku = None if sku == NO_ITEM else sku
        rng = random.Random(f"{self.seed}|{'|'.join(parts)}")
        occ_max, blur_max = self.cam["occlusion_max"], self.cam["blur_max"]
        rs = rng.randrange(1 << 30)
        basket = self.basket(rng, sku)
        if cond == "covered":   # a palm over the lens: a dark, defocused frame
            img, truth = render_scene(self.cat, None, rs, basket, occlusion=1.0, blur=1.0, pool_style=True)
            return Image.eval(img.filter(ImageFilter.GaussianBlur(12)), lambda v: v // rng.randint(4, 8)), truth
        if cond == "hand":
            personal = None
            if len(parts) > 3:   # the shopper's own thing, held: cart_model.personal in one of many poses
                import numpy as np
                from cart_model.personal import KINDS, draw_personal
                kind = parts[3] if parts[3] in KINDS else KINDS[zlib.crc32(parts[3].encode()) % len(KINDS)]
                personal = draw_personal(kind, np.random.default_rng(rng.randrange(1 << 32)), rng.randint(70, 130))
            occ = rng.uniform(0.1, 0.4) if personal is not None else rng.uniform(0.3, 0.7)   # a held thing shows
            return render_scene(self.cat, None, rs, basket, occlusion=occ,
                                blur=rng.uniform(0, blur_max), personal=personal, pool_style=True)
        if cond == "clear":
            occ, blur, oov = rng.uniform(0, 0.3 * occ_max), rng.uniform(0, 0.3 * blur_max), 0.0
        elif cond == "hard":
            occ, blur, oov = rng.uniform(0.3 * occ_max, occ_max), rng.uniform(0.3 * blur_max, blur_max), 0.0
        else:
            occ, blur, oov = 0.0, rng.uniform(0, blur_max), rng.uniform(0.4, 0.5)
        return render_scene(self.cat, sku, rs, basket, occlusion=occ, blur=blur, out_of_view=oov,
                            pool_style=True)
