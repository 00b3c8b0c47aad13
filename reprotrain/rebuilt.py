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

__all__ = [
    "REBUILT_VARIABLE",
    "WORKTREE_VARIABLE",
    "Rebuilt",
    "drift_here",
    "in_process",
    "rebuilt_environment",
    "rerun_inside",
]

Drift = list[tuple[str, str | None, str | None]]
# set by `rerun --rebuild-env` for the rerun it runs again inside the rebuilt environment: its key
REBUILT_VARIABLE = "REPROTRAIN_REBUILT_ENV"
WORKTREE_VARIABLE = "REPROTRAIN_REBUILT_WORKTREE"  # and the worktree it runs in (the outer rerun's)


@dataclass(frozen=True)
class Rebuilt:
    key: str  # the environment's name in the cache (reprotrain.env.rebuilt)
    path: Path
    python: Path
    drift: Drift  # the rebuilt environment against the record: empty when it is the same
    reused: bool
    launcher: bool = False  # it holds a reprotrain that can go on with the rerun (the recorded version)


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
        canonical=os.path.realpath,
    )
    if plan.problems or exe is None:
        raise envbuild.CannotRebuild(plan.problems)
    digest = str(recorded.get("digest") or interpreter.rebuild_digest(recorded))
    key = cache_key(digest, f"{implementation} {plan.python}".strip(), plan.skipped)
    with envbuild.prepared(key, exe, plan, recorded, force, exclusive=bool(plan.from_worktree)) as built:
        if plan.from_worktree:
            directories = [worktree / relative for relative in plan.from_worktree.values()]
            envbuild.install_from_worktree(built, directories, recorded, built.path.parent / f"{key}.log")
        if in_process(entrypoint):
            _check_launcher(built.python, entrypoint)
            launcher = True
        else:  # a command's environment with reprotrain in it: the recorded reprotrain reruns it too
            recorded_names = {normalize(n) for n in recorded.get("packages") or {}}
            launcher = "reprotrain" in recorded_names and not _launcher_problem(built.python)
        described = interpreter.describe_other(str(built.python)) or {}
        progress(f"the rerun runs in the rebuilt environment {built.path}")
        path = os.environ.get("PATH", "")
        bin_dir = str(built.path / "bin")
        # PYTHONPATH stays: the original's code had it too
        activated = {"VIRTUAL_ENV": str(built.path), "CONDA_PREFIX": None, "PYTHONHOME": None}
        with variables_set({"PATH": os.pathsep.join([bin_dir, path]) if path else bin_dir, **activated}):
            yield Rebuilt(key, built.path, built.python, drift_here(recorded, described), built.reused, launcher)


_PROBE = "import reprotrain, reprotrain.rebuilt as r; print(reprotrain.__version__, r.REBUILT_VARIABLE)"


def _launcher_problem(python: Path) -> str:
    """Why the reprotrain of the environment at ``python`` cannot go on with a rerun ("" when it can):
    it is not there, or it is older than reruns in a rebuilt environment."""
    try:
        proc = subprocess.run(
            [str(python), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
        words, error = (proc.stdout.split(), proc.stderr) if proc.returncode == 0 else ([], proc.stderr)
    except (OSError, subprocess.SubprocessError) as exc:
        words, error = [], str(exc)
    if words[1:] == [REBUILT_VARIABLE]:
        return ""
    if "No module named 'reprotrain'" in error:
        return "has no reprotrain (the record lists none, or it was left out)"
    # an older reprotrain has no reprotrain.rebuilt, or another REBUILT_VARIABLE
    return f"has a reprotrain{' ' + words[0] if words else ''} that cannot go on with a rerun there (too old)"


def _check_launcher(python: Path, entrypoint: str) -> None:
    """An in-process entrypoint's rerun goes on in the rebuilt environment's reprotrain: it must be
    there, and know how to."""
    has = _launcher_problem(python)
    if not has:
        return
    raise envbuild.CannotRebuild(
        [
            Problem(
                "launcher",
                "reprotrain",
                f"entrypoint {entrypoint!r} runs in reprotrain's own process, and the rebuilt environment {has}",
                'rerun without --rebuild-env, or make the entrypoint a command (entrypoint = "python train.py")',
            )
        ]
    )


def rerun_inside(rebuilt: Rebuilt, run_id: str, arguments: Sequence[str], cwd: Path, worktree: Path) -> int:
    """`reprotrain rerun RUN_ID ARGUMENTS` run by the rebuilt environment's reprotrain (for an
    entrypoint that runs in reprotrain's process), in ``worktree`` (where the commit's packages
    were installed from; this process removes it): its exit code. Its console script, so that
    nothing in ``cwd`` shadows what it imports; a session of its own, so that each signal reaches
    it once, passed on from here."""
    progress(f"the rerun goes on in the rebuilt environment's reprotrain ({rebuilt.python})")
    script = rebuilt.path / "bin" / "reprotrain"
    start = [str(script)] if script.is_file() else [str(rebuilt.python), "-m", "reprotrain"]
    env = os.environ | {REBUILT_VARIABLE: rebuilt.key, WORKTREE_VARIABLE: str(worktree)}
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen([*start, "rerun", run_id, *arguments], cwd=cwd, env=env, start_new_session=True)
    main = threading.current_thread() is threading.main_thread()
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda signum, frame: proc.send_signal(signum)) for s in forwarded} if main else {}
    try:
        code = proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
