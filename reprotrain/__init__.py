"""reprotrain: reproducible training runs with git, DVC, Hydra and MLflow.

The public Python API (docs/reference.md, "Python API"): :func:`load` a recorded run, list
:func:`runs`, open a run's data as it was (:meth:`Run.open`), and the errors. Heavy libraries
(mlflow, dvc, hydra) are imported only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reprotrain.api import DataVersion, Run, RunSummary, load, runs
    from reprotrain.errors import NotPinnedError, NotReproducedError, ReprotrainError, UsageError
del TYPE_CHECKING

_LAZY = {
    **dict.fromkeys(("DataVersion", "Run", "RunSummary", "load", "runs"), "reprotrain.api"),
    **dict.fromkeys(("NotPinnedError", "NotReproducedError", "ReprotrainError", "UsageError"), "reprotrain.errors"),
}


def __getattr__(name: str) -> Any:
    """The API's names, imported when first used: the console script imports this package, and a
    warm launch's client (console.py) needs none of them (≈40 ms of every launch)."""
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in ("api", "errors"):  # as `import reprotrain` made them before
        value = importlib.import_module(f"reprotrain.{name}")
    else:
        raise AttributeError(f"module 'reprotrain' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
