"""The store helper: a background process per local SQLite store that keeps MLflow imported and
the store open, so a launch does not import MLflow itself.

Importing MLflow's client and its SQLAlchemy store costs about 1.5 s, most of a `reprotrain run`
of a short job. The helper does exactly what :class:`Tracker` does (it holds one), on requests
from reprotrain's own processes over a Unix socket in a directory only this user can open, with
an authentication key (``multiprocessing.connection``). It runs no user code.

- Only for `sqlite:///` stores given by an absolute path (the embedded default): no credentials
  and no server are involved. ``REPROTRAIN_STORE_HELPER=0`` turns it off.
- Started by a launch that finds the store's database already there and no helper running; that
  launch does its own store work, the next ones use the helper.
- One helper per store, Python, reprotrain and MLflow installation (reprotrain's version and the
  last change to its adapters and core) and MLflow environment: a change to any of them starts a
  new helper, and the old one goes idle.
- It exits after ``REPROTRAIN_STORE_HELPER_IDLE`` seconds without a request (600), or as soon
  as its database file is removed or replaced, or its socket is.
- Any failure to reach it, and any request it cannot serve, falls back to the in-process
  :class:`Tracker`: the helper only ever makes a launch faster.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprotrain import __version__
from reprotrain.adapters.tracking import RunView, Tracker, sqlite_file
from reprotrain.adapters.warm import private_dir
from reprotrain.core.record import DataOutput
from reprotrain.core.secrets import Masker
from reprotrain.errors import ReprotrainError

__all__ = ["AnyTracker", "HelperTracker", "connect", "reader_for", "serve", "tracker_for"]

SWITCH = "REPROTRAIN_STORE_HELPER"
_REPLY_SECONDS = 300
_HANDSHAKE_SECONDS = 2
IDLE = "REPROTRAIN_STORE_HELPER_IDLE"
# MLflow variables that do not change how a local store behaves: the run or experiment a process
# works in, the store (part of the identity anyway), and those reprotrain sets for itself
_IGNORED_VARIABLES = frozenset(
    {
        "MLFLOW_RUN_ID",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_CONTEXT",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    }
)


def _database(uri: str) -> Path | None:
    """The SQLite file the helper may serve: an absolute path, no connection options."""
    db = sqlite_file(uri)
    return db if db is not None and "?" not in uri and db.is_absolute() else None


def _enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in {"0", "off", "false", "no"}


class _Paths:
    def __init__(self, uri: str) -> None:
        base = private_dir()
        self.name = hashlib.sha256(json.dumps(_identity(uri)).encode()).hexdigest()[:20]
        self.socket = base / f"store-{self.name}.sock"
        self.key = base / f"store-{self.name}.key"
        self.lock = base / f"store-{self.name}.lock"
        self.log = base / f"store-{self.name}.log"
        self.pid = base / f"store-{self.name}.pid"


def _identity(uri: str) -> list[Any]:
    import importlib.util

    spec = importlib.util.find_spec("mlflow")
    origin = spec.origin if spec and spec.origin else ""
    installed = os.stat(origin).st_mtime_ns if origin else 0
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("MLFLOW_") and k not in _IGNORED_VARIABLES)
    return [uri, sys.executable, __version__, _own_code(), origin, installed, env]


def _own_code() -> int:
    """When the code a helper runs (the adapters and the core) last changed: an install edited in
    place keeps its version, and a helper still running the old code would take calls it no
    longer understands (`log_data_inputs` grew arguments)."""
    base = Path(__file__).resolve().parent.parent
    return max((p.stat().st_mtime_ns for d in ("adapters", "core") for p in (base / d).glob("*.py")), default=0)


def tracker_for(uri: str, start: bool = True) -> AnyTracker:
    """The store's helper if one is running (with ``start``, starting one for next time if not),
    else a Tracker."""
    return connect(uri, start) or Tracker(uri)


def reader_for(uri: str) -> AnyTracker:
    """For commands that read an existing store (`runs`, `show`, `diff`, `rerun`): its helper if one
    is running, else a Tracker that creates nothing. They start none: a launch does, and a helper
    only a single read would use costs more than it saves."""
    return connect(uri, start=False, create=False) or Tracker(uri, create=False)


def _rebuilt(reply: tuple[Any, ...]) -> ReprotrainError:
    """The error the helper raised, as its class when that takes (message, hint), else a plain
    ReprotrainError with its exit code: UsageError stays exit 2."""
    from reprotrain import errors

    message, hint = reply[1], reply[2]
    name = reply[3] if len(reply) > 3 else ""
    found = getattr(errors, name, None) if name else None
    if isinstance(found, type) and issubclass(found, ReprotrainError):
        try:
            return found(message, hint=hint)
        except TypeError:  # a class built from other things (NotPinnedError: problems)
            pass
    error = ReprotrainError(message, hint=hint)
    if len(reply) > 4 and isinstance(reply[4], int):
        error.exit_code = reply[4]
    return error


def connect(uri: str, start: bool = True, create: bool = True) -> HelperTracker | None:
    """A connection to the store's helper; None if there is none (then, with ``start``, one is
    started for the next command if the store's database exists)."""
    db = _database(uri)
    if db is None or not _enabled():
        return None
    try:
        conn = _handshake(_Paths(uri))
    except Exception:  # no helper (or a dead one): this command works without it
        if start:
            _start_helper(uri)
        return None
    return HelperTracker(uri, conn, create)


