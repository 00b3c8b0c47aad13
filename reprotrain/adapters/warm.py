"""Warm launches: `reprotrain run` forked from a process that already has reprotrain, Hydra and
DVC imported, instead of a new interpreter importing them (≈0.3-0.5 s of every launch, and of the
pipeline runner's start).

- The warm process (``python -m reprotrain.adapters.warm``) runs no user code and holds no
  project: it imports modules, then waits on a Unix socket in a directory only this user can
  open. For each launch it forks a child that takes the client's working directory (as a file
  descriptor), standard streams (passed over the socket), environment, umask and arguments, and
  runs `reprotrain run` there as the console script would, in a session of its own; the exit
  status goes back to the client, which exits with it.
- One warm process per launch context, named by everything a fork could not take over from the
  client: the interpreter, its flags and sys.path, the installed code (reprotrain's files and the
  directories on sys.path, by their modification times), the whole environment, the user and
  groups, resource limits, cgroup, namespaces, CPU affinity and priority. A client finds only the
  warm process of its exact context; any change starts another, and the old one goes idle.
- Started by the second launch of a context (within a day) that finds none (that launch runs as
  usual, in its own interpreter): a one-off launch costs no warm process. It exits after
  ``REPROTRAIN_WARM_IDLE`` seconds (600) without a launch running or starting, or as soon as its
  socket is removed or replaced. ``REPROTRAIN_WARM=0`` turns warm launches off.
- The client passes on SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the launch; if the
  client dies, the launch gets SIGTERM (a stopped launch, recorded as such). A launch whose
  entrypoint is a Python callable (it runs in reprotrain's own process) is never warm: the client
  is told so before anything is done, and starts its own interpreter.
- Any failure to reach the warm process, or a launch it does not start within
  ``_START_SECONDS``, falls back to the usual launch; a launch is started only after the client
  has confirmed that it is waiting for it, so a launch never runs twice.
"""

from __future__ import annotations

# A warm launch's client is the console script's process: it imports only what talking to the
# warm process needs (no pathlib, typing, subprocess or tempfile: ≈50 ms of every launch).
import hashlib
import json
import os
import signal
import socket
import stat
import struct
import sys
import time
from contextlib import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

__all__ = ["forked_here", "launch", "private_dir"]

SWITCH = "REPROTRAIN_WARM"
IDLE = "REPROTRAIN_WARM_IDLE"
_CONNECT_SECONDS = 2.0
_SEEN_SECONDS = 86400  # a context's first launch in a day starts no warm process: the second does
_START_SECONDS = 5.0  # the child's "go": its fork and reading the project's settings
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
# variables a shell sets per command or per directory, read by nothing a warm process imports
_IGNORED_VARIABLES = frozenset({"PWD", "OLDPWD", "_", "SHLVL"})
# what a launch imports (and the pipeline runner it forks): imported once in the warm process
_PRELOAD = (
    "reprotrain.cli",
    "reprotrain.launch",
    "reprotrain.job",
    "reprotrain.pipeline",
    "reprotrain.sweep",
    "reprotrain.adapters.hydra",
    "reprotrain.adapters.dvc",
    "reprotrain.adapters.dvc_pipeline",
    "reprotrain.adapters.dvc_runner",
    "reprotrain.adapters.data_memo",
    "git",
    "omegaconf",
    "hydra",
    "hydra._internal.hydra",
    "hydra._internal.utils",
    "hydra._internal.config_loader_impl",
    "hydra.core.global_hydra",
    "dvc.repo",
    "dvc.cli.parser",
    "dvc.repo.reproduce",
    "dvc.commands.repro",
    "dvc.repo.graph",
    "dvc.stage",
    "dvc.dvcfile",
    # imported inside DVC's and Hydra's functions, by a launch's composition and by `dvc repro`
    # in the runner (measured: what a pipeline launch imported after its fork, ≈0.15 s)
    "dvc.utils.hydra",
    "hydra._internal.core_plugins.basic_launcher",
    "hydra._internal.core_plugins.basic_sweeper",
    "hydra._internal.logging_config",
    "omegaconf._impl",
    "reprotrain.core.cluster",
    "networkx",
    "dvc.cachemgr",
    "dvc.data_cloud",
    "dvc.lock",
    "dvc.rwlock",
    "dvc.scm",
    "dvc.repo.index",
    "dvc.repo.stage",
    "dvc.repo.trie",
    "dvc.repo.metrics",
    "dvc.repo.params",
    "dvc.repo.plots",
    "dvc.repo.artifacts",
    "dvc.repo.datasets",
    "dvc.repo.open_repo",
    "dvc.utils.strictyaml",
    "dvc_data.hashfile.db.local",
    "dvc_data.hashfile.status",
    "dvc_render.html",
    "dvc_render.image",
    "dvc_render.plotly",
    "dvc_render.vega",
    "scmrepo.git",
    "scmrepo.noscm",
    "scmrepo.git.backend.dulwich",
    "scmrepo.git.backend.pygit2",
    "scmrepo.git.backend.gitpython",
    "ruamel.yaml",
    "psutil",
    "flufl.lock",
    "zc.lockfile",
    "configobj",
    "platformdirs",
    "flatten_dict",
    "fsspec.implementations.memory",
)

