"""Basket reconciliation: weight + vision fusion, learned weights, accept / ask / review.

Pure logic (no MQTT, SQLite or clock); see docs/reconciliation.md.
"""
from .config import ReconcileConfig
from .engine import CartReconciler, ReconcileError
from .inputs import Answer, Unsettled, Verdict, Vision, WeightChange, answer_of, verdict_of
from .scoring import CatalogueIndex
from .weightbook import WeightBook

__all__ = ["Answer", "CartReconciler", "CatalogueIndex", "ReconcileConfig", "ReconcileError",
           "Unsettled", "Verdict", "Vision", "WeightBook", "WeightChange", "answer_of", "verdict_of"]