def _handshake(paths: _Paths) -> Any:
    """Connect and authenticate within ``_HANDSHAKE_SECONDS``: a helper that is stopped
    (SIGSTOP) or hung still has its socket accepting connections, and would otherwise block the
    launch for good."""
    import socket

    key = paths.key.read_bytes()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_HANDSHAKE_SECONDS)
        sock.connect(os.fspath(paths.socket))
        sock.setblocking(True)
    except BaseException:
        sock.close()
        raise
    return _authenticated(sock, key, server=False)


def _authenticated(sock: Any, key: bytes, server: bool) -> Any:
    """multiprocessing's challenge both ways on a connected socket (the server asks first), each
    read and write bounded by ``_HANDSHAKE_SECONDS``; then the bounds are lifted (requests wait
    with poll()). Returns the Connection; raises if the other side does not answer in time."""
    import socket
    import struct
    from multiprocessing.connection import Connection, answer_challenge, deliver_challenge

    def bound(seconds: int) -> None:
        limit = struct.pack("ll", seconds, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)  # reads give up, as EAGAIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)

    try:
        bound(_HANDSHAKE_SECONDS)
    except BaseException:
        sock.close()
        raise
    conn = Connection(sock.detach())
    try:
        if server:
            deliver_challenge(conn, key)
            answer_challenge(conn, key)
        else:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        bound(0)
        sock.close()
    except BaseException:
        conn.close()
        raise
    return conn


