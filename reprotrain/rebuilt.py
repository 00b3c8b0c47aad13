"""`rerun --rebuild-env`: the recorded environment rebuilt (core/rebuild plans it, adapters/envbuild
builds and caches it) and put first on PATH for the rerun's code, the way an activated venv is;
what cannot be rebuilt is refused before anything runs, one line each with its fix."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.adapters import envbuild, interpreter
from reprotrain.core.entrypoint import parse_entrypoint
from reprotrain.core.pipeline import parse_repro
from reprotrain.core.rebuild import cache_key, plan_rebuild
from reprotrain.core.verify import env_drift
from reprotrain.errors import UsageError
from reprotrain.progress import progress

__all__ = ["Rebuilt", "rebuilt_environment"]

Drift = list[tuple[str, str | None, str | None]]


@dataclass(frozen=True)
class Rebuilt:
    key: str  # the environment's name in the cache (reprotrain.env.rebuilt)
    path: Path
    drift: Drift  # the rebuilt environment against the record: empty when it is the same
    reused: bool


def _project_name(root: Path) -> str | None:
    from reprotrain.settings import tomllib

    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    name = data.get("project", {}).get("name") or data.get("tool", {}).get("poetry", {}).get("name")
    return name if isinstance(name, str) else None


def _refuse_in_process(entrypoint: str) -> None:
    entry = parse_entrypoint(entrypoint)
    if entry.is_callable:
        raise UsageError(
            f"entrypoint {entry.text!r} is a Python callable: it runs in reprotrain's own process, which "
            "--rebuild-env cannot move into the rebuilt environment",
            hint='a command runs in it (entrypoint = "python train.py", a script that calls '
            f"{entry.module}.{entry.function}), or rerun without --rebuild-env",
        )
    try:
        repro = parse_repro(entry.text)
    except ValueError:
        repro = None
    if repro is not None:
        raise UsageError(
            "a `dvc repro` entrypoint runs DVC in reprotrain's own environment: --rebuild-env does not rebuild "
            "a pipeline's environment yet",
            hint="rerun without --rebuild-env (the drift is printed), or build it by hand from `reprotrain env RUN_ID`",
        )


@contextlib.contextmanager
def rebuilt_environment(
    recorded: dict[str, Any], project_root: Path, entrypoint: str, python: str | None, force: bool
) -> Iterator[Rebuilt]:
    """Build (or reuse) the environment ``recorded`` describes, install the project's package
    from ``project_root`` (the rerun's worktree) when it was installed from the project, and put
    it first on PATH (VIRTUAL_ENV set) until the block ends. envbuild.CannotRebuild names what
    cannot be rebuilt (nothing has run)."""
    _refuse_in_process(entrypoint)
    wanted = str(recorded.get("python") or "")
    exe, found = envbuild.find_python(wanted, str(recorded.get("implementation") or ""), python)
    plan = plan_rebuild(
        recorded,
        machine=platform.machine(),
        system=platform.system(),
        python_found=found if exe else None,
        python_given=python is not None,
        project_name=_project_name(project_root),
        exists=os.path.exists,
        force=force,
    )
    if plan.problems or exe is None:
        raise envbuild.CannotRebuild(plan.problems)
    digest = str(recorded.get("digest") or interpreter.rebuild_digest(recorded))
    key = cache_key(digest, plan.python, plan.skipped)
    built = envbuild.build(key, exe, plan, recorded, force)
    with envbuild.using(built.path, exclusive=plan.project is not None):
        if plan.project is not None:
            envbuild.install_project(built, project_root, built.path.parent / f"{key}.log")
        described = interpreter.describe_other(str(built.python)) or {}
        drift: Drift = env_drift(recorded, described)
        was = str(recorded.get("machine") or "")
        if was and was != platform.machine():  # --force built it for this machine
            drift.append(("machine", was, platform.machine()))
        system = str(recorded.get("platform") or "").split("-", 1)[0]
        if system and {"macOS": "Darwin"}.get(system, system) != platform.system():
            drift.append(("system", system, platform.system()))
        progress(f"the rerun runs in the rebuilt environment {built.path}")
        saved = {k: os.environ.get(k) for k in ("PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME")}
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = os.pathsep.join([str(built.path / "bin"), path]) if path else str(built.path / "bin")
        os.environ["VIRTUAL_ENV"] = str(built.path)
        for name in ("CONDA_PREFIX", "PYTHONHOME"):  # PYTHONPATH stays: the original's code had it too
            os.environ.pop(name, None)
        try:
            yield Rebuilt(key, built.path, drift, built.reused)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
