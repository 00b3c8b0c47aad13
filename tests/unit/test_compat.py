"""An ImportError between two installed packages is one line naming the package to change.

The bad pairs cannot be installed in the test venv (scripts/constraints.txt pins working ones), so
the ImportErrors are the ones measured (their exact text, `scripts/deps_check.sh oldest` raises
them for real) with the versions given; the generic case raises a real one from a module that
borrows an installed distribution's package name.
"""

from __future__ import annotations

import pytest

from reprotrain.adapters.compat import incompatible, reports_incompatible
from reprotrain.errors import ReprotrainError

SQLALCHEMY = ImportError(
    "cannot import name 'FallbackAsyncAdaptedQueuePool' from 'sqlalchemy.pool' (/v/sqlalchemy/pool/__init__.py)",
    name="sqlalchemy.pool",
)
PATHSPEC = ImportError(
    "cannot import name '_DIR_MARK' from 'pathspec.patterns.gitwildmatch' (/v/pathspec/patterns/gitwildmatch.py)",
    name="pathspec.patterns.gitwildmatch",
)


def versions(**installed: str):  # type: ignore[no-untyped-def]
    names = {k.replace("_", "-").lower(): v for k, v in installed.items()}
    return lambda distribution: names.get(distribution.lower())


def test_old_mlflow_beside_sqlalchemy_2_1_names_the_release_that_fixes_it() -> None:
    error = incompatible(SQLALCHEMY, versions(mlflow_skinny="3.8.1", sqlalchemy="2.1.9"))
    assert error is not None and error.exit_code == 1
    assert str(error) == (
        "mlflow-skinny 3.8.1 cannot be imported with SQLAlchemy 2.1.9 (fix: pip install 'mlflow-skinny>=3.9')"
    )


def test_with_the_full_mlflow_installed_the_fix_upgrades_it() -> None:
    error = incompatible(SQLALCHEMY, versions(mlflow="3.4.0", mlflow_skinny="3.4.0", sqlalchemy="2.1.0"))
    assert str(error) == "mlflow 3.4.0 cannot be imported with SQLAlchemy 2.1.0 (fix: pip install 'mlflow>=3.9')"


def test_old_dvc_beside_pathspec_1() -> None:
    error = incompatible(PATHSPEC, versions(dvc="3.65.0", pathspec="1.1.1"))
    assert str(error) == "dvc 3.65.0 cannot be imported with pathspec 1.1.1 (fix: pip install 'dvc>=3.66')"


def test_a_missing_module_or_reprotrains_own_import_is_not_a_pair() -> None:
    assert incompatible(ModuleNotFoundError("No module named 'mlflow'", name="mlflow")) is None
    with pytest.raises(ImportError) as raised:
        from reprotrain.errors import NoSuchName  # type: ignore[attr-defined]  # noqa: F401
    assert incompatible(raised.value) is None


def test_any_other_name_missing_between_two_distributions_names_the_importer() -> None:
    # a module of the `mlflow` package (mlflow-skinny's) that imports a name SQLAlchemy lacks
    code = compile("from sqlalchemy import NoSuchName", "/v/mlflow/store/fake.py", "exec")
    with pytest.raises(ImportError) as raised:
        exec(code, {"__name__": "mlflow.store.fake"})
    error = incompatible(raised.value, versions(mlflow_skinny="3.10.0", sqlalchemy="2.1.9"))
    assert str(error) == (
        "mlflow-skinny 3.10.0 cannot be imported with SQLAlchemy 2.1.9 (fix: pip install -U 'mlflow-skinny')"
    )


def test_the_adapter_boundary_raises_reprotrains_error_from_the_import_error() -> None:
    @reports_incompatible
    def open_store() -> None:
        raise SQLALCHEMY

    with pytest.raises(ReprotrainError, match=r"^mlflow-skinny .* cannot be imported with SQLAlchemy") as raised:
        open_store()
    assert raised.value.__cause__ is SQLALCHEMY

    @reports_incompatible
    def unrelated() -> None:
        raise ModuleNotFoundError("No module named 'boto3'", name="boto3")

    with pytest.raises(ModuleNotFoundError):  # not a pair of installed packages: left as it is
        unrelated()