def _start_helper(uri: str) -> None:
    """Start the store's helper in the background, unless it is off, running or starting, or
    the store's database does not exist yet (its first run creates and migrates it)."""
    db = _database(uri)
    if db is None or not _enabled() or not db.is_file():
        return
    try:
        paths = _Paths(uri)
        import fcntl

        with open(paths.lock, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a helper is starting (it holds the lock for its lifetime)
            fcntl.flock(lock, fcntl.LOCK_UN)
        with open(paths.log, "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "reprotrain.adapters.store_helper", uri],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=os.fspath(db.parent),
                start_new_session=True,
                close_fds=True,
            )
    except OSError:
        pass


class HelperTracker:
    """:class:`Tracker`'s interface, served by the store's helper process."""

    def __init__(self, uri: str, conn: Any, create: bool = True) -> None:
        self.uri = uri
        self._create = create  # False for read-only commands: a fallback never creates a store
        self._conn = conn
        self._lock = threading.Lock()
        self._local: Tracker | None = None

    def _call(self, method: str, *args: Any) -> Any:
        if self._local is None:
            reply: Any
            with self._lock:
                try:
                    self._conn.send((method, args))
                    # a helper that hangs is given up on and the call made here instead; but an
                    # upload takes as long as it takes (a second upload beside it would race)
                    wait = None if method == "log_artifacts" else _REPLY_SECONDS
                    reply = self._conn.recv() if self._conn.poll(wait) else ("unavailable",)
                except (OSError, EOFError):
                    reply = ("unavailable",)
            if reply[0] == "ok":
                return reply[1]
            if reply[0] == "error":
                raise _rebuilt(reply)
            self._local = Tracker(self.uri, create=self._create)  # the helper went away: carry on without it
        return getattr(self._local, method)(*args)

    def ensure_experiment(self, name: str, artifact_location: str | None) -> str:
        return str(self._call("ensure_experiment", name, artifact_location))

    def create_run(self, experiment_id: str, tags: Mapping[str, str]) -> str:
        return str(self._call("create_run", experiment_id, dict(tags)))

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        self._call("log_params", run_id, dict(params))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        self._call("log_metrics", run_id, dict(metrics), timestamp_ms)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags", run_id, dict(tags))

    def log_data_inputs(
        self,
        run_id: str,
        outputs: Sequence[DataOutput],
        remote: str = "",
        schemas: Mapping[str, tuple[str | None, dict[str, Any]]] | None = None,
    ) -> None:
        self._call("log_data_inputs", run_id, list(outputs), remote, dict(schemas or {}))

    def log_artifacts(
        self, run_id: str, local_dir: Path, artifact_path: str | None = None, masker: Masker | None = None
    ) -> None:
        self._call("log_artifacts", run_id, Path(local_dir).resolve(), artifact_path, masker)

    def logged_models(self, experiment_id: str, run_id: str) -> list[dict[str, str]]:
        return list(self._call("logged_models", experiment_id, run_id))

    def search_all(self, filter_string: str, max_results: int = 1000, deleted: bool = False) -> list[RunView]:
        return list(self._call("search_all", filter_string, max_results, deleted))

    def experiment_names(self, experiment_ids: Sequence[str]) -> dict[str, str]:
        return dict(self._call("experiment_names", list(experiment_ids)))

    def search(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 1000,
        order_by: Sequence[str] = (),
    ) -> list[RunView]:
        return list(self._call("search", list(experiment_ids), filter_string, max_results, list(order_by)))

    def experiment_id(self, name: str) -> str | None:
        found = self._call("experiment_id", name)
        return None if found is None else str(found)

    def terminate(self, run_id: str, status: str) -> None:
        self._call("terminate", run_id, status)

    def get_run(self, run_id: str) -> RunView:
        view = self._call("get_run", run_id)
        assert isinstance(view, RunView)
        return view

    def read_json_artifact(self, run_id: str, path: str) -> Any:
        return self._call("read_json_artifact", run_id, path)


AnyTracker = Tracker | HelperTracker
_METHODS = frozenset(name for name in vars(HelperTracker) if not name.startswith("_"))  # what is served

# --------------------------------------------------------------------------- the helper process


def serve(uri: str) -> int:
    """Serve ``uri``'s store until idle; returns at once if another helper holds the lock."""
    import fcntl
    import socket

    db = _database(uri)
    if db is None:
        return 2
    paths = _Paths(uri)
    lock = open(paths.lock, "a")  # noqa: SIM115  (held, with its flock, until this process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    tracker = Tracker(uri)  # MLflow imported and the store opened, once
    database = db.stat()
    key = os.urandom(32)
    tmp = paths.key.with_name(paths.key.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    paths.socket.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(paths.socket))  # in a directory only this user can open
    listener.listen(64)
    tmp.replace(paths.key)
    paths.pid.write_text(f"{os.getpid()}\n{uri}\n", encoding="utf-8")
    bound = paths.socket.stat().st_ino
    state = {"last": time.monotonic(), "busy": 0}
    guard = threading.Lock()
    idle = float(os.environ.get(IDLE) or 600)

    def same_database() -> bool:
        try:
            now = db.stat()
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == (database.st_dev, database.st_ino)

    def watch() -> None:
        while True:
            time.sleep(min(2.0, idle / 4))
            try:
                ours = paths.socket.stat().st_ino == bound
            except OSError:
                ours = False
            with guard:
                quiet = state["busy"] == 0 and time.monotonic() - state["last"] > idle
            if not ours or quiet or not same_database():
                if ours:
                    paths.socket.unlink(missing_ok=True)
                    paths.pid.unlink(missing_ok=True)
                os._exit(0)

    def handle(conn: Any) -> None:
        with conn:
            while True:
                try:
                    method, args = conn.recv()
                except (EOFError, OSError):
                    return
                with guard:
                    state["busy"] += 1
                try:
                    if method not in _METHODS or not same_database():
                        reply: tuple[Any, ...] = ("unavailable",)
                    else:
                        reply = ("ok", getattr(tracker, method)(*args))
                except ReprotrainError as exc:  # raised again by the client as the same class (exit code)
                    reply = ("error", exc.message, exc.hint, type(exc).__name__, exc.exit_code)
                except Exception as exc:  # served as the in-process Tracker would raise it
                    reply = ("error", f"{type(exc).__name__}: {exc}", None)
                finally:
                    with guard:
                        state["busy"] -= 1
                        state["last"] = time.monotonic()
                try:
                    conn.send(reply)
                except (OSError, ValueError):
                    return

    def welcome(raw: Any) -> None:
        """Each client is authenticated on a thread of its own, within the handshake's bound: a
        client stopped mid-handshake (or one with the wrong key) holds up nobody else."""
        try:
            conn = _authenticated(raw, key, server=True)
        except Exception:
            return
        handle(conn)

    threading.Thread(target=watch, daemon=True).start()
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=welcome, args=(raw,), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
