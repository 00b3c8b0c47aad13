"""Fault injection for the end-to-end fault tests: act at a named phase of a real `reprotrain`
process, fill a small filesystem, stop a process.

**At a phase.** ``at_phase(tmp, "gate", "pause")`` returns environment variables for
:func:`helpers.run_cli` / :func:`helpers.start_cli`. They put a ``sitecustomize`` first on the
console script's ``PYTHONPATH``; in the `reprotrain` process only (not in the training code, the
store helper or git), it wraps the function that starts the phase, and on its ``after``-th call:

    kill    SIGKILL the process (as the OOM killer or `kill -9` would)
    term    SIGTERM it (as a scheduler's preemption would)
    int     SIGINT it (Ctrl-C)
    pause   write its pid to the marker file and sleep (the test then signals it)
    enospc  raise OSError(ENOSPC) (a full disk) from the call

A new phase is one line in :data:`PHASES` (``module:qualified.name``; a class attribute works,
so `from x import Class` users are reached too).

**A small filesystem.** :func:`small_fs` mounts a tmpfs of a given size for the duration of a
``with`` block (a project copied into it fills up as a real disk would); :func:`fill` takes all
but a given number of its bytes.

**A stopped process.** :func:`stopped` SIGSTOPs a pid for the duration of a ``with`` block.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# phase -> the function whose call starts it
PHASES = {
    "gate": "reprotrain.adapters.dvc:snapshot",  # in the gate's fork, while the parent imports
    "store-open": "reprotrain.adapters.tracking:Tracker.__init__",
    "store-create": "sqlalchemy.engine.base:Connection.execute",  # with after=N: mid-migration
    "experiment": "reprotrain.adapters.tracking:Tracker.ensure_experiment",
    "create-run": "reprotrain.adapters.tracking:Tracker.create_run",
    "training": "reprotrain.adapters.process:run_command",
    "upload": "reprotrain.adapters.tracking:Tracker.log_artifacts",
    "terminate": "reprotrain.adapters.tracking:Tracker.terminate",
    "sweep-parent": "reprotrain.sweep:finish_parent",
    "restore": "reprotrain.adapters.dvc:restore",
    "pipeline-compose": "reprotrain.pipeline:PipelineJob.compose",  # the runner started ahead waits
}

_SITE = '''\
"""Test-only fault injection (tests/fault_inject.py); runs in the reprotrain console script only."""
import os
import sys


def _install():
    import importlib
    import signal
    import time

    target, action = os.environ["RT_FAULT_TARGET"], os.environ["RT_FAULT_ACTION"]
    after = int(os.environ.get("RT_FAULT_AFTER") or 1)
    module_name, _, qualname = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = qualname.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = [0]

    def act():
        marker = os.environ.get("RT_FAULT_MARKER")
        if marker:
            with open(marker + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.replace(marker + ".tmp", marker)
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        elif action == "int":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "pause":
            time.sleep(float(os.environ.get("RT_FAULT_SLEEP") or 120))
        elif action == "enospc":
            import errno

            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == after:
            act()
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)


if os.environ.get("RT_FAULT_TARGET") and os.path.basename(sys.argv[0] if sys.argv else "") == "reprotrain":
    _install()
'''


def at_phase(
    tmp: Path,
    phase: str,
    action: str,
    *,
    after: int = 1,
    sleep: float = 120,
    marker: Path | None = None,
) -> dict[str, str]:
    """Environment variables that make the next `reprotrain` process act at ``phase``."""
    site = tmp / "fault-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITE)
    env = {
        "PYTHONPATH": str(site),
        "RT_FAULT_TARGET": PHASES.get(phase, phase),
        "RT_FAULT_ACTION": action,
        "RT_FAULT_AFTER": str(after),
        "RT_FAULT_SLEEP": str(sleep),
    }
    if marker is not None:
        env["RT_FAULT_MARKER"] = str(marker)
    return env


@contextmanager
def small_fs(path: Path, size: str = "64m") -> Iterator[Path]:
    """``path`` (a new, empty directory) is a tmpfs of ``size`` inside the block, unmounted
    afterwards whatever happened. Needs root (CI runs as root); skips the test otherwise."""
    import subprocess

    import pytest

    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the filesystem holding ``path`` up to its last ``leave`` bytes; returns the filler
    file (remove it to free the space again)."""
    filler = path / ".filler"
    with open(filler, "wb", buffering=0) as fh:
        block = b"\0" * (1 << 20)
        try:
            while True:
                fh.write(block)

        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 4096)

        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process is stopped (SIGSTOP) inside the block and continued afterwards."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
