"""Temperature scaling (Guo et al. 2017) and expected calibration error."""
from __future__ import annotations

import numpy as np

from cart_gateway.detectors.api import softmax


def nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    p = softmax(logits.astype(np.float64) / t)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising validation NLL: coarse log grid, then a finer one."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 60))
    best = min(grid, key=lambda t: nll(logits, y, t))
    fine = np.linspace(best * 0.9, best * 1.1, 41)
    return float(min(fine, key=lambda t: nll(logits, y, t)))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(total)
