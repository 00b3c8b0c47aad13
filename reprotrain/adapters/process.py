"""Running the user's training code: a shell command in a child process, or a Python callable
in-process. Console output streams to the terminal and into a log file at the same time; SIGINT
and SIGTERM stop the code and are reported, so the run can be marked KILLED."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "Forked",
    "Outcome",
    "Prestarted",
    "defer_signals",
    "deferred",
    "die_with_parent",
    "load_callable",
    "reopen_streams",
    "run_callable",
    "run_command",
    "signal_handlers",
    "take_deferred",
    "variables_set",
]


@contextmanager
def variables_set(env: Mapping[str, str | None]) -> Iterator[None]:
    """``env`` set in this process's environment for the block (a None value: unset for the block),
    and what was there before put back."""
    saved = {key: os.environ.get(key) for key in env}
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


GRACE_SECONDS = 10.0  # after forwarding a signal, how long the code gets before SIGKILL
DRAIN_SECONDS = 2.0  # after the code exited, how long its console pipes may stay open
_HELD = (
    "reprotrain: warning: a process the training code started outside its process group (a daemon) "
    "still holds the console open; what it prints from now on is not in the console log"
)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    status: str  # FINISHED, FAILED or KILLED
    reason: str = ""
    value: Any = None
    stderr_tail: bytes = b""

    def with_tail(self, tail: bytes) -> Outcome:
        from dataclasses import replace

        return replace(self, stderr_tail=tail)


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM while a callable entrypoint runs."""


class _TimedOut(BaseException):
    """Raised in the main thread when a callable entrypoint outlives its timeout."""


def _outcome(code: int, signals: list[int], timed_out: bool, timeout: float | None) -> Outcome:
    if signals:
        name = signal.Signals(signals[0]).name
        return Outcome(128 + signals[0], "KILLED", f"stopped by {name}")
    if timed_out:
        return Outcome(124, "FAILED", f"timed out after {timeout:g} s")
    if code < 0:  # the code died of a signal nobody sent through reprotrain
        return Outcome(128 - code, "FAILED", f"killed by {signal.Signals(-code).name}")
    return Outcome(code, "FINISHED" if code == 0 else "FAILED", "" if code == 0 else f"exit code {code}")


