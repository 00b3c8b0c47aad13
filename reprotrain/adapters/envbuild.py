"""Building a recorded environment as a virtualenv: find the Python, create the venv and install the
recorded packages with uv (when it is on PATH or installed beside reprotrain) or pip, in a cache
keyed by the record's digest (`$REPROTRAIN_ENV_CACHE`, else `$XDG_CACHE_HOME/reprotrain/envs`). An
environment is used only once it is complete (its marker file is written last); a build is
serialized with a lock, and a half-built one is removed and built again."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.core.rebuild import Problem, RebuildPlan, normalize, python_excluded, unserved, unserved_problems
from reprotrain.core.secrets import Masker, secret_env_values, url_secrets
from reprotrain.errors import ReprotrainError
from reprotrain.fileio import user_cache
from reprotrain.progress import progress

__all__ = [
    "Built",
    "CannotRebuild",
    "prepared",
    "cache_root",
    "find_python",
    "install_from_worktree",
    "python_version",
]

_MARKER = ".reprotrain-env.json"
_ASK = "import platform; print(platform.python_version(), platform.python_implementation())"


class CannotRebuild(ReprotrainError):
    """What cannot be rebuilt, one problem a line, each with its fix."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"{p.message} (fix: {p.fix})" for p in problems]
        super().__init__(
            f"the recorded environment cannot be rebuilt here ({len(problems)} problem(s)):\n  " + "\n  ".join(lines)
        )


@dataclass(frozen=True)
class Built:
    path: Path  # the venv
    python: Path  # its interpreter
    reused: bool
    skipped: list[str]  # recorded packages it lacks (--force): drift
    installer: str


def cache_root() -> Path:
    return user_cache("envs", "REPROTRAIN_ENV_CACHE")


