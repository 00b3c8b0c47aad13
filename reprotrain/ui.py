"""`reprotrain ui`: MLflow's UI on the project's tracking store, with one worker, stopped with reprotrain.

The UI needs the full `mlflow` distribution (the server's app and flask); reprotrain installs only
mlflow-skinny, which provides the same `mlflow` module and a `mlflow server --help` that works all
the same. So the check asks the interpreter that would serve whether the `mlflow` distribution is
installed and flask imports: reprotrain's own, else the one behind an `mlflow` command on PATH (a
`pipx install mlflow`, another venv).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from types import FrameType

from reprotrain.core.record import strip_credentials
from reprotrain.errors import ReprotrainError

__all__ = ["serve", "ui_command"]

FULL_MLFLOW = "pip install 'reprotrain[server]'  (or: pip install mlflow)"
_STOP_GRACE = 10.0  # seconds the server has to stop on SIGTERM before it is killed


_PROBE = "import importlib.metadata as m, importlib.util as u; m.version('mlflow'); assert u.find_spec('flask')"


def _serves(python: str) -> bool:
    """Whether ``python`` has the full mlflow distribution (not only mlflow-skinny) and flask."""
    try:
        probe = subprocess.run([python, "-c", _PROBE], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


_SH_EXEC = "'''exec'"  # pip's console script for a long or spaced interpreter path: `#!/bin/sh`, then this


def _script_python(script: str) -> str | None:
    """The interpreter a console script runs: its `#!` line's, through `/usr/bin/env python3`, or
    the one named on the second line of the `#!/bin/sh` form that pip writes."""
    import shlex

    try:
        with open(script, "rb") as handle:
            head = [handle.readline(4096).decode("utf-8", "replace").strip() for _ in range(2)]
    except OSError:
        return None
    if not head[0].startswith("#!"):
        return None
    words = head[0][2:].split()
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[-1])
    if words and os.path.basename(words[0]) == "sh" and head[1].startswith(_SH_EXEC):
        try:
            named = shlex.split(head[1][len(_SH_EXEC) :])
        except ValueError:
            return None
        return named[0] if named and os.path.isabs(named[0]) else None
    return words[0] if words and os.path.isabs(words[0]) else None


def ui_command() -> list[str]:
    """The command that serves MLflow's UI here, or an error naming what to install."""
    if _full_mlflow_here():
        return [sys.executable, "-m", "mlflow", "ui"]
    found = shutil.which("mlflow")
    python = _script_python(found) if found else None
    if found and python and _serves(python):  # a venv's python is a symlink: compared by what it imports
        return [found, "ui"]
    raise ReprotrainError(
        "the MLflow UI needs the full mlflow package, and only mlflow-skinny is installed here", hint=FULL_MLFLOW
    )


def _full_mlflow_here() -> bool:
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    try:
        version("mlflow")  # the full distribution; mlflow-skinny is another name for the same module
    except PackageNotFoundError:
        return False
    return find_spec("flask") is not None


def _refuse_absent_store(uri: str) -> None:
    """The embedded store is made by the first run, with the state directory that git ignores; MLflow's
    server would create the database alone, where the next run's gate finds an untracked file."""
    from reprotrain.adapters.tracking import sqlite_file

    db = sqlite_file(uri)
    if db is not None and not db.exists():
        raise ReprotrainError(f"no tracking store at {db} yet: no run was recorded here", hint="reprotrain run ...")


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signum)


def serve(uri: str, host: str, port: int, page: str = "") -> int:
    """Serve the UI until it exits or reprotrain is stopped (Ctrl-C, SIGTERM, SIGHUP): then the server
    and every process it started are stopped too. Returns the exit code."""
    _refuse_absent_store(uri)
    command = [*ui_command(), "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]
    print(f"MLflow UI for {strip_credentials(uri)} at http://{host}:{port}/{page} (Ctrl-C to stop)", flush=True)
    handled = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.getsignal(s) for s in handled}
    # MLflow 3.17's server also starts a job runner with 8 huey consumers (GenAI jobs): browsing runs
    # needs none of them, and on 2 cores they slow the UI's first answer to tens of seconds
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(command, env=env, start_new_session=True)  # its own group: stopped as one
    try:
        for signum in handled:
            signal.signal(signum, _raise_stop)
        return server.wait()
    except _Stop as stop:
        return 128 + stop.signum
    except KeyboardInterrupt:
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop_group(server)


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (mlflow ui runs uvicorn as a child), SIGKILL if it lingers."""
    for signum, wait in ((signal.SIGTERM, _STOP_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; its children may not be
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