class _Tee:
    """Copies bytes from a pipe to a terminal stream and a shared log file."""

    def __init__(self, log: BinaryIO, tail_size: int = 0) -> None:
        self.log = log
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.tail_size = tail_size
        self.tail = bytearray()  # the last bytes of the stream started with keep_tail=True
        self.stopped = threading.Event()
        self.stop_by = 0.0  # once stopped: read what is there until then, at most
        self.log_failed = False
        self.busy = 0  # chunks being written out right now
        self.last_activity = time.monotonic()
        self.held = 0  # pipes given up on before their end

    def start(self, source_fd: int, sink: Callable[[bytes], None], keep_tail: bool = False) -> None:
        thread = threading.Thread(target=self._pump, args=(source_fd, sink, keep_tail), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _pump(self, source_fd: int, sink: Callable[[bytes], None], keep_tail: bool) -> None:
        partial = b""  # the log gets whole lines, so stdout and stderr lines never splice
        poller = select.poll()
        poller.register(source_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        ended = False
        while True:
            if not poller.poll(100):
                if self.stopped.is_set():  # the code is gone and the pipe is idle: not waited for
                    break
                continue
            if self.stopped.is_set() and time.monotonic() > self.stop_by:
                break  # a daemon that keeps printing
            try:
                chunk = os.read(source_fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                ended = True
                break
            with self.lock:
                self.busy += 1
            partial += chunk
            cut = partial.rfind(b"\n") + 1
            whole, partial = partial[:cut], partial[cut:]
            if len(partial) > 65536:  # a very long line without a newline: write it anyway
                whole, partial = whole + partial, b""
            with self.lock:
                if whole:
                    self._log(whole)
                if keep_tail and self.tail_size:
                    self.tail += chunk
                    del self.tail[: max(0, len(self.tail) - self.tail_size)]
            try:
                sink(chunk)  # a slow terminal blocks here; that is busy, not idle
            except (OSError, ValueError):  # the terminal went away: keep logging to the file
                pass
            with self.lock:
                self.busy -= 1
                self.last_activity = time.monotonic()
        if partial:
            with self.lock:
                self._log(partial)
        with self.lock:
            self.held += 0 if ended else 1
        os.close(source_fd)

    def _log(self, data: bytes) -> None:
        """Append to the console log; once the disk is full, the terminal still gets everything
        (the pipes must be drained, or the code would block on its next print)."""
        if self.log_failed:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[self.log.write(view) or 0 :]
        except OSError:
            self.log_failed = True

    def join(self, drain: float = DRAIN_SECONDS, busy_cap: float = 30.0) -> bool:
        """After the code exited: read until every pipe reaches its end, or has been idle for
        ``drain`` seconds (a reader still writing to a slow terminal is not idle, for up to
        ``busy_cap`` seconds), then stop reading. False when a process outside the code's process
        group (a daemon it started) still held a pipe open: its later output is not logged."""
        with self.lock:
            self.last_activity = time.monotonic()
        cap = time.monotonic() + busy_cap
        while any(thread.is_alive() for thread in self.threads):
            now = time.monotonic()
            with self.lock:
                idle = not self.busy and now - self.last_activity >= drain
            if idle or now >= cap:
                break
            for thread in self.threads:
                thread.join(0.05)
        self.stop_by = time.monotonic() + drain
        self.stopped.set()
        for thread in self.threads:
            thread.join()
        return not self.held


def _stream_sink(stream: Any) -> Callable[[bytes], None]:
    """Write to a stream's file descriptor, or to its buffer when it has none (captured output)."""
    try:
        return _fd_sink(stream.fileno())
    except (AttributeError, OSError, ValueError):
        buffer = getattr(stream, "buffer", None)

        def write(chunk: bytes) -> None:
            if buffer is not None:
                buffer.write(chunk)
            else:
                stream.write(chunk.decode("utf-8", "replace"))
            stream.flush()

        return write


def _fd_sink(fd: int) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]

    return write


def take_deferred() -> list[int]:
    """Signals that arrived while a job was being set up or recorded (see :func:`defer_signals`):
    the job's code is then not started, and the sweep stops after the job is recorded."""
    taken, _DEFERRED[:] = list(_DEFERRED), []
    return taken


def deferred() -> int | None:
    return _DEFERRED[0] if _DEFERRED else None


_DEFERRED: list[int] = []


@contextmanager
def defer_signals() -> Iterator[None]:
    """SIGINT and SIGTERM are noted, not acted on, while a job's run is created and recorded in
    this process: interrupting MLflow mid-write would leave a half-recorded run. While the code
    runs, its own handlers (forwarding, or raising in a callable) take over."""
    with signal_handlers(lambda signum, _frame: _DEFERRED.append(signum)):
        yield


@contextmanager
def signal_handlers(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM inside the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_leftovers(pgid: int, grace: float = 2.0) -> None:
    """Processes the code started and left running when it exited (its process group) are stopped:
    SIGTERM, then SIGKILL after ``grace`` seconds. Left alone they would keep the console pipes
    open, and keep writing into the output directory while it is uploaded."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return  # nothing left
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    _killpg(pgid, signal.SIGKILL)


def _stdin() -> int | None:
    """The code's stdin: the terminal when reprotrain has one (a prompt works), else nothing."""
    return subprocess.DEVNULL if not sys.stdin or not sys.stdin.isatty() else None


class Prestarted:
    """A process started before its job is ready, so that its interpreter starts and its imports
    run while reprotrain sets the job up: in a session of its own, with the stdin, stdout and
    stderr run_command gives a command, it waits for its request on a pipe (``REQUEST_FD`` is
    passed as its last argument). ``run_command(..., prestarted=p, request=b"...")`` sends the
    request and runs it as it runs a command; unused, ``close()`` kills it (it has only imported).
    The request goes through the pipe, never a file: it may hold the job's secrets."""

    def __init__(self, argv: list[str], cwd: Path, fork: Callable[[int], int] | None = None) -> None:
        self.owner = os.getpid()  # a forked child of reprotrain's must not adopt it
        self.proc: subprocess.Popen[bytes] | Forked | None = None
        read, self._write = os.pipe()  # both ends close on exec: only the child gets ``read``
        try:
            if fork is not None and threading.active_count() == 1:
                self.proc = Forked(fork, read, cwd)  # what argv would import is imported here already
            else:
                self.proc = subprocess.Popen(
                    [*argv, str(read)],
                    cwd=cwd,
                    stdin=_stdin(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=(read,),
                )
        except OSError:
            pass  # then the command is started as usual
        except BaseException:  # Ctrl-C while it starts
            self.close()
            raise
        finally:
            os.close(read)

    def adopt(self, request: bytes) -> subprocess.Popen[bytes] | Forked | None:
        """The process, its request sent; None if it is gone (then the command is started as usual)."""
        proc, self.proc = self.proc, None
        if proc is None or os.getpid() != self.owner or proc.poll() is not None:
            self._reap(proc)
            return None
        try:
            with os.fdopen(self._write, "wb", closefd=True) as pipe:
                self._write = -1
                pipe.write(request)
        except OSError:  # it died meanwhile
            self._reap(proc)
            return None
        return proc

    def close(self) -> None:
        proc, self.proc = self.proc, None
        self._reap(proc)

    def _reap(self, proc: subprocess.Popen[bytes] | Forked | None) -> None:
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
        if proc is None or os.getpid() != self.owner:
            return
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class Forked:
    """A child forked from this process (single-threaded, its modules imported) that calls
    ``target(request_fd)`` and exits with what it returns, as Prestarted's started process would:
    in a session of its own, the code's stdin, stdout and stderr into pipes, every other file
    descriptor of this process closed. What Popen offers run_command: pid, stdout, stderr, poll(),
    wait(), args."""

    def __init__(self, target: Callable[[int], int], request_fd: int, cwd: Path) -> None:
        stdin = _stdin()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        launcher = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child: it never returns)
            code = 1
            try:
                os.setsid()
                if stdin == subprocess.DEVNULL:
                    null = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(null, 0)
                    os.close(null)
                os.dup2(out_write, 1)
                os.dup2(err_write, 2)
                os.closerange(3, request_fd)
                os.closerange(request_fd + 1, 1 << 20)
                os.chdir(cwd)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # as a new process has them
                    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
                reopen_streams()
                _DEFERRED.clear()
                code = target(request_fd)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                with suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(out_write)
        os.close(err_write)
        self.pid = pid
        self.args = ["(forked)", str(launcher)]
        self.returncode: int | None = None
        self.stdout: Any = os.fdopen(out_read, "rb")
        self.stderr: Any = os.fdopen(err_read, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its code is lost
                pid, status = self.pid, 1 << 8
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.005)
        assert self.returncode is not None
        return self.returncode


def reopen_streams() -> None:
    """sys.stdin, sys.stdout and sys.stderr made again on file descriptors 0, 1 and 2 (after
    dup2() onto them in a forked child) as a new interpreter makes them: the same encoding and
    errors; stdout line-buffered on a terminal, stderr always; write-through under -u or
    PYTHONUNBUFFERED."""
    import io

    unbuffered = bool(getattr(sys.__stdout__, "write_through", False))
    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        old = getattr(sys, f"__{name}__", None) or getattr(sys, name)
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        buffered: Any = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(
            buffered,
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors=getattr(old, "errors", None) or "strict",
            line_buffering=fd == 2 or (fd == 1 and raw.isatty()),
            write_through=unbuffered and fd != 0,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def run_command(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float | None = None,
    tail_size: int = 0,
    prestarted: Prestarted | None = None,
    request: bytes = b"",
) -> Outcome:
    """Run ``command`` with /bin/sh in its own process group; tee its output into ``log_path``.
    With ``prestarted``: that process is sent ``request`` instead, if it is still there (what it
    runs must be what ``command`` runs, with ``env`` and ``cwd`` taken from the request)."""
    sys.stdout.flush()
    sys.stderr.flush()
    received: list[int] = []
    escalate_at: list[float] = []
    group: list[int] = []  # the code's process group, once started

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        if not escalate_at:
            escalate_at.append(time.monotonic() + GRACE_SECONDS)
        if group:
            _killpg(group[0], signum)

    # the handlers are in place before the code starts: a signal in between cannot orphan it
    with log_path.open("ab", buffering=0) as log, signal_handlers(forward):
        received.extend(take_deferred())  # a sweep stopped while this job was being set up
        if received:
            return _outcome(0, received, False, None)
        adopted = prestarted.adopt(request) if prestarted is not None else None
        proc = adopted or subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=_stdin(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # signals reach it only through us, so we know why it stopped
        )
        group.append(proc.pid)
        if received:  # arrived while it started
            _killpg(proc.pid, received[0])
        assert proc.stdout is not None and proc.stderr is not None
        tee = _Tee(log, tail_size)
        tee.start(os.dup(proc.stdout.fileno()), _stream_sink(sys.stdout))
        tee.start(os.dup(proc.stderr.fileno()), _stream_sink(sys.stderr), keep_tail=True)
        proc.stdout.close()
        proc.stderr.close()
        watchdog = _watchdog(proc.pid)
        timed_out = False
        deadline = time.monotonic() + timeout if timeout else None
        exited = _ExitWaiter(proc)
        try:
            while True:
                try:
                    code = exited(0.2)
                    break
                except subprocess.TimeoutExpired:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline and not timed_out:
                        timed_out = True
                        escalate_at.append(now + GRACE_SECONDS)
                        _killpg(proc.pid, signal.SIGTERM)
                    if escalate_at and now >= escalate_at[0]:
                        _killpg(proc.pid, signal.SIGKILL)
            if received or timed_out:
                _killpg(proc.pid, signal.SIGKILL)  # whatever the code started is gone too
            else:
                _stop_leftovers(proc.pid)
        finally:
            exited.close()
            _release(watchdog)
            held = not tee.join()
        if held:
            print(_HELD, file=sys.stderr)
    return _outcome(code, received, timed_out, timeout).with_tail(bytes(tee.tail))


class _ExitWaiter:
    """``waiter(seconds)``: the process's exit code, or TimeoutExpired. On Linux it wakes the moment
    the process exits (a pidfd, polled: select() fails for a descriptor above 1023); Popen.wait
    with a timeout polls, up to 50 ms late."""

    def __init__(self, proc: subprocess.Popen[bytes] | Forked) -> None:
        self.proc = proc
        try:
            self.fd: int | None = os.pidfd_open(proc.pid)  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
            self.fd = None

    def __call__(self, seconds: float) -> int:
        if self.fd is not None:
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            if not poller.poll(seconds * 1000):
                raise subprocess.TimeoutExpired(self.proc.args, seconds)
        return self.proc.wait(timeout=seconds)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# Started beside every command: it holds a pipe only reprotrain writes to. If reprotrain dies
# (SIGKILL, OOM killer) before it says "done", the pipe ends without it and the watchdog stops
# the code's process group (SIGTERM, then SIGKILL after the grace period), as reprotrain would
# have. It runs no code of the user's or of reprotrain's: the interpreter without site.
_WATCHDOG = f"""
import os, signal, sys, time
pgid = int(sys.argv[1])
if sys.stdin.buffer.read().startswith(b"done"):
    sys.exit(0)
try:
    os.killpg(pgid, signal.SIGTERM)
    for _ in range({int(GRACE_SECONDS * 10)}):
        time.sleep(0.1)
        os.killpg(pgid, 0)
    os.killpg(pgid, signal.SIGKILL)
except OSError:
    pass
"""


def _watchdog(pgid: int) -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pgid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C on the terminal is reprotrain's to handle, not its
        )
    except OSError:  # no watchdog: the code is still stopped on every exit but SIGKILL
        return None


def _release(watchdog: subprocess.Popen[bytes] | None) -> None:
    """Tell the watchdog that the code's process group is taken care of, and reap it."""
    if watchdog is None or watchdog.stdin is None:
        return
    try:
        watchdog.stdin.write(b"done")
        watchdog.stdin.close()
    except OSError:
        pass
    try:
        watchdog.wait(timeout=5)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def die_with_parent(parent: int | None, sig: int = signal.SIGKILL) -> None:
    """In a child process (a fork of reprotrain's): have the kernel send ``sig`` when the parent
    dies, so no helper process outlives a reprotrain that was killed (Linux only; a no-op elsewhere).
    ``parent`` None: no longer (the signal is turned off)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 0 if parent is None else sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before the call
        os.kill(os.getpid(), sig)


def run_callable(
    function: Callable[[Any], Any], cfg: Any, log_path: Path, timeout: float | None = None, tail_size: int = 0
) -> Outcome:
    """Call ``function(cfg)`` in-process with file descriptors 1 and 2 teed into ``log_path``."""

    def terminate(signum: int, _frame: Any) -> None:
        raise _Terminated(signum)

    def expire(_signum: int, _frame: Any) -> None:
        raise _TimedOut()

    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with log_path.open("ab", buffering=0) as log:
        tee = _Tee(log, tail_size)
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            tee.start(read_end, _fd_sink(saved[fd]), keep_tail=fd == 2)
        try:
            old_term = old_int = old_alarm = None
            if threading.current_thread() is threading.main_thread():
                old_term = signal.signal(signal.SIGTERM, terminate)
                old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
                if timeout:
                    old_alarm = signal.signal(signal.SIGALRM, expire)
                    signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                pending = take_deferred()
                if pending:  # a sweep stopped while this job was being set up: the code never starts
                    raise KeyboardInterrupt if pending[0] == signal.SIGINT else _Terminated(pending[0])
                value = function(cfg)
                outcome = Outcome(0, "FINISHED", value=value)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
                outcome = _outcome(code, [], False, None)
            except KeyboardInterrupt:
                outcome = _outcome(0, [signal.SIGINT], False, None)
            except _Terminated:
                outcome = _outcome(0, [signal.SIGTERM], False, None)
            except _TimedOut:
                outcome = _outcome(0, [], True, timeout)
            except BaseException as exc:
                traceback.print_exc()
                outcome = Outcome(1, "FAILED", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
            finally:
                if old_alarm is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, old_alarm)
                if old_term is not None:
                    signal.signal(signal.SIGTERM, old_term)
                if old_int is not None:
                    signal.signal(signal.SIGINT, old_int)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)  # closes our pipe's write end: the tee threads see EOF
            if not tee.join():
                print(_HELD, file=sys.stderr)
            for copy in saved.values():
                os.close(copy)
    return outcome.with_tail(bytes(tee.tail))


def load_callable(module: str, function: str, root: Path) -> Callable[[Any], Any]:
    """Import ``function`` from a module name or a `.py` path (relative to ``root``)."""
    import importlib
    import importlib.util

    from reprotrain.errors import UsageError

    if module.endswith(".py"):
        path = (root / module).resolve()
        if not path.is_file():
            raise UsageError(
                f"entrypoint file {module} does not exist under {root}", hint="fix entrypoint in [tool.reprotrain]"
            )
        name = path.stem
        if name in sys.modules and not getattr(sys.modules[name], "__reprotrain_entry__", False):
            name = f"_reprotrain_entry_{path.stem}"  # never shadow an unrelated module
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)  # a fresh module for every job: no state leaks
        mod.__reprotrain_entry__ = True  # type: ignore[attr-defined]
        sys.path.insert(0, str(path.parent))  # the file imports its neighbours, as when run directly
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise UsageError(f"importing entrypoint {module} failed: {type(exc).__name__}: {exc}") from exc
    else:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        previous = sys.modules.get(module)
        if previous is not None and getattr(previous, "__reprotrain_entry__", False):
            del sys.modules[module]  # imported by an earlier job in this worker: import it afresh
        try:
            mod = importlib.import_module(module)
            mod.__reprotrain_entry__ = True  # type: ignore[attr-defined]
        except ImportError as exc:
            raise UsageError(
                f"entrypoint module {module!r} cannot be imported: {exc}",
                hint="fix entrypoint in [tool.reprotrain] (module:function or path/file.py:function)",
            ) from exc
    target: Any = mod
    for part in function.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise UsageError(
            f"entrypoint {module}:{function}: no function {function!r} in {module}",
            hint="fix entrypoint in [tool.reprotrain]",
        )
    return target  # type: ignore[no-any-return]