_forked_here = False  # True in a launch forked by the warm process
_served: tuple[str, int] | None = None  # the warm process's socket and its inode


def forked_here() -> bool:
    """Whether this process is a launch forked by a warm process (its modules are imported)."""
    return _forked_here


def _enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in {"0", "off", "false", "no"}


def private_dir() -> Path:
    """This user's directory for reprotrain's sockets and pid files (0700, owned by the user)."""
    from pathlib import Path

    return Path(_private_dir())


def _private_dir() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        import tempfile  # ≈4 ms of the client's start, only where no runtime directory is set

        runtime = tempfile.gettempdir()
    base = os.path.join(runtime, f"reprotrain-{os.getuid()}")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{base} is not a private directory of this user")
    return base


def _touch(path: str) -> None:
    with open(path, "a"):
        os.utime(path)


def _unlink(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _code_stamp(path: list[str]) -> list[Any]:
    """When the code a fork would run last changed: reprotrain's own files (an install edited in
    place keeps its version) and every directory on sys.path (installing or removing a package
    changes its directory)."""
    own = _newest(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), ".py")
    dirs = []
    for entry in path:
        try:
            dirs.append(os.stat(entry or ".").st_mtime_ns)
        except OSError:
            dirs.append(0)
        plugins = os.path.join(entry or ".", "hydra_plugins")  # imported by the warm process (_discover_hydra_plugins)
        if os.path.isdir(plugins):
            dirs.append(_newest(plugins, ""))
    return [own, dirs]


def _newest(top: str, suffix: str) -> int:
    """The newest modification time (ns) of the files and directories under ``top`` whose names
    end with ``suffix``, `__pycache__` left out (linked files count by their target; linked
    directories are not entered)."""
    newest = 0
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]  # written by imports: not the code
        for name in (*files, *subdirs) if not suffix else files:
            if name.endswith(suffix) and not name.endswith(".pyc"):
                with suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(directory, name)).st_mtime_ns)
    return newest