def python_version(executable: str) -> tuple[str, str] | None:
    """(version, implementation) of the Python at ``executable``, or None if it does not run."""
    try:
        proc = subprocess.run(
            [executable, "-I", "-c", _ASK], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    words = proc.stdout.split()
    return (words[0], words[1]) if proc.returncode == 0 and len(words) == 2 else None


def _uv() -> list[str] | None:
    found = shutil.which("uv")
    if found:
        return [found]
    beside = Path(sys.executable).with_name("uv")  # `pip install uv` beside reprotrain
    return [str(beside)] if beside.is_file() and os.access(beside, os.X_OK) else None


def find_python(version: str, implementation: str, given: str | None) -> tuple[str | None, str | None, str]:
    """(executable, its version, its implementation) of the Python to rebuild with: ``given`` (a path
    or a version, from --python), else one whose version is exactly ``version``. (None, a near
    version, "") when none is."""
    candidates: list[str] = []
    wanted = given or version
    if given and (os.sep in given or os.path.exists(given)):
        candidates.append(given)
    else:
        major_minor = ".".join(wanted.split(".")[:2])
        candidates += [sys.executable, getattr(sys, "_base_executable", sys.executable)]
        uv = _uv()
        if uv:
            try:
                proc = subprocess.run(
                    [*uv, "python", "find", "--no-project", wanted],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                    env=os.environ | {"UV_PYTHON_DOWNLOADS": "never"},
                )
                if proc.returncode == 0 and proc.stdout.strip():
                    candidates.append(proc.stdout.strip())
            except (OSError, subprocess.SubprocessError):
                pass
        for name in (f"python{major_minor}", f"python{major_minor.split('.')[0]}", "python"):
            found = shutil.which(name)
            if found:
                candidates.append(found)
    near: str | None = None
    for exe in dict.fromkeys(candidates):
        asked = python_version(exe)
        if asked is None:
            continue
        found_version, found_impl = asked
        if given and (os.sep in given or os.path.exists(given)):
            return exe, found_version, found_impl
        if found_impl == (implementation or found_impl) and (
            found_version == wanted or (given and found_version.startswith(wanted + "."))
        ):
            return exe, found_version, found_impl
        if near is None and found_version.split(".")[:2] == version.split(".")[:2]:
            near = found_version
    return None, near, ""


# the user's pip settings that would install somewhere else than the venv being built
_ELSEWHERE = ("PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_USER", "PIP_REQUIRE_VIRTUALENV", "PYTHONPATH", "PYTHONHOME")


def _run(argv: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _ELSEWHERE}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    # an index's password or token (in a variable, or echoed by the installer in a URL) is never kept
    mask = Masker(secret_env_values(os.environ) | url_secrets([proc.stdout, proc.stderr, *argv]))
    proc.stdout, proc.stderr = mask.text(proc.stdout), mask.text(proc.stderr)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {mask.text(' '.join(argv))}\n{proc.stdout}{proc.stderr}\n")
    return proc


def _index_options(recorded: dict[str, Any]) -> list[str]:
    """The recorded find-links, and the recorded indexes the user's configuration lacks, as extra
    indexes only: the user's own configuration (with its credentials, which were never recorded)
    stays in force, and no recorded index takes PyPI's or the configured index's place."""
    from reprotrain.adapters.interpreter import configured_indexes

    now = configured_indexes()
    options = [f"--extra-index-url={url}" for url in recorded.get("indexes") or [] if url not in now and "=" not in url]
    return options + [f"--find-links={link}" for link in recorded.get("find_links") or []]


def _has_pip(python: Path) -> bool:
    return any(python.parent.parent.glob("lib/python*/site-packages/pip/__init__.py"))


def _own_pip() -> bool:
    """Whether reprotrain's interpreter has a pip that can install into another Python (pip's
    --python, since 22.3)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("pip")
    except PackageNotFoundError:
        return False
    numbers = [int(part) if part.isdigit() else 0 for part in found.split(".")[:2]]
    return tuple(numbers) >= (22, 3)


def _installer(venv: Path, tool: str) -> tuple[str, list[str]]:
    """The install command for ``venv`` with ``tool`` (the one that built it): uv; the venv's own
    pip; else reprotrain's pip run for the venv's Python (a venv made without pip stays without)."""
    python = venv / "bin" / "python"
    if tool == "uv":
        uv = _uv()
        if uv is None:
            if not _has_pip(python):
                raise ReprotrainError(
                    f"the rebuilt environment {venv} was built with uv, which is not here any more, and has no pip",
                    hint=f"put uv on PATH, or remove {venv} to rebuild it with pip",
                )
            tool = "pip"
        else:
            return "uv", [*uv, "pip", "install", "--quiet", "--python", str(python)]
    if _has_pip(python):
        return "pip", [str(python), "-m", "pip", "install", "--quiet"]
    return "pip", [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    """The environment's lock file, held exclusive (to build it, or to install into it) until the
    holder converts it to shared (to run in it) or the block ends. Waiting is said, never silent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"reprotrain: waiting for the rebuilt environment {path.name[:12]}: another reprotrain holds it "
                "(building it, or running in it with the commit's packages installed)",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _complete(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((path / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and (path / "bin" / "python").exists() else None


@contextlib.contextmanager
def prepared(
    key: str, python: str, plan: RebuildPlan, recorded: dict[str, Any], force: bool, exclusive: bool
) -> Iterator[Built]:
    """The venv for ``plan`` under the cache, for the block: reused when complete, else built (with
    ``force``, a package no index serves is left out; without it, every such package is named).
    The lock is exclusive while it is built; for the block it stays so when ``exclusive`` (the
    caller installs into it), else it becomes shared (other reruns may run in it too)."""
    path = cache_root() / key
    with _locked(path) as lock:
        built = _reused(path, plan) or _built(path, key, python, plan, recorded, force)
        if not exclusive:
            fcntl.flock(lock, fcntl.LOCK_SH)
        yield built


def _reused(path: Path, plan: RebuildPlan) -> Built | None:
    marker = _complete(path)
    if marker is None or set(marker.get("skipped") or []) - set(plan.skipped):
        return None  # none, half-built, or built with --force without what an index did not serve then
    progress(f"reusing the rebuilt environment {path}")
    skipped = list(marker.get("skipped") or [])
    return Built(path, path / "bin" / "python", True, skipped, str(marker.get("installer", "")))


def _built(path: Path, key: str, python: str, plan: RebuildPlan, recorded: dict[str, Any], force: bool) -> Built:
    shutil.rmtree(path, ignore_errors=True)  # half-built (stopped, or failed): built again
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.parent / f"{key}.log"
    log.write_text("", encoding="utf-8")
    started = time.monotonic()
    try:
        return _build(path, log, python, plan, recorded, force, started)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _build(
    path: Path, log: Path, python: str, plan: RebuildPlan, recorded: dict[str, Any], force: bool, started: float
) -> Built:
    uv = _uv()
    name = "uv" if uv else "pip"
    progress(f"building the recorded environment in {path} ({len(plan.requirements)} packages, {name})")
    if uv:
        create = [*uv, "venv", "--quiet", "--python", python, str(path)]
    else:  # no pip or setuptools but the recorded ones (unless no other pip can install into the venv)
        create = [python, "-m", "venv", *(["--without-pip"] if _own_pip() else []), str(path)]
    proc = _run(create, log)
    if proc.returncode != 0:
        raise ReprotrainError(f"creating a virtualenv with {python} failed: {_last_line(proc)}", hint=f"see {log}")
    name, install = _installer(path, name)
    requirements = dict(plan.requirements)
    missing: list[str] = []
    excluded: list[str] = []  # served, but not for this Python (Requires-Python)
    for _ in range(len(requirements) + 1):
        listing = path / ".reprotrain-requirements.txt"
        listing.write_text("\n".join(requirements.values()) + "\n", encoding="utf-8")
        proc = _run([*install, "--no-deps", *_index_options(recorded), "-r", str(listing)], log)
        if proc.returncode == 0:
            break
        names = unserved(proc.stdout + proc.stderr)
        known = {normalize(n): n for n in requirements}
        dropped = [known[normalize(n)] for n in names if normalize(n) in known]
        other_python = plan.python != str(recorded.get("python") or "")
        by_python = python_excluded(proc.stdout + proc.stderr, other_python)
        excluded += [known[normalize(n)] for n in by_python if normalize(n) in known]
        if not dropped:
            raise ReprotrainError(
                f"installing the recorded packages with {name} failed: {_last_line(proc)}",
                hint=f"the whole output is in {log}; `reprotrain env RUN_ID` prints the requirements to try by hand",
            )
        missing += dropped
        for n in dropped:
            del requirements[n]
        if not requirements:
            break
    if missing and not force:
        raise CannotRebuild(unserved_problems(missing, plan.python, excluded))
    skipped = [*plan.skipped, *missing]
    marker = {"installer": name, "python": python, "skipped": skipped, "seconds": round(time.monotonic() - started, 2)}
    (path / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return Built(path, path / "bin" / "python", False, skipped, name)


def install_from_worktree(built: Built, directories: list[Path], recorded: dict[str, Any], log: Path) -> None:
    """The packages the commit holds (the project's own, a monorepo's others) from the rerun's
    worktree (not editable: the worktree goes away), in place of whichever the environment had.
    The caller holds the exclusive lock."""
    tool, install = _installer(built.path, built.installer or "pip")
    progress(f"installing {len(directories)} package(s) from the rerun's worktree: {', '.join(map(str, directories))}")
    again = "--reinstall" if tool == "uv" else "--force-reinstall"
    # the recorded indexes and find-links: a build backend may have to come from them
    proc = _run([*install, "--no-deps", again, *_index_options(recorded), *map(str, directories)], log)
    if proc.returncode != 0:
        raise ReprotrainError(
            f"installing the project's package(s) from the rerun's worktree failed: {_last_line(proc)}",
            hint=f"see {log}",
        )


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"
