"""`rerun --rebuild-env`: the recorded environment rebuilt (core/rebuild plans it, adapters/envbuild
builds and caches it) and put first on PATH for the rerun's code, the way an activated venv is;
what cannot be rebuilt is refused before anything runs, one line each with its fix.

A command entrypoint (`python train.py`) runs in it through PATH. A callable or `dvc repro`
entrypoint runs in reprotrain's own process, so the recorded environment is reprotrain's own: the
rerun itself is then run again by the reprotrain the rebuilt environment holds (the recorded
version), with REBUILT_VARIABLE telling it where it runs."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.adapters import envbuild, interpreter
from reprotrain.adapters.process import variables_set
from reprotrain.core.entrypoint import parse_entrypoint
from reprotrain.core.pipeline import parse_repro
from reprotrain.core.rebuild import Problem, cache_key, normalize, plan_rebuild
from reprotrain.core.verify import env_drift
from reprotrain.progress import progress

__all__ = ["REBUILT_VARIABLE", "Rebuilt", "drift_here", "in_process", "rebuilt_environment", "rerun_inside"]

Drift = list[tuple[str, str | None, str | None]]
# set by `rerun --rebuild-env` for the rerun it runs again inside the rebuilt environment: its key
REBUILT_VARIABLE = "REPROTRAIN_REBUILT_ENV"


@dataclass(frozen=True)
class Rebuilt:
    key: str  # the environment's name in the cache (reprotrain.env.rebuilt)
    path: Path
    python: Path
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


def in_process(entrypoint: str) -> bool:
    """Whether the entrypoint runs in reprotrain's own process (a callable; `dvc repro`, whose
    runner is reprotrain's Python), so that its environment is reprotrain's."""
    entry = parse_entrypoint(entrypoint)
    if entry.is_callable:
        return True
    try:
        return parse_repro(entry.text) is not None
    except ValueError:
        return False


def _package_dir(worktree: Path, relative: str) -> bool:
    """A directory of the commit (never one a symlink leads out of the worktree to) that a package
    is built from."""
    top = worktree.resolve()
    found = (worktree / relative).resolve()
    if found != top and top not in found.parents:
        return False
    return any((found / name).is_file() for name in ("pyproject.toml", "setup.py", "setup.cfg"))


def drift_here(recorded: dict[str, Any], described: dict[str, Any]) -> Drift:
    """The environment ``described`` (a rebuilt one) against the record: Python, implementation,
    packages, and the machine and OS it was rebuilt on."""
    drift = env_drift(recorded, described)
    was = str(recorded.get("machine") or "")
    if was and was != platform.machine():  # --force built it for this machine
        drift.append(("machine", was, platform.machine()))
    system = str(recorded.get("platform") or "").split("-", 1)[0]
    if system and {"macOS": "Darwin"}.get(system, system) != platform.system():
        drift.append(("system", system, platform.system()))
    return drift


@contextlib.contextmanager
def rebuilt_environment(
    recorded: dict[str, Any],
    worktree: Path,
    project_root: Path,
    recorded_root: str,
    entrypoint: str,
    python: str | None,
    force: bool,
) -> Iterator[Rebuilt]:
    """Build (or reuse) the environment ``recorded`` describes, install into it the packages the
    commit holds (those the original installed from a directory of its git root ``recorded_root``:
    from the same directory of the rerun's ``worktree``), and put it first on PATH (VIRTUAL_ENV
    set) until the block ends. envbuild.CannotRebuild names what cannot be rebuilt (nothing has run)."""
    wanted = str(recorded.get("python") or "")
    exe, found, implementation = envbuild.find_python(wanted, str(recorded.get("implementation") or ""), python)
    plan = plan_rebuild(
        recorded,
        machine=platform.machine(),
        system=platform.system(),
        python_found=found if exe else None,
        python_given=python is not None,
        project_name=_project_name(project_root),
        exists=os.path.exists,
        force=force,
        recorded_root=recorded_root,
        in_worktree=lambda relative: _package_dir(worktree, relative),
        project_dir=os.path.relpath(project_root, worktree),
    )
    problems = list(plan.problems)
    if in_process(entrypoint) and "reprotrain" not in {normalize(n) for n in [*plan.requirements, *plan.from_worktree]}:
        problems.append(
            Problem(
                "launcher",
                "reprotrain",
                f"entrypoint {entrypoint!r} runs in reprotrain's own process, and the rebuilt environment would "
                "have no reprotrain (the record lists none, or it cannot be installed)",
                'rerun without --rebuild-env, or make the entrypoint a command (entrypoint = "python train.py")',
            )
        )
    if problems or exe is None:
        raise envbuild.CannotRebuild(problems)
    digest = str(recorded.get("digest") or interpreter.rebuild_digest(recorded))
    key = cache_key(digest, f"{implementation} {plan.python}".strip(), plan.skipped)
    built = envbuild.build(key, exe, plan, recorded, force)
    with envbuild.using(built.path, exclusive=bool(plan.from_worktree)):
        if plan.from_worktree:
            directories = [worktree / relative for relative in plan.from_worktree.values()]
            envbuild.install_from_worktree(built, directories, built.path.parent / f"{key}.log")
        described = interpreter.describe_other(str(built.python)) or {}
        progress(f"the rerun runs in the rebuilt environment {built.path}")
        path = os.environ.get("PATH", "")
        bin_dir = str(built.path / "bin")
        # PYTHONPATH stays: the original's code had it too
        activated = {"VIRTUAL_ENV": str(built.path), "CONDA_PREFIX": None, "PYTHONHOME": None}
        with variables_set({"PATH": os.pathsep.join([bin_dir, path]) if path else bin_dir, **activated}):
            yield Rebuilt(key, built.path, built.python, drift_here(recorded, described), built.reused)


def rerun_inside(rebuilt: Rebuilt, run_id: str, arguments: Sequence[str], cwd: Path) -> int:
    """`reprotrain rerun RUN_ID ARGUMENTS` run by the rebuilt environment's reprotrain (for an
    entrypoint that runs in reprotrain's process): its exit code."""
    progress(f"the rerun goes on in the rebuilt environment's reprotrain ({rebuilt.python})")
    argv = [str(rebuilt.python), "-m", "reprotrain", "rerun", run_id, *arguments]
    sys.stdout.flush()
    proc = subprocess.Popen(argv, cwd=cwd, env=os.environ | {REBUILT_VARIABLE: rebuilt.key})
    # a SIGTERM to this process is passed on: the inner rerun closes its run and its worktree
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum)) if main else None
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the inner rerun too (one process group)
                continue
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
