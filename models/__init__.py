"""The isolation-forest model: behavioural columns, training, storage, batched verdicts."""

from __future__ import annotations

from models.anomaly import AnomalyModel, Verdict
from models.store import ModelError, load_model, save_model

__all__ = ["AnomalyModel", "ModelError", "Verdict", "load_model", "save_model"]
