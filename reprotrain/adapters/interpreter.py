"""The Python environment a run's code ran in: this interpreter's, or another one's, asked by
running this file with it (standard library only, so it runs in any Python 3)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from typing import Any

__all__ = ["describe", "describe_other", "first_on_path", "same_environment"]


def describe() -> dict[str, Any]:
    """The host, Python version and implementation, platform, executable and every installed
    distribution."""
    from importlib import metadata

    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": dict(sorted(packages.items())),
    }


def same_environment(prefix: str) -> bool:
    """Whether a Python whose `sys.prefix` is ``prefix`` runs in this environment (a venv's
    `python` is a link to the system's: the file names the interpreter, the prefix the packages)."""
    return os.path.realpath(prefix) == os.path.realpath(sys.prefix)


def describe_other(executable: str, timeout: float = 60) -> dict[str, Any] | None:
    """What ``describe`` says in the Python at ``executable`` (isolated mode: no PYTHONPATH, no
    user site), or None if it cannot be asked."""
    try:
        proc = subprocess.run(
            [executable, "-I", os.path.abspath(__file__)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        found = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return found if isinstance(found, dict) else None


def first_on_path() -> dict[str, str]:
    """PATH with the directory of the Python reprotrain runs under first (and VIRTUAL_ENV set when
    it is a virtualenv), as `uv run` and `poetry run` do: `python train.py` runs in the
    environment reprotrain was started from, activated or not. Not when the user activated
    another environment (reprotrain installed with pipx or `uv tool`, driving a project's venv or
    a conda env): that one stays first. Either way the record describes the Python that ran."""
    active = os.environ.get("VIRTUAL_ENV") or os.environ.get("CONDA_PREFIX")
    if active and os.path.realpath(active) != os.path.realpath(sys.prefix):
        return {}
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    env = {}
    if bindir and path.split(os.pathsep, 1)[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, path]) if path else bindir
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


if __name__ == "__main__":
    sys.stdout.write(json.dumps(describe()))
