"""reprotrain: reproducible training runs with git, DVC, Hydra and MLflow.

The public Python API is small: the errors, the settings, and the functions the CLI calls.
Heavy libraries (mlflow, dvc, hydra) are imported only when a command needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from reprotrain.errors import NotPinnedError, NotReproducedError, ReprotrainError, UsageError

__all__ = [
    "NotPinnedError",
    "NotReproducedError",
    "ReprotrainError",
    "UsageError",
    "__version__",
]
