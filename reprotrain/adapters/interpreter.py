"""The Python environment a run's code ran in: this interpreter's, or another one's, asked by
running this file with it (standard library only, so it runs in any Python 3)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from typing import Any

__all__ = ["describe", "describe_other", "same_environment"]


def describe() -> dict[str, Any]:
    """Python version and implementation, platform, executable and every installed distribution."""
    from importlib import metadata

    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return {
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


if __name__ == "__main__":
    sys.stdout.write(json.dumps(describe()))
