"""Fixtures for reprotrain's end-to-end tests: an isolated environment and a template project."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import helpers  # noqa: E402

_DROPPED_PREFIXES = ("MLFLOW_", "DVC_", "GIT_", "HYDRA_", "REPROTRAIN_")
_DROPPED = {"PYTHONPATH", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "AWS_PROFILE"}


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """No test sees the developer's HOME, git identity, MLflow or DVC settings, or the network.

    Session-scoped so that module-scoped fixtures which already run reprotrain are isolated too;
    subprocesses inherit this environment.
    """
    base = tmp_path_factory.mktemp("isolated-home")
    home = base / "home"
    home.mkdir()
    gitconfig = base / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        "[commit]\n\tgpgsign = false\n"
    )
    mp = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith(_DROPPED_PREFIXES) or key in _DROPPED:
            mp.delenv(key)
    mp.setenv("HOME", str(home))
    mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    mp.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    mp.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.setenv("DO_NOT_TRACK", "true")
    mp.setenv("DVC_NO_ANALYTICS", "1")
    mp.setenv("DVC_SITE_CACHE_DIR", str(base / "dvc-site-cache"))
    mp.setenv("PATH", f"{helpers.VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mp.setenv("PYTHONUNBUFFERED", "1")  # as in many containers; the console log must still keep lines
    # store helpers (reprotrain/adapters/store_helper.py) of this session: a short private
    # directory (socket paths are limited to 107 bytes), and a short idle time
    runtime = Path(tempfile.mkdtemp(prefix="rt-run-"))
    mp.setenv("XDG_RUNTIME_DIR", str(runtime))
    mp.setenv("REPROTRAIN_STORE_HELPER_IDLE", "20")
    mp.setenv("REPROTRAIN_WARM_IDLE", "20")  # warm processes (reprotrain/adapters/warm.py) as short
    yield
    mp.undo()
    helpers.stop_store_helpers(runtime)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="session")
def template_project(tmp_path_factory) -> Path:
    """Built once per session (per xdist worker); tests copy it, never change it."""
    return helpers.build_template(tmp_path_factory.mktemp("template") / "demo")


@pytest.fixture
def project(template_project, tmp_path) -> Path:
    """A private, clean copy of the template project (a git + DVC repo)."""
    return helpers.copy_project(template_project, tmp_path / "demo")


# The modules whose tests take longest (20-60 s each on two cores), run first: the two workers
# then end on short tests together instead of one waiting for the other's last long test.
_LONG_FIRST = (
    "test_slurm.py",
    "test_rebuild_env_launcher.py",
    "test_faults.py",
    "test_leaks.py",
    "test_launchers.py",
    "test_mlflow_verify.py",
    "test_pipeline.py",
    "test_lineage.py",
    "test_env_record.py",
    "test_store_faults.py",
    "test_inspect.py",
    "test_phase_faults.py",
)


def pytest_collection_modifyitems(items):
    """Long modules first (stable: each module's tests keep their order, so module-scoped
    fixtures are set up once per worker as before)."""
    rank = {name: n for n, name in enumerate(_LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
