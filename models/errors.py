"""The model package's error, importable without scikit-learn."""

from __future__ import annotations

from accesswatch.errors import AccessWatchError


class ModelError(AccessWatchError):
    """A model file that cannot be used: the message says which file and why."""