def _identity(path: list[str]) -> str:
    """The name of this process's launch context (see the module's docstring)."""
    import resource

    limits = [resource.getrlimit(getattr(resource, n)) for n in sorted(dir(resource)) if n.startswith("RLIMIT_")]
    try:
        namespaces = sorted(os.readlink(f"/proc/self/ns/{n}") for n in os.listdir("/proc/self/ns"))
    except OSError:
        namespaces = []
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = []
    env = sorted((k, v) for k, v in os.environ.items() if k not in _IGNORED_VARIABLES)
    parts = [
        sys.executable,
        sys.version,
        path,
        list(sys.flags),
        sys._xoptions,  # -X options (subprocess._args_from_interpreter_flags passes them on)
        sys.warnoptions,
        os.getuid(),
        os.getgid(),
        sorted(os.getgroups()),
        limits,
        _read("/proc/self/cgroup"),
        namespaces,
        affinity,
        os.getpriority(os.PRIO_PROCESS, 0),
        env,
        _code_stamp(path),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


class _Paths:
    def __init__(self, name: str) -> None:
        base = os.path.join(_private_dir(), f"warm-{name}")
        self.name = name
        self.socket = base + ".sock"
        self.lock = base + ".lock"
        self.log = base + ".log"
        self.pid = base + ".pid"
        self.refused = base + ".refused"  # it could not serve this context: not started again
        self.seen = base + ".seen"  # a launch ran in this context (the next starts one)


# --------------------------------------------------------------------------- the client


def launch(argv: list[str]) -> int | None:
    """Run the launch ``argv`` (the console script's sys.argv) in a fork of this context's warm
    process and return its exit code; None if there is none (one is then started for the next
    launch) or it declined: the caller launches as usual."""
    if _forked_here or not _enabled() or not hasattr(socket, "send_fds") or not sys.platform.startswith("linux"):
        return None
    try:
        paths = _Paths(_identity(list(sys.path)))
    except OSError:
        return None
    try:
        bound = os.stat(paths.socket).st_ino
        sock = _connect(paths.socket)
    except OSError:
        if _warm_suits():  # none is started for a launch that would never use it (the child declines it)
            _start(paths)
        return None
    with sock:
        return _talk(sock, argv, lambda: _forget(paths.socket, bound))


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_CONNECT_SECONDS)
        sock.connect(path)
        uid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid():
            raise OSError("the warm process is another user's")
    except BaseException:
        sock.close()
        raise
    return sock


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _talk(sock: socket.socket, argv: list[str], forget: Callable[[], None]) -> int | None:
    umask = os.umask(0)
    os.umask(umask)
    ignored = [name for name in _FORWARDED if signal.getsignal(getattr(signal, name)) == signal.SIG_IGN]  # nohup
    body = json.dumps({"argv": argv, "env": dict(os.environ), "umask": umask, "ignored": ignored}).encode()
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None  # a closed standard stream, or no working directory: the usual launch says so
    try:
        sock.sendall(struct.pack("!Q", len(body)) + body)
        sock.settimeout(_START_SECONDS)
        # the streams go only to a warm process that answered: passed to a stopped one, they would
        # stay open in its queue after this process ends (a caller reading them would never see EOF)
        if _recv_exact(sock, 1) != b"R":
            return None
        socket.send_fds(sock, [b"F"], [0, 1, 2, cwd])
        kind = _recv_exact(sock, 1)
    except TimeoutError:  # stopped or hung: its socket is removed, so no launch waits on it again
        forget()
        return None  # the launch was not started: it never will be (it waits for our "A")
    except (OSError, EOFError):
        return None
    finally:
        os.close(cwd)
    if kind != b"G":
        return None  # declined ("D"), or the child died before it began ("X"): nothing was run
    try:
        (pid,) = struct.unpack("!i", _recv_exact(sock, 4))
    except (OSError, EOFError):
        return None
    previous: dict[int, Any] = {}

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for name in _FORWARDED:
        if name not in ignored:  # what this process ignores, the launch ignores too
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, forward)
    try:
        sock.sendall(b"A")  # from here on, the launch is the child's
        sock.settimeout(None)
        try:
            kind = _recv_exact(sock, 1)
            (status,) = struct.unpack("!i", _recv_exact(sock, 4))
        except (OSError, EOFError):
            return _lost(pid)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: so is this process, as the shell would report it
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def _forget(path: str, bound: int) -> None:
    """Remove the socket at ``path`` if it is still the one connected to (inode ``bound``): that
    warm process exits when it next wakes, and later launches do not wait for it."""
    with suppress(OSError):
        if os.stat(path).st_ino == bound:
            os.unlink(path)


def _lost(pid: int) -> int:
    """The warm process went away while its launch runs: wait for the launch to end (an orphan,
    maybe a zombie nobody reaps); its exit code is gone with the warm process."""
    while True:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}:
                    break
        except (OSError, IndexError):
            break
        time.sleep(0.2)
    print(
        "reprotrain: error: the warm process ended during this launch: its exit code is lost\n"
        "  hint: `reprotrain show last` says how the run ended",
        file=sys.stderr,
    )
    return 1


