"""Helpers for the fault, bad-input and secret end-to-end tests (test_faults, test_bad_input,
test_secrets).

The project is conftest's template project plus ``ftrain.py``, a stand-in training script whose
misbehaviour is chosen by test-only environment variables (so the recorded config never changes):

    FT_MODE        ok | crash_start | crash_mid | crash_end | sleep | kill_server | foreign | fill_disk
    FT_MARKER      file written as the very first thing the code does ("the code started")
    FT_PIDFILE     file the code writes its pid to, right before it sleeps
    FT_SLEEP       seconds to sleep in mode sleep (default 60)
    FT_SERVER_PID  file holding the pid of an `mlflow server` that mode kill_server kills
    FT_LEAK_VAR    name of an environment variable whose value the code writes to leak.txt

It imports mlflow only in the modes that need it, to keep each run short.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from helpers import (  # noqa: F401  (start_cli, stop, wait_for_file: re-exported for the fault tests)
    MLFLOW_SERVER,
    REPROTRAIN,
    Result,
    all_runs,
    client_for,
    configure,
    embedded_uri,
    start_cli,
    stop,
    wait_for,
    wait_for_file,
)

STDERR_LINES = 1500  # about 160 KB of stderr: more than the 64 KB tail reprotrain keeps
FIRST_STDERR = "FT-STDERR-FIRST-LINE"
LAST_STDERR = "FT-STDERR-LAST-LINE"
FIRST_STDOUT = "FT-STDOUT-FIRST-LINE"

FTRAIN_PY = f'''\
"""Training that fails in the ways a test asks for (FT_MODE)."""
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

mode = os.environ.get("FT_MODE", "ok")
if os.environ.get("FT_MARKER"):
    Path(os.environ["FT_MARKER"]).write_text("started")
out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
print("{FIRST_STDOUT}", flush=True)
print("{FIRST_STDERR}", file=sys.stderr, flush=True)


def noise():
    for i in range({STDERR_LINES}):
        print(f"stderr progress line {{i:05d}}" + "." * 90, file=sys.stderr)
    sys.stderr.flush()


if mode == "crash_start":
    print("FT-CRASH-AT-START: cannot open the dataset", file=sys.stderr, flush=True)
    sys.exit(3)

(out / "partial.txt").write_text("half an epoch\\n")
if mode == "crash_mid":
    noise()
    try:
        raise RuntimeError("FT-CRASH-MID-WAY: loss is nan")
    except RuntimeError:
        traceback.print_exc()
        print("{LAST_STDERR}", file=sys.stderr, flush=True)
        sys.exit(42)

if mode == "crash_end":
    noise()
    (out / "metrics.json").write_text(json.dumps({{"acc": 0.5, "loss": 1.25}}))
    print("FT-CRASH-AT-END: cannot save the checkpoint", file=sys.stderr)
    print("{LAST_STDERR}", file=sys.stderr, flush=True)
    sys.exit(13)

if mode == "sleep":
    print("FT-SLEEPING", flush=True)
    print("FT-SLEEPING-ERR", file=sys.stderr, flush=True)
    Path(os.environ["FT_PIDFILE"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("FT_SLEEP") or 60))
    print("FT-WOKE-UP", flush=True)

if mode == "kill_server":
    import socket

    import mlflow

    mlflow.log_metric("before_outage", 1.0)  # lands in reprotrain's run while the server is up
    pgid = int(Path(os.environ["FT_SERVER_PID"]).read_text())
    os.killpg(pgid, signal.SIGKILL)  # the server and its workers: the store is gone
    port = int(os.environ["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1].strip("/"))
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    print("FT-KILLED-THE-SERVER", flush=True)

if mode == "fill_disk":  # the training writes until the disk is full, and exits 0 all the same
    try:
        with open(out / "fill.bin", "wb", buffering=0) as fh:
            while True:
                fh.write(b"0" * (1 << 20))
    except OSError:
        print("FT-DISK-FULL", flush=True)
    sys.exit(0)

if mode == "foreign":
    import mlflow

    mlflow.log_metric("own_metric", 1.0)  # into reprotrain's run (MLFLOW_RUN_ID)
    mlflow.end_run()
    with mlflow.start_run(run_name="mine"):  # a run of its own, as much existing code does
        mlflow.log_metric("mine_metric", 2.0)

(out / "metrics.json").write_text(json.dumps({{"acc": 0.9, "loss": 0.25}}))
(out / "model.txt").write_text("weights\\n")
if os.environ.get("FT_LEAK_VAR"):  # an output file that holds a secret of the environment
    (out / "leak.txt").write_text(os.environ[os.environ["FT_LEAK_VAR"]])
print("FT-DONE", flush=True)
'''


def setup_fault_project(root: Path, **settings: Any) -> str:
    """Add ftrain.py, point the settings at it, commit; returns HEAD."""
    (root / "ftrain.py").write_text(FTRAIN_PY)
    settings.setdefault("entrypoint", "python ftrain.py")
    return configure(root, **settings)


# --------------------------------------------------------------------------- the store


def only_run(root: Path, uri: str | None = None):
    runs = all_runs(uri or embedded_uri(root))
    assert len(runs) == 1, f"expected one run, found {[(r.info.run_id, r.info.status) for r in runs]}"
    return client_for(uri or embedded_uri(root)).get_run(runs[0].info.run_id)


def statuses(uri: str) -> dict[str, str]:
    return {r.info.run_id: r.info.status for r in all_runs(uri)}


# --------------------------------------------------------------------------- errors


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("reprotrain: error:")]


def assert_one_line_error(res: Result, *needles: str) -> str:
    """stderr holds exactly one `reprotrain: error:` line, it is the last thing printed, it names
    every needle, and no traceback was printed. Returns the line."""
    lines = error_lines(res.err)
    assert len(lines) == 1, f"expected one `reprotrain: error:` line\n{res.describe()}"
    assert "Traceback (most recent call last)" not in res.err, res.describe()
    printed = [line for line in res.err.splitlines() if line.strip()]
    assert printed[-1] == lines[0], f"the error goes on over several lines:\n{res.describe()}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not named in the error line\n{res.describe()}"
    return lines[0]


# --------------------------------------------------------------------------- processes


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1, SQLite backend and a local artifact root."""

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.db = base / "s.db"
        self.artifacts = base / "art"
        self.pidfile = base / "server.pid"
        self.log = base / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [
                    str(MLFLOW_SERVER),
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{self.db}",
                    "--default-artifact-root",
                    str(self.artifacts),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlflow server exited {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            if self.healthy():
                return
            time.sleep(0.5)
        raise AssertionError(f"mlflow server did not answer /health in {timeout} s:\n{self.log.read_text()[-4000:]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server and every process it started (uvicorn workers)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=30)
        self.proc = None
