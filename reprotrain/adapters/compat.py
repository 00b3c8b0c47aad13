"""Installed packages that cannot work together, reported in one line instead of a traceback.

A library at an older release imports names that a newer release of its own dependency no longer
has, and declares no upper bound that would stop pip or uv from installing the two side by side
(measured: README.md, "Supported versions"). Where an adapter first touches MLflow, DVC or
Hydra, such an ImportError becomes a ReprotrainError (exit 1) that names the package to change:

    mlflow-skinny 3.8.1 cannot be imported with SQLAlchemy 2.1.9 (fix: pip install 'mlflow-skinny>=3.9')

Known pairs get the release that fixes them; any other "cannot import name" between two installed
distributions is named the same way, with an upgrade of the importing one as the fix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import TypeVar

from reprotrain.errors import ReprotrainError

__all__ = ["KNOWN", "Incompatibility", "incompatible", "reports_incompatible", "translating"]


@dataclass(frozen=True)
class Incompatibility:
    missing: str  # the name the import no longer finds
    module: str  # the module it was looked for in (ImportError.name)
    package: str  # the distribution whose code does the import
    dependency: str  # the distribution that no longer provides the name
    fixed_in: str  # the first release of `package` that works beside it


KNOWN = (
    # mlflow-skinny 3.1-3.8 import it at `mlflow.store.db.utils`; SQLAlchemy 2.1 removed it; 3.9 guards it
    Incompatibility("FallbackAsyncAdaptedQueuePool", "sqlalchemy.pool", "mlflow-skinny", "SQLAlchemy", "3.9"),
    # dvc 3.50-3.65 import it when building .dvcignore patterns; pathspec 1.0 removed it; 3.66 caps pathspec
    Incompatibility("_DIR_MARK", "pathspec.patterns.gitwildmatch", "dvc", "pathspec", "3.66"),
)

Versions = Callable[[str], "str | None"]


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _importer(exc: ImportError) -> str | None:
    """The module whose import statement failed: the innermost frame of the traceback."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_globals.get("__name__")
    return name if isinstance(name, str) else None


def _distribution(module: str) -> str | None:
    names = metadata.packages_distributions().get(module.split(".")[0], [])
    return names[0] if names else None


def incompatible(exc: ImportError, version: Versions = _installed) -> ReprotrainError | None:
    """The one-line error for an ImportError between two installed distributions, or None when
    ``exc`` is not one (a module simply missing, or reprotrain's own import)."""
    for known in KNOWN:
        if exc.name == known.module and f"'{known.missing}'" in str(exc):
            package = known.package
            if package == "mlflow-skinny" and version("mlflow") is not None:
                package = "mlflow"  # the full package pins skinny to its own release: upgrade it instead
            fix = f"pip install '{package}>={known.fixed_in}'"
            return _error(package, version(package), known.dependency, version(known.dependency), fix)
    if not exc.name or not str(exc).startswith("cannot import name"):
        return None
    importer, provider = _importer(exc), str(exc.name)
    if importer is None or "reprotrain" in {importer.split(".")[0], provider.split(".")[0]}:
        return None  # reprotrain's own import: a bug of ours, with its traceback
    importing, providing = _distribution(importer), _distribution(provider)
    if importing is None or providing is None or importing == providing:
        return None
    return _error(importing, version(importing), providing, version(providing), f"pip install -U '{importing}'")


def _error(package: str, have: str | None, dependency: str, dep_have: str | None, fix: str) -> ReprotrainError:
    unknown = "(version unknown)"
    return ReprotrainError(
        f"{package} {have or unknown} cannot be imported with {dependency} {dep_have or unknown}", hint=fix
    )


@contextmanager
def translating() -> Iterator[None]:
    """Turn an ImportError between installed distributions into reprotrain's one-line error."""
    try:
        yield
    except ImportError as exc:
        error = incompatible(exc)
        if error is None:
            raise
        raise error from exc


F = TypeVar("F", bound=Callable[..., object])


def reports_incompatible(function: F) -> F:
    """Decorator for an adapter function that touches a library first: see `translating`."""

    @functools.wraps(function)
    def wrapper(*args: object, **kwargs: object) -> object:
        with translating():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
