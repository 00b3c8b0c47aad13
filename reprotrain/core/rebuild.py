"""Rebuilding a recorded Python environment (pure): what to install, what cannot be rebuilt here and
the fix for each, the key of the rebuilt environment's cache, and the packages an installer's error
says its indexes do not serve. `reprotrain rerun --rebuild-env` runs the plan (adapters/envbuild)."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from reprotrain.core.environment import requirement_lines

__all__ = [
    "Problem",
    "RebuildPlan",
    "cache_key",
    "normalize",
    "plan_rebuild",
    "python_excluded",
    "unserved",
    "unserved_problems",
]


@dataclass(frozen=True)
class Problem:
    kind: str  # python, platform, local-path, unserved
    name: str  # the package (or "python", the platform)
    message: str
    fix: str


@dataclass(frozen=True)
class RebuildPlan:
    python: str  # the version to build with (the recorded one, or the one --python accepted)
    # name -> requirements-file line: every recorded package but the project's and the skipped ones
    requirements: dict[str, str]
    # name -> the directory (relative to the git root) it is installed from in the rerun's worktree:
    # the project's own package and every other local package the commit holds (a monorepo's libs/x)
    from_worktree: dict[str, str]
    problems: list[Problem] = field(default_factory=list)  # what cannot be rebuilt here
    skipped: list[str] = field(default_factory=list)  # left out (with --force): recorded as drift


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _local_path(url: str) -> str | None:
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else None


def plan_rebuild(
    recorded: Mapping[str, Any],
    *,
    machine: str,
    system: str,
    python_found: str | None,
    python_given: bool,
    project_name: str | None,
    exists: Callable[[str], bool],
    force: bool,
    recorded_root: str = "",
    in_worktree: Callable[[str], bool] = lambda relative: False,
    project_dir: str = ".",
    canonical: Callable[[str], str] = lambda path: path,
) -> RebuildPlan:
    """What a rebuild of ``recorded`` (a record's `environment`) installs on this machine
    (``machine``, ``system`` as `platform` names them) with the Python found for it (its version,
    or None when none is here). Each thing that cannot be rebuilt is a problem with its fix; with
    ``force`` a package that cannot be installed is skipped instead.

    A package installed from a directory inside the original's git root (``recorded_root``) is
    installed from the same directory of the rerun's worktree when the commit has it
    (``in_worktree``), so the code is the commit's, not the live checkout's; for a record without
    its root, the package named ``project_name`` is, from ``project_dir``. Paths are compared as
    ``canonical`` makes them (the caller resolves symlinks)."""
    problems: list[Problem] = []
    wanted = str(recorded.get("python") or "")
    if not recorded.get("packages"):
        problems.append(
            Problem(
                "record",
                "packages",
                "the record lists no installed packages: there is nothing to rebuild the environment from",
                "rerun without --rebuild-env",
            )
        )
    if python_found is None and python_given:
        problems.append(
            Problem(
                "python",
                "python",
                "the Python given with --python is not on this machine",
                "give an installed version (3.12) or an interpreter's path (--python /usr/bin/python3.12)",
            )
        )
    elif python_found is None:
        problems.append(
            Problem(
                "python",
                "python",
                f"Python {wanted} (the recorded interpreter) is not on this machine",
                f"install it (uv python install {wanted}, or pyenv install {wanted}), or accept another with "
                "--python VERSION|PATH (recorded as drift)",
            )
        )
    elif python_found != wanted and not python_given:
        problems.append(
            Problem(
                "python",
                "python",
                f"Python {wanted} (the recorded interpreter) is not on this machine; {python_found} is",
                f"--python {python_found} to rebuild with it (recorded as drift), or install {wanted}",
            )
        )
    recorded_machine = str(recorded.get("machine") or "")
    recorded_system = str(recorded.get("platform") or "").split("-", 1)[0]
    recorded_system = {"macOS": "Darwin"}.get(recorded_system, recorded_system)  # platform.platform()'s name
    if (recorded_machine and recorded_machine != machine) or (recorded_system and recorded_system != system):
        was = "/".join(x for x in (recorded_system, recorded_machine) if x)
        if not force:
            problems.append(
                Problem(
                    "platform",
                    was,
                    f"the run's environment was {was}, this machine is {system}/{machine}: "
                    "its binary packages may not exist or behave the same here",
                    "rerun on a matching machine, or --force to build it for this one (recorded as drift)",
                )
            )
    sources = recorded.get("sources") or {}
    project = normalize(project_name) if project_name else None
    skipped: list[str] = []
    lines: dict[str, str] = {}
    from_worktree: dict[str, str] = {}
    by_name = dict(zip(sorted(recorded.get("packages") or {}), requirement_lines(recorded), strict=True))
    for name, line in by_name.items():
        source = sources.get(name) or {}
        path = _local_path(str(source.get("url") or ""))
        directory = path is not None and not source.get("archive") and not source.get("vcs")
        relative = _inside(canonical(path), canonical(recorded_root)) if directory and path and recorded_root else None
        if relative is not None and source.get("subdirectory"):
            relative = posixpath.normpath(posixpath.join(relative, str(source["subdirectory"])))
            relative = None if relative.split("/")[0] == ".." else relative
        if relative is None and path is not None and project is not None and normalize(name) == project:
            relative = project_dir  # a record without its root: the project's package by its name
        if relative is not None and in_worktree(relative):
            from_worktree[name] = relative  # the code the commit pins
            continue
        if path is not None and not exists(path):
            if force:
                skipped.append(name)
                continue
            problems.append(
                Problem(
                    "local-path",
                    name,
                    f"{name} was installed from {path}, which is not here any more",
                    f"put it back at {path}, or --force to go on without {name} (recorded as drift)",
                )
            )
            continue
        lines[name] = line
    return RebuildPlan(
        python=python_found or wanted,
        requirements=lines,
        from_worktree=from_worktree,
        problems=problems,
        skipped=skipped,
    )


def _inside(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ("." for the root itself) when it is inside it."""
    if not root:
        return None
    try:
        relative = PurePosixPath(path).relative_to(PurePosixPath(root))
    except ValueError:
        return None
    return None if ".." in relative.parts else relative.as_posix()


def unserved_problems(names: Sequence[str], python: str = "", excluded: Sequence[str] = ()) -> list[Problem]:
    """One problem per package no index serves; those in ``excluded`` are served, but not for
    ``python`` (their Requires-Python excludes it: the --python given is the cause)."""
    problems = []
    for name in names:
        if name in excluded:
            problems.append(
                Problem(
                    "requires-python",
                    name,
                    f"{name}: the recorded version does not install on Python {python} (its Requires-Python "
                    "excludes it)",
                    f"rebuild with the recorded Python, or --force to go on without {name} (recorded as drift)",
                )
            )
            continue
        problems.append(
            Problem(
                "unserved",
                name,
                f"{name}: the package indexes do not serve the recorded version any more",
                f"point PIP_INDEX_URL / UV_INDEX_URL at an index or mirror that has it, or --force to go on "
                f"without {name} (recorded as drift)",
            )
        )
    return problems


def cache_key(digest: str, python: str, skipped: Sequence[str]) -> str:
    """The rebuilt environment's name in the cache: the record's digest, and what this rebuild
    changed about it (another Python, packages left out)."""
    key = json.dumps([digest, python, sorted(skipped)])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


_UV_UNSERVED = re.compile(
    r"Because (?:there is no version of )?([A-Za-z0-9][A-Za-z0-9._-]*)(?:[=<>!~]=?\S*)? "
    r"(?:was not found|and you require)"
)
_PIP_UNSERVED = re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)")


