"""The isolation-forest model: behavioural columns, training, storage, batched verdicts.

``load_model`` and ``save_model`` (``models.store``) import scikit-learn and skops
when first used; a worker serves its model without them (``models.served``).
"""

from __future__ import annotations

from typing import Any

from models.anomaly import AnomalyModel, Verdict
from models.errors import ModelError

__all__ = ["AnomalyModel", "ModelError", "Verdict", "load_model", "save_model"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "save_model"):
        from models import store

        return getattr(store, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
