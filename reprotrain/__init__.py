"""reprotrain: reproducible training runs with git, DVC, Hydra and MLflow.

The public Python API (docs/reference.md, "Python API"): :func:`load` a recorded run, list
:func:`runs`, open a run's data as it was (:meth:`Run.open`), and the errors. Heavy libraries
(mlflow, dvc, hydra) are imported only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from reprotrain.api import DataVersion, Run, RunSummary, load, runs
from reprotrain.errors import NotPinnedError, NotReproducedError, ReprotrainError, UsageError

__all__ = [
    "DataVersion",
    "NotPinnedError",
    "NotReproducedError",
    "ReprotrainError",
    "Run",
    "RunSummary",
    "UsageError",
    "__version__",
    "load",
    "runs",
]
