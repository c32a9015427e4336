"""The model as a worker serves it: checked in a short-lived process, held without scikit-learn.

Importing scikit-learn (and SciPy with it) costs a process about 100 MB of
memory, and a worker never calls it: it scores with the flat forest
(``models/flatforest.py``).  So a worker hands the model file to
``python -m models.served MODEL OUT``, which loads it with every check of
``models.store.load_model`` (trusted types, columns, features, scikit-learn
version), flattens the forest and writes plain arrays to ``OUT`` (``.npz``,
read back without pickle).  A file the checks refuse comes back as the same
``ModelError``, with the same message.

>>> model = load_served_model(Path("model.skops"))   # doctest: +SKIP
>>> model.version                                     # doctest: +SKIP
'3f2a…'
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from models.anomaly import AnomalyModel
from models.errors import ModelError
from models.flatforest import ARRAYS, FlatForest

REFUSED = 3  # the checker's exit status for a file it refuses (the reason on stderr)
TIMEOUT = 300.0
_FIELDS = ("threshold", "odd_threshold", "median", "scale", "peer_median", "peer_scale", "meta",
           "name", "rule_id", "min_z")


def load_served_model(path: Path, timeout: float = TIMEOUT) -> AnomalyModel:
    """``path`` checked and flattened by a child process; raises ``ModelError`` saying why not."""
    return start_served_model(path, timeout).result()


def start_served_model(path: Path, timeout: float = TIMEOUT) -> PendingModel:
    """Start checking ``path`` in a child process; ``result()`` waits for it.

    A worker starts it first and does its own start-up meanwhile (about 2 s of
    the child's time is loading scikit-learn)."""
    return PendingModel(path, timeout)


class PendingModel:
    """A model being checked and flattened by a child process."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="accesswatch-model-")
        self.out = Path(self._tmp.name) / "model.npz"
        self.proc = subprocess.Popen([sys.executable, "-m", "models.served", str(path),
                                      str(self.out)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def cancel(self) -> None:
        """Stop the child (the worker stopped first, say on a bad rule pack)."""
        self.proc.kill()
        self.proc.communicate()
        self._tmp.cleanup()

    def result(self) -> AnomalyModel:
        """The model, or ``ModelError`` saying why not."""
        path = self.path
        try:
            try:
                _, stderr = self.proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
                raise ModelError(f"{path}: checking the model took over {self.timeout:.0f} s"
                                 ) from None
            said = stderr.strip().splitlines()
            if self.proc.returncode == REFUSED and said:
                raise ModelError(said[-1])
            if self.proc.returncode != 0:
                last = said[-1] if said else "no message"
                raise ModelError(f"{path}: the model checker failed "
                                 f"(exit {self.proc.returncode}: {last})")
            return read_flat(self.out)
        finally:
            self._tmp.cleanup()


def write_flat(model: AnomalyModel, out: Path) -> None:
    """``model`` as arrays and JSON, for ``read_flat``."""
    assert model.forest is not None
    flat = FlatForest(model.forest)
    fields = {name: getattr(model, name) for name in _FIELDS}
    fields["depth"], fields["denominator"] = flat.depth, flat.denominator
    arrays: dict[str, Any] = {"fields": np.array(json.dumps(fields, default=_plain)),
                              **flat.arrays()}
    np.savez(out, **arrays)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (a trusted type in a model file) as JSON can hold them."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} in a model file's fields")


def read_flat(path: Path) -> AnomalyModel:
    with np.load(path, allow_pickle=False) as z:
        fields = json.loads(str(z["fields"]))
        arrays = {name: z[name] for name in ARRAYS}
    flat = FlatForest.from_arrays(arrays, fields.pop("depth"), fields.pop("denominator"))
    return AnomalyModel(forest=None, _flat=flat, **fields)


def main(argv: list[str]) -> int:
    from models.store import load_model

    if len(argv) != 2:
        print("usage: python -m models.served MODEL OUT.npz", file=sys.stderr)
        return 2
    try:
        model = load_model(Path(argv[0]))
    except ModelError as e:
        print(e, file=sys.stderr)
        return REFUSED
    write_flat(model, Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
