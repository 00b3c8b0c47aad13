"""The pipeline runner started ahead of its job (adapters/process.Prestarted running
`python -m reprotrain.adapters.dvc_runner --wait`), with real processes. A waiting runner also
ends when the end of its request pipe closes; these show it ends when nothing closes it: unused,
`close()` kills it while a child forked from reprotrain holds the pipe open, and its reprotrain
killed by SIGKILL, it dies with it (the kernel's parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import pid_alive, wait_for

from reprotrain.adapters.process import Prestarted

RUNNER = [sys.executable, "-m", "reprotrain.adapters.dvc_runner", "--wait"]


def _is_runner(pid: int) -> bool:
    try:
        return b"dvc_runner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_an_unused_runner_is_killed_by_close_while_a_forked_child_holds_its_pipe():
    runner = Prestarted([*RUNNER, str(os.getpid()), "/"], Path("/"))
    assert runner.proc is not None
    pid = runner.proc.pid
    holder = os.fork()
    if holder == 0:  # no exec: it keeps this process's descriptors, the pipe's write end too
        time.sleep(120)
        os._exit(0)
    try:
        assert wait_for(lambda: _is_runner(pid), 10)
        time.sleep(3)  # its imports done, it waits for a request that will not come
        assert pid_alive(pid), "a runner waits while its pipe is open"
        started = time.monotonic()
        runner.close()
        # without the kill, close() would wait for the runner until the holder let the pipe go
        assert time.monotonic() - started < 20
        assert not pid_alive(pid)
    finally:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


LAUNCHER = """\
import os, sys, time
from pathlib import Path
from reprotrain.adapters.process import Prestarted
argv = [sys.executable, "-m", "reprotrain.adapters.dvc_runner", "--wait", str(os.getpid()), "/"]
runner = Prestarted(argv, Path("/"))
if os.fork() == 0:  # keeps the pipe's write end open after this process dies
    time.sleep(120)
    os._exit(0)
print(runner.proc.pid, flush=True)
time.sleep(120)
"""


def test_a_waiting_runner_dies_with_its_launcher_killed_by_sigkill():
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    pid = 0
    try:
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        assert wait_for(lambda: _is_runner(pid), 10)
        time.sleep(3)
        assert pid_alive(pid)
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: not pid_alive(pid), 5), "the runner outlived its launcher"
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)  # the forked child that held the pipe
        launcher.wait()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
