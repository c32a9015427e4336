"""Model files: skops (never plain pickle), with what is needed to refuse a wrong one.

A file carries the forest, its column names and order, the raw feature names
the core emits, the scikit-learn version it was fitted with, the training
period and size, the contamination and the thresholds.  Loading refuses, with
a reason, any file whose columns, features or versions do not match this code,
or that holds a type outside the short list below.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import sklearn
import skops.io as sio

from accesswatch.core.features import RAW
from models.anomaly import COLUMNS, AnomalyModel
from models.errors import ModelError

FORMAT = 2  # 2: columns of doubtful work, no peer usual rates
# Everything an IsolationForest needs, nothing that can run code on load.
TRUSTED = [
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.int64",
    "numpy.intp",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "builtins.NoneType",
]


def save_model(model: AnomalyModel, path: Path) -> str:
    """Write ``model`` to ``path``; return its version (a hash of the file)."""
    payload = {
        "format": FORMAT,
        "name": model.name,
        "rule_id": model.rule_id,
        "columns": list(COLUMNS),
        "raw_features": list(RAW),
        "forest": model.forest,
        "threshold": float(model.threshold),
        "odd_threshold": float(model.odd_threshold),
        "min_z": float(model.min_z),
        "median": [float(x) for x in model.median],
        "scale": [float(x) for x in model.scale],
        "peer_median": {k: [float(x) for x in v] for k, v in model.peer_median.items()},
        "peer_scale": {k: [float(x) for x in v] for k, v in model.peer_scale.items()},
        "meta": {**model.meta, "sklearn_version": sklearn.__version__},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sio.dump(payload, tmp)
    tmp.replace(path)  # atomic: a worker polling the path never sees half a file
    return _version(path)


def load_model(path: Path) -> AnomalyModel:
    """Load and check a model file, or raise ``ModelError`` saying why not."""
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # skops raises several types for a damaged file
        raise ModelError(f"{path}: not a readable skops model file ({type(e).__name__})") from None
    refused = sorted(set(untrusted) - set(TRUSTED))
    if refused:
        raise ModelError(f"{path}: holds types outside the trusted list: {', '.join(refused[:5])}")
    try:
        payload: dict[str, Any] = sio.load(path, trusted=TRUSTED)
    except Exception as e:
        raise ModelError(f"{path}: could not be loaded ({type(e).__name__}: {e})") from None
    _check(path, payload)
    meta = dict(payload["meta"])
    meta["version"] = _version(path)
    return AnomalyModel(
        forest=payload["forest"],
        threshold=payload["threshold"],
        odd_threshold=payload["odd_threshold"],
        median=payload["median"],
        scale=payload["scale"],
        peer_median=payload["peer_median"],
        peer_scale=payload["peer_scale"],
        meta=meta,
        name=payload["name"],
        rule_id=payload["rule_id"],
        min_z=payload["min_z"],
    )


def _check(path: Path, payload: Any) -> None:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not an accesswatch model (format {FORMAT} expected)")
    if payload.get("columns") != list(COLUMNS):
        raise ModelError(
            f"{path}: columns {payload.get('columns')} do not match this version's {list(COLUMNS)}"
        )
    if payload.get("raw_features") != list(RAW):
        raise ModelError(f"{path}: raw features do not match this version's {list(RAW)}")
    fitted = str(payload.get("meta", {}).get("sklearn_version", "?"))
    if fitted.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ModelError(
            f"{path}: fitted with scikit-learn {fitted}, this is {sklearn.__version__}; retrain it"
        )
    n = len(COLUMNS)
    stats = [payload.get("median", []), payload.get("scale", []),
             *payload.get("peer_median", {}).values(), *payload.get("peer_scale", {}).values()]
    if any(len(v) != n for v in stats) or "peer_median" not in payload:
        raise ModelError(f"{path}: baseline statistics have the wrong length")


def _version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
