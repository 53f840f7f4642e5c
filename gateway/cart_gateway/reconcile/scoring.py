"""Fusion of weight, vision, barcode and basket context into a posterior.

posterior(h) ∝ prior(h | basket) × vision(h) × barcode(h) × weight_lik(delta | h)

Vectorised with numpy over the catalogue, so one weight event costs a few
array operations whatever the catalogue size (docs/reconciliation.md §2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import ReconcileConfig
from .inputs import VisionSummary
from .weightbook import WeightBook

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
KINDS = ("add", "remove", "swap", "personal", "personal_remove")


class CatalogueIndex:
    """The catalogue as arrays, in catalogue iteration order."""

    def __init__(self, catalogue):
        items = list(catalogue)
        if not items:
            raise ValueError("CatalogueIndex: the catalogue is empty")
        self.items = {s.sku: s for s in items}
        self.skus = [s.sku for s in items]
        self.idx = {s: i for i, s in enumerate(self.skus)}
        self.by_weight = np.array([bool(s.sold_by_weight) for s in items])
        self.ean = {s.ean13: s.sku for s in items if s.ean13}
        self.n = len(items)
        # scoring's index arrays, built once: packaged SKUs, produce, and where each
        # SKU sits among the packaged ones (-1 for produce)
        self.units = np.flatnonzero(~self.by_weight)
        self.produce = np.flatnonzero(self.by_weight)
        self.unit_pos = np.full(self.n, -1, dtype=np.int64)
        self.unit_pos[self.units] = np.arange(len(self.units))

    def sku_of_barcode(self, code: str) -> str | None:
        return self.ean.get(code)


@dataclass
class Scored:
    hyps: list[dict]            # top hypotheses, best first, each with "posterior"
    evidence: list[str]         # which evidence counted
    best_fit_z: float           # smallest |z| of any product hypothesis (weight fit)
    unknown_barcodes: list[str]
    arrays: dict                # all hypotheses (not serialised): for answer checks


def _normal_logpdf(x: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mu) / sd
    return -0.5 * z * z - np.log(sd) - _LOG_SQRT_2PI


def score(delta_g: float, noise_g: float, cat: CatalogueIndex, book: WeightBook,
          lines: list[dict], personal: list[dict], vision: VisionSummary | None,
          cfg: ReconcileConfig) -> Scored:
    # Speed notes (results are bit-for-bit those of the straightforward form, see
    # gateway/tests/test_scoring_identical.py): every hypothesis block is written
    # straight into preallocated columns (no per-block np.full / concatenate), the
    # k = 1..K unit blocks are one K x U array, and a factor that is the same for
    # every hypothesis (uniform vision, no barcode) stays a scalar instead of an
    # array; IEEE arithmetic gives the same doubles either way.
    n = cat.n
    sn = max(cfg.sensor_noise_g, float(noise_g))
    sn2 = sn * sn
    floor = math.log(cfg.weight_lik_floor) if cfg.weight_lik_floor > 0 else -np.inf
    mean, sd = book.mean, book.sd
    evidence = ["weight", "context"]

    # vision factor per SKU (index n = "no product"), mixed with a uniform floor
    if vision is not None and vision.n_frames > 0:
        agg = np.zeros(n + 1)
        for s, v in vision.scores.items():
            i = cat.idx.get(s)
            if i is not None:
                agg[i] = v
        agg[n] = vision.none_score
        rest = max(0.0, 1.0 - float(agg.sum()))
        agg = agg / max(1.0, float(agg.sum())) + rest / (n + 1)
        vis = (1.0 - cfg.vision_floor) * agg + cfg.vision_floor / (n + 1)
        evidence.append("vision")
        logv = np.log(vis)
        uniform = False
    else:
        u = 1.0 / (n + 1)
        vis = None
        logv = float(np.log(np.array([u]))[0])      # the same for every SKU: a scalar
        lv_swap = float(np.log(np.array([0.5 * (u + u)]))[0])
        uniform = True

    # barcode factor: a read is near-certain evidence for its SKU
    logb = 0.0                                       # scalar unless a known barcode was read
    unknown = []
    if vision is not None and vision.barcodes:
        hits = [cat.sku_of_barcode(b) for b in vision.barcodes]
        unknown = [b for b, h in zip(vision.barcodes, hits) if h is None]
        known = sorted({cat.idx[h] for h in hits if h is not None})
        if known:
            logb = np.zeros(n + 1)
            logb[:] = math.log(cfg.barcode_other)
            logb[known] = 0.0
            evidence.append("barcode")
    barcode = not isinstance(logb, float)

    def lv_at(ix):
        return logv if uniform else logv[ix]

    def lb_at(ix):
        return logb[ix] if barcode else 0.0

    units, produce = cat.units, cat.produce
    nu, npr = len(units), len(produce)
    K = cfg.max_units
    log_n = math.log(n)

    # ---- block sizes, so every column is allocated once
    pos = [p for p, ln in enumerate(lines) if ln["status"] == "accepted" and ln["sku"] in cat.idx]
    n_t = len(pos) + len(personal)
    n_add = K * nu if delta_g > 0 else 0
    n_prod = npr if delta_g > 0 else 0
    n_pers = 1 if delta_g > 0 and cfg.prior_personal > 0 else 0
    n_rw = n_sw = n_pr = 0
    rk = []
    if n_t:
        lpos = np.array(pos, dtype=int)
        li = np.array([cat.idx[lines[p]["sku"]] for p in pos], dtype=int)
        lq = np.array([lines[p]["qty"] for p in pos], dtype=int)
        lbw = np.array([bool(lines[p]["by_weight"]) for p in pos], dtype=bool)
        lw = np.array([float(lines[p]["weight_g"]) for p in pos])
        if len(pos):
            n_rw = int(lbw.sum())
            for k in range(1, K + 1):
                m = ~lbw & (lq >= k)
                if not m.any():
                    break
                rk.append((k, m, int(m.sum())))
            pk = ~lbw
            n_pk = int(pk.sum())
            if cfg.prior_swap > 0 and n_pk and nu:
                n_sw = n_pk * nu
        if delta_g < 0:
            n_pr = len(personal)
    total = n_add + n_prod + n_pers + n_rw + sum(c for _, _, c in rk) + n_sw + n_pr
    if total == 0:
        return Scored([], evidence, math.inf, unknown, {})
    lp = np.empty(total)
    mu = np.empty(total)
    s = np.empty(total)
    z = np.empty(total)
    kind = np.empty(total, dtype=np.int64)
    ski = np.empty(total, dtype=np.int64)
    kk = np.empty(total, dtype=np.int64)
    line = np.empty(total, dtype=np.int64)
    aux = np.empty(total, dtype=np.int64)
    at = 0
    personal_at = -1

    def meta(a, b, kd, sk, k, ln, ax):
        kind[a:b] = KINDS.index(kd)
        ski[a:b] = sk
        kk[a:b] = k
        line[a:b] = ln
        aux[a:b] = ax

    def gauss(a, b, m_, s_):
        """z and the floored weight log-likelihood of hypotheses a..b (mu, sd already in place)."""
        zz = np.subtract(delta_g, m_, out=z[a:b].reshape(np.shape(m_)))
        np.divide(zz, s_, out=zz)
        return np.maximum(-0.5 * zz * zz - np.log(s_) - _LOG_SQRT_2PI, floor)

    if n_add:
        # k = 1..K units of one packaged SKU: one K x U block, rows in k order
        ks = np.arange(1, K + 1, dtype=float)[:, None]
        m2 = np.multiply(ks, mean[units][None, :], out=mu[:n_add].reshape(K, nu))
        sdu2 = sd[units] ** 2
        s2 = np.sqrt(ks * sdu2[None, :] + sn2, out=s[:n_add].reshape(K, nu))
        ll = gauss(0, n_add, m2, s2)
        ck = np.array([math.log(cfg.unit_prior_of(k)) - log_n for k in range(1, K + 1)])[:, None]
        lp[:n_add].reshape(K, nu)[...] = ck + lv_at(units) + lb_at(units) + ll
        meta(0, n_add, "add", np.tile(units, K), np.repeat(np.arange(1, K + 1), nu), -1, -1)
        at = n_add
    if n_prod:
        # any quantity of loose produce: the weight says little, vision names it
        a, b = at, at + n_prod
        mu[a:b] = delta_g
        s[a:b] = cfg.produce_max_g / math.sqrt(12)
        np.divide(np.subtract(delta_g, mu[a:b]), s[a:b], out=z[a:b])
        ll = -math.log(cfg.produce_max_g) if delta_g <= cfg.produce_max_g else floor
        lp[a:b] = math.log(cfg.prior_produce) - log_n + lv_at(produce) + lb_at(produce) + ll
        meta(a, b, "add", produce, 1, -1, -1)
        at = b
    if n_pers:
        ll = -math.log(cfg.personal_max_g) if delta_g <= cfg.personal_max_g else floor
        lvn = logv if uniform else logv[n]
        lbn = logb[n] if barcode else 0.0
        lp[at:at + 1] = np.array([math.log(cfg.prior_personal) + lvn + lbn + ll])
        mu[at] = delta_g
        s[at] = cfg.personal_max_g / math.sqrt(12)
        np.divide(np.subtract(delta_g, mu[at:at + 1]), s[at:at + 1], out=z[at:at + 1])
        meta(at, at + 1, "personal", -1, 1, -1, -1)
        personal_at = at
        at += 1
    if n_t:
        log_nt = math.log(n_t)
        if n_rw:
            # whole produce lines out
            a, b = at, at + n_rw
            ix = li[lbw]
            np.negative(lw[lbw], out=mu[a:b])
            s[a:b] = sn * math.sqrt(2.0)
            ll = gauss(a, b, mu[a:b], s[a:b])
            lp[a:b] = -log_nt + lv_at(ix) + lb_at(ix) + ll
            meta(a, b, "remove", ix, 1, lpos[lbw], -1)
            at = b
        for k, m, c in rk:
            # k units out of a packaged line
            a, b = at, at + c
            ix = li[m]
            np.multiply(-k, mean[ix], out=mu[a:b])
            np.sqrt(k * sd[ix] ** 2 + sn2, out=s[a:b])
            ll = gauss(a, b, mu[a:b], s[a:b])
            lp[a:b] = math.log(cfg.unit_prior_of(k)) - log_nt + lv_at(ix) + lb_at(ix) + ll
            meta(a, b, "remove", ix, k, lpos[m], -1)
            at = b
        if n_sw:
            # swap: one unit of a packaged line out, one unit of another SKU in (lines x SKUs)
            a, b = at, at + n_sw
            a_i, a_pos = li[pk], lpos[pk]
            L = len(a_i)
            m2 = np.subtract(mean[units][None, :], mean[a_i][:, None], out=mu[a:b].reshape(L, nu))
            s2 = s[a:b].reshape(L, nu)
            np.add(sd[units][None, :] ** 2, sd[a_i][:, None] ** 2, out=s2)
            np.add(s2, sn2, out=s2)
            np.sqrt(s2, out=s2)
            ll = gauss(a, b, m2, s2)
            if uniform:
                lv = lv_swap
            else:
                lv = np.log(0.5 * (vis[units][None, :] + vis[a_i][:, None]))
            lb = np.maximum(logb[units][None, :], logb[a_i][:, None]) if barcode else 0.0
            lp2 = lp[a:b].reshape(L, nu)
            lp2[...] = math.log(cfg.prior_swap) - log_n - log_nt + lv + lb + ll
            lp2[np.arange(L), cat.unit_pos[a_i]] = -np.inf   # a swap for the same SKU is no swap
            kind[a:b] = KINDS.index("swap")
            ski[a:b].reshape(L, nu)[...] = units[None, :]
            kk[a:b] = 1
            line[a:b].reshape(L, nu)[...] = a_pos[:, None]
            aux[a:b].reshape(L, nu)[...] = a_i[:, None]
            at = b
        if n_pr:
            lvn = logv if uniform else logv[n]
            for p, it in enumerate(personal):
                sp = sn * math.sqrt(2.0)
                ll = max(float(_normal_logpdf(delta_g, np.array([-it["weight_g"]]), np.array([sp]))[0]), floor)
                lp[at] = -log_nt + lvn + ll
                mu[at] = -it["weight_g"]
                s[at] = sp
                np.divide(np.subtract(delta_g, mu[at:at + 1]), s[at:at + 1], out=z[at:at + 1])
                meta(at, at + 1, "personal_remove", -1, 1, p, -1)
                at += 1

    top = float(lp.max())
    post = np.exp(lp - top)
    post /= post.sum()
    m_top = max(cfg.ask_top_k, 5)
    if len(post) > 4 * m_top:   # partial sort first; ties resolved by index so the order is deterministic
        cand = np.argpartition(-post, m_top)[: m_top]
        order = cand[np.lexsort((cand, -post[cand]))]
    else:
        order = np.argsort(-post, kind="stable")[:m_top]
    az = np.abs(z)
    if personal_at >= 0:
        az[personal_at] = math.inf          # best fit is over product hypotheses only
    best_fit = float(az.min()) if total > (personal_at >= 0) else math.inf
    hyps = []
    for j in order:
        kd = KINDS[int(kind[j])]
        h = {"kind": kd, "sku": cat.skus[int(ski[j])] if ski[j] >= 0 else None, "k": int(kk[j]),
             "target": _target(kd, int(line[j]), lines, personal), "posterior": float(post[j]), "mu_g": round(float(mu[j]), 3),
             "sd_g": round(float(s[j]), 3), "z": round(float(z[j]), 3)}
        if kd == "swap":
            h["remove_sku"] = cat.skus[int(aux[j])]
        hyps.append(h)
    arrays = {"post": post, "kind": kind, "ski": ski, "k": kk, "line": line, "aux": aux, "z": z, "mu": mu, "sd": s,
              "lines": lines, "personal": personal}
    return Scored(hyps, evidence, best_fit, unknown, arrays)


def best_with_sku(sc: Scored, cat: CatalogueIndex, sku: str, removal: bool, max_z: float = math.inf) -> dict | None:
    """The most likely hypothesis that adds (or, for a removal, removes) `sku` and fits the
    weight within `max_z`; if none fits, the best-fitting one (its z says by how much)."""
    a = sc.arrays
    if not a or sku not in cat.idx:
        return None
    i = cat.idx[sku]
    kinds = [KINDS.index("remove")] if removal else [KINDS.index("add"), KINDS.index("swap")]
    m = np.isin(a["kind"], kinds) & (a["ski"] == i)
    if not m.any():
        return None
    cand = np.flatnonzero(m)
    fits = cand[np.abs(a["z"][cand]) <= max_z]
    if len(fits):   # the shopper names the item; the posterior picks k, or add vs swap
        j = int(fits[np.argmax(a["post"][fits])])
    else:
        j = int(cand[np.argmin(np.abs(a["z"][cand]))])
    kd = KINDS[int(a["kind"][j])]
    h = {"kind": kd, "sku": sku, "k": int(a["k"][j]), "target": _target(kd, int(a["line"][j]), a["lines"], a["personal"]),
         "posterior": float(a["post"][j]), "mu_g": round(float(a["mu"][j]), 3),
         "sd_g": round(float(a["sd"][j]), 3), "z": round(float(a["z"][j]), 3)}
    if kd == "swap":
        h["remove_sku"] = cat.skus[int(a["aux"][j])]
    return h


def _target(kind: str, pos: int, lines: list[dict], personal: list[dict]) -> str | None:
    """The basket line (or personal item) a removal / swap hypothesis acts on."""
    if kind in ("remove", "swap"):
        return lines[pos]["line_id"]
    if kind == "personal_remove":
        return personal[pos]["pid"]
    return None