def _start(paths: _Paths) -> None:
    """Start this context's warm process in the background, unless this is the context's first
    launch today (a one-off launch, or a script's, costs no warm process), one is starting, or
    one could not serve this context before."""
    if os.path.exists(paths.refused):
        return
    try:
        if time.time() - os.stat(paths.seen).st_mtime > _SEEN_SECONDS:
            raise FileNotFoundError
    except OSError:
        with suppress(OSError):
            _touch(paths.seen)
        return
    try:
        import fcntl
        import subprocess

        with open(paths.lock, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # starting or running (it holds the lock for its lifetime)
            fcntl.flock(lock, fcntl.LOCK_UN)
        with open(paths.log, "ab") as log:
            flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
            subprocess.Popen(
                [sys.executable, *flags, "-m", __name__, paths.name, json.dumps(sys.path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
    except OSError:
        pass


# --------------------------------------------------------------------------- the warm process


class _Task:
    """What a forked child does: the client's launch."""

    def __init__(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        self.conn = conn
        self.request = request
        self.fds = fds


_plugin_files: list[tuple[str, int]] = []  # what plugin discovery imported, with its mtime (ns)
_plugin_notes = ""  # what it printed and warned: each launch shows it, as its own discovery would


def _discover_hydra_plugins() -> None:
    """Hydra's plugin discovery (it imports every module of the `hydra_plugins` packages on
    sys.path, and what they import, ≈0.1 s of each launch), done once: the forks find Hydra's
    Plugins singleton made. The `hydra_plugins` trees are part of the context's code stamp (a
    plugin added or removed); every file discovery imported is checked by each fork (_stale)."""
    global _plugin_notes
    import io
    import warnings

    before = set(sys.modules)
    said = io.StringIO()
    held = sys.stderr
    try:
        from hydra.core.plugins import Plugins

        sys.stderr = said
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Plugins.instance()
    except Exception:  # noqa: BLE001 - a broken plugin: no Plugins is made, and each launch reports it as Hydra does
        return
    finally:
        sys.stderr = held
    _plugin_notes = said.getvalue() + "".join(
        warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught
    )
    for name in set(sys.modules) - before:
        file = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(file, str):
            with suppress(OSError):
                _plugin_files.append((file, os.stat(file).st_mtime_ns))


def _stale() -> bool:
    """Whether a file that plugin discovery imported changed since (a user's own package that a
    plugin of theirs imports, edited): the fork declines, and the warm process is retired."""
    for file, mtime in _plugin_files:
        try:
            if os.stat(file).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def serve(name: str, path: list[str]) -> _Task | None:
    """Serve launches until idle (None), or, in a forked child, return its task."""
    import fcntl
    import gc
    import importlib
    import selectors
    import threading

    sys.path[:] = path
    paths = _Paths(name)
    if _identity(path) != name:  # started for another context (a flag or a limit not passed on)
        print(f"warm: not the context {name}: not serving", file=sys.stderr)
        _touch(paths.refused)
        return None
    lock = open(paths.lock, "a")  # noqa: SIM115  (held, with its flock, until this process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    for module in _PRELOAD:
        try:
            importlib.import_module(module)
        except Exception:  # another version's layout: the launch imports what it needs itself
            pass
    _discover_hydra_plugins()
    if threading.active_count() != 1:  # a fork copies one thread only
        print("warm: an import started a thread: not serving", file=sys.stderr)
        _touch(paths.refused)
        return None
    gc.collect()
    gc.freeze()  # the forks share these pages instead of each collection touching them

    tmp = f"{paths.socket}.{os.getpid()}.tmp"
    _unlink(tmp)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, paths.socket)
    bound = os.stat(paths.socket).st_ino
    global _served
    _served = (paths.socket, bound)
    with open(paths.pid, "w", encoding="utf-8") as pidfile:
        pidfile.write(f"{os.getpid()}\n")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_write)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    children: dict[int, tuple[socket.socket, int | None, int]] = {}  # pid -> conn, client's pidfd, client pid
    idle = float(os.environ.get(IDLE) or 600)
    last = time.monotonic()

    def shared() -> list[Any]:
        """What a forked child closes: everything of the warm process's own."""
        held: list[Any] = [listener, lock, selector, wake_read, wake_write]
        for conn, pidfd, _ in children.values():
            held.append(conn)
            if pidfd is not None:
                held.append(pidfd)
        return held

    while True:
        for key, _ in selector.select(timeout=min(2.0, idle / 4)):
            if key.data == "accept":
                task = _accept(listener, shared, children, selector)
                if task is not None:
                    return task  # in the child
                last = time.monotonic()
            elif key.data == "wake":
                try:
                    os.read(wake_read, 512)
                except BlockingIOError:
                    pass
                _reap(children, selector)
                last = time.monotonic()
            else:  # a client's pidfd: the client died while its launch runs
                pid = key.data
                with suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
                entry = children.get(pid)
                if entry is not None and entry[1] is not None:
                    selector.unregister(entry[1])
                    os.close(entry[1])
                    children[pid] = (entry[0], None, entry[2])
        try:
            ours = os.stat(paths.socket).st_ino == bound
        except OSError:
            ours = False
        if not ours or (not children and time.monotonic() - last > idle):
            if ours:
                _unlink(paths.socket)
                _unlink(paths.pid)
            listener.close()
            if not children:
                return None
            selector.unregister(listener)
            ours = False
            while children:  # the launches running still get their exit status
                for key, _ in selector.select(timeout=2.0):
                    if key.data == "wake":
                        with suppress(OSError):
                            os.read(wake_read, 512)
                        _reap(children, selector)
            return None


def _accept(listener: socket.socket, shared: Any, children: dict[int, Any], selector: Any) -> _Task | None:
    import selectors

    try:
        conn, _ = listener.accept()
    except OSError:
        return None
    try:
        conn.settimeout(_CONNECT_SECONDS)
        client_pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid() or client_pid in children:  # a launch of ours never launches through us
            raise OSError("another user, or one of this process's own launches")
        (size,) = struct.unpack("!Q", _recv_exact(conn, 8))
        request = json.loads(_recv_exact(conn, size))
        conn.sendall(b"R")
        marker, fds, _flags, _addr = socket.recv_fds(conn, 1, 4)
        if marker != b"F" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            raise OSError("a bad request")
    except (OSError, EOFError, ValueError):
        conn.close()
        return None
    inherited = shared()
    pid = os.fork()
    if pid == 0:
        for held in inherited:
            with suppress(OSError):
                if isinstance(held, int):
                    os.close(held)
                else:
                    held.close()
        return _Task(conn, request, fds)
    for fd in fds:
        os.close(fd)
    pidfd: int | None
    try:
        pidfd = os.pidfd_open(client_pid)  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        selector.register(pidfd, selectors.EVENT_READ, pid)
    children[pid] = (conn, pidfd, client_pid)
    return None


def _reap(children: dict[int, Any], selector: Any) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        entry = children.pop(pid, None)
        if entry is None:
            continue
        conn, pidfd, _ = entry
        if pidfd is not None:
            selector.unregister(pidfd)
            os.close(pidfd)
        with suppress(OSError):
            conn.settimeout(_CONNECT_SECONDS)
            conn.sendall(b"X" + struct.pack("!i", status))
        conn.close()


# --------------------------------------------------------------------------- a forked launch


def _become(task: _Task) -> bool:
    """Take over the client's context; True once the client has confirmed it waits for this
    launch (False: declined or abandoned, nothing was done)."""
    import types

    from reprotrain.adapters.process import reopen_streams

    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request, (stdin, stdout, stderr, cwd) = task.request, task.fds
    for name in _FORWARDED:  # as the client's interpreter has them: Python's own, or ignored (nohup)
        default = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
        signal.signal(getattr(signal, name), signal.SIG_IGN if name in request.get("ignored", ()) else default)
    os.fchdir(cwd)
    os.close(cwd)
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    reopen_streams()
    sys.argv = list(request["argv"])
    main = types.ModuleType("__main__")
    main.__file__ = sys.argv[0]
    sys.modules["__main__"] = main
    conn = task.conn
    conn.settimeout(_START_SECONDS)
    try:
        if _stale():
            if _served is not None:
                _forget(*_served)  # the next launch starts a warm process with the edited code
            conn.sendall(b"D")
            return False
        if not _warm_suits():
            conn.sendall(b"D")
            return False
        conn.sendall(b"G" + struct.pack("!i", os.getpid()))
        return _recv_exact(conn, 1) == b"A"
    except (OSError, EOFError):
        return False
    finally:
        conn.close()


def _warm_suits() -> bool:
    """A launch whose entrypoint is a Python callable runs it in reprotrain's own process: that
    process is a fresh interpreter, as always (never a fork that shares this one's hash seed)."""
    from reprotrain.core.entrypoint import parse_entrypoint
    from reprotrain.settings import entrypoint_setting

    return not parse_entrypoint(entrypoint_setting() or "").is_callable


def _run_task(task: _Task) -> None:
    global _forked_here
    _forked_here = True  # before anything else: a forked launch never asks a warm process itself
    if not _become(task):
        os._exit(0)
    from reprotrain.cli import entry

    if _plugin_notes:
        sys.stderr.write(_plugin_notes)
    try:
        entry()  # raises SystemExit: this process ends as the console script's does
    except SystemExit as done:
        _exit_at_once(done.code)


def _exit_at_once(code: object) -> None:
    """Exit as the interpreter would (its exit handlers run, its streams flushed), without tearing
    down the modules it shares with the warm process: the client waits for this process to be
    reaped (≈50 ms of every launch). With a thread still running, the interpreter's own exit."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        # threads to be told to stop first (a thread pool's workers, by the threading module's own
        # exit hooks) and joined: the interpreter's exit does that
        raise SystemExit(code)
    atexit._run_exitfuncs()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(status)


def _main(argv: list[str]) -> None:
    found = serve(argv[0], json.loads(argv[1]))
    if found is None:
        raise SystemExit(0)
    _run_task(found)


if __name__ == "__main__":
    # the module as reprotrain's code imports it (never this __main__ copy): its _forked_here is
    # the one warm.launch() sees in a forked launch
    from reprotrain.adapters import warm as _imported

    _imported._main(sys.argv[1:])