# uv: "... and rtold==1.0 depends on Python>=3.13, we can conclude that rtold==1.0 cannot be used."
_UV_PYTHON = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==\S+ depends on Python")
# pip: "Ignored the following versions that require a different python version: 1.0 Requires-Python >=3.13"
# (from an index), "ERROR: Package 'rtold' requires a different Python: 3.11.7 not in '>=3.99'" (a file)
_PIP_PYTHON = "require a different python version"
_PIP_PYTHON_PACKAGE = re.compile(r"Package '([A-Za-z0-9][A-Za-z0-9._-]*)' requires a different Python")


def unserved(output: str) -> list[str]:
    """The packages an installer's failure says no index serves (uv's resolver, pip's), or serves
    for another Python only."""
    found = [m.group(1) for m in _UV_UNSERVED.finditer(output)] + [m.group(1) for m in _PIP_UNSERVED.finditer(output)]
    return list(dict.fromkeys(found + python_excluded(output)))


def python_excluded(output: str, other_python: bool = True) -> list[str]:
    """The packages an installer's failure says are excluded by their Requires-Python. pip's note
    on an index's ignored versions names no package, and is printed whenever any version of one was
    skipped: it counts only when the rebuild uses another Python than the recorded one."""
    found = [m.group(1) for m in _UV_PYTHON.finditer(output)]
    found += [m.group(1) for m in _PIP_PYTHON_PACKAGE.finditer(output)]
    if other_python and _PIP_PYTHON in output:
        found += [m.group(1) for m in _PIP_UNSERVED.finditer(output)]
    return list(dict.fromkeys(found))
