"""reprotrain's hook in the training code's own process: MLflow behaves as the code expects.

reprotrain puts this file's directory first on ``PYTHONPATH`` for a command entrypoint (Python
imports ``sitecustomize`` at start-up; the next ``sitecustomize`` on the path still runs), and loads
this file itself for a callable entrypoint. Outside a reprotrain job (``REPROTRAIN_RUN_ID`` unset)
and until the code imports mlflow, it does nothing. Then it adapts two of MLflow's calls:

- ``mlflow.start_run``: ``MLFLOW_RUN_ID`` offers reprotrain's run to the code, and the code's first
  run attaches to it, but only while the code logs to reprotrain's store and experiment. Code that
  chose another store (``set_tracking_uri``), another experiment (``set_experiment``,
  ``experiment_id=``) or a nested run gets a run of its own there, exactly as without reprotrain
  (MLflow itself would fail: "Run ... not found", "active experiment ID does not match").
- ``MlflowClient.create_run`` (behind fluent runs, framework loggers with their own client, and
  direct calls): every run the code creates is tagged ``reprotrain.launched_by`` and noted, with its
  store, in the file ``REPROTRAIN_LINKS``, so reprotrain can find and link it afterwards.

It never raises into the training code: when anything here fails, MLflow's own call runs as is.
Standard library only, so that it also works in a Python where reprotrain is not installed.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

RUN = "REPROTRAIN_RUN_ID"  # reprotrain's run for this job
STORE = "REPROTRAIN_TRACKING_URI"  # the store reprotrain's run lives in
EXPERIMENT = "REPROTRAIN_EXPERIMENT_ID"  # its experiment
LINKS = "REPROTRAIN_LINKS"  # where runs created by the code are noted (one JSON object a line)
LAUNCHED_BY = "reprotrain.launched_by"
_MARK = "__reprotrain_hook__"
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306}

_offered: set[str] = set()  # runs this process was offered through MLFLOW_RUN_ID
_attached: set[str] = set()  # ... and those it attached to (MLflow then drops MLFLOW_RUN_ID)


def absolute_store(uri: Any) -> str:
    """``uri`` with a relative database or directory path made absolute (credentials kept)."""
    text = os.fspath(uri) if uri is not None else ""
    if text.startswith("sqlite:///"):
        path, sep, query = text[len("sqlite:///") :].partition("?")
        if path and not path.startswith("/") and path != ":memory:":
            return "sqlite:///" + os.path.abspath(path) + sep + query
        return text
    if "://" not in text and not text.startswith("file:"):
        return "file://" + os.path.abspath(text or "mlruns")
    return text


def store_key(uri: Any) -> str:
    """One spelling per store, to tell whether two tracking URIs name the same store: paths made
    absolute and real, hosts lower-cased with their default port, credentials and trailing
    slashes dropped."""
    text = absolute_store(uri)
    if text.startswith("sqlite:///"):
        return "sqlite:///" + os.path.realpath(text[len("sqlite:///") :].split("?", 1)[0])
    if text.startswith("file:"):
        return "file://" + os.path.realpath(unquote(urlsplit(text).path))
    try:
        parts = urlsplit(text)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.split("+", 1)[0], 0)
    except ValueError:
        return text
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


def same_store(a: Any, b: Any) -> bool:
    return store_key(a) == store_key(b)


# --------------------------------------------------------------------------- start_run


def _why_not_ours(mlflow: Any, args: dict[str, Any]) -> str | None:
    """Why this ``start_run`` call must not attach to reprotrain's run (None: it may)."""
    if os.environ.get(STORE) and not same_store(mlflow.get_tracking_uri(), os.environ[STORE]):
        return "store"
    ours = os.environ.get(EXPERIMENT)
    wanted = args.get("experiment_id")
    if ours and wanted is not None and str(wanted) != ours:
        return "experiment"
    if ours and os.environ.get("MLFLOW_EXPERIMENT_ID", ours) != ours:  # set_experiment sets it
        return "experiment"
    if args.get("parent_run_id") or (args.get("nested") and mlflow.active_run() is not None):
        return "nested"
    return None


def _wrap_start_run(original: Callable[..., Any], mlflow: Any) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def start_run(*args: Any, **kwargs: Any) -> Any:
        ours = os.environ.get(RUN)
        if not ours:
            return original(*args, **kwargs)
        try:
            bound = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return original(*args, **kwargs)
        if bound.get("run_id"):
            if bound["run_id"] == ours:
                _attached.add(ours)
            return original(*args, **kwargs)
        offered = os.environ.get("MLFLOW_RUN_ID")
        if offered == ours:
            _offered.add(ours)
        elif offered is None and ours in _offered and ours not in _attached:
            os.environ["MLFLOW_RUN_ID"] = ours  # an earlier run of the code's own ended: offer it again
        if os.environ.get("MLFLOW_RUN_ID") != ours:
            return original(*args, **kwargs)
        try:
            reason = _why_not_ours(mlflow, bound)
        except Exception:
            reason = None
        if reason is None:
            _attached.add(ours)
            return original(*args, **kwargs)
        hidden = {"MLFLOW_RUN_ID": os.environ.pop("MLFLOW_RUN_ID")}
        if reason == "store" and os.environ.get("MLFLOW_EXPERIMENT_ID") == os.environ.get(EXPERIMENT):
            hidden["MLFLOW_EXPERIMENT_ID"] = os.environ.pop("MLFLOW_EXPERIMENT_ID")  # an ID of our store
        try:
            return original(*args, **kwargs)
        finally:
            for key, value in hidden.items():
                os.environ.setdefault(key, value)

    setattr(start_run, _MARK, True)
    return start_run


# --------------------------------------------------------------------------- create_run


def _note(entry: dict[str, Any]) -> None:
    path = os.environ.get(LINKS)
    if not path:
        return
    line = (json.dumps(entry) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write per line: lines of concurrent processes never interleave
    finally:
        os.close(fd)


def _wrap_create_run(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def create_run(*args: Any, **kwargs: Any) -> Any:
        ours = os.environ.get(RUN)
        if not ours:
            return original(*args, **kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
            tags = dict(bound.arguments.get("tags") or {})
            tags.setdefault(LAUNCHED_BY, ours)
            bound.arguments["tags"] = tags
        except Exception:
            return original(*args, **kwargs)
        run = original(*bound.args, **bound.kwargs)
        try:
            client = bound.arguments["self"]
            _note(
                {
                    "run_id": run.info.run_id,
                    "store": absolute_store(client.tracking_uri),
                    "experiment_id": str(run.info.experiment_id),
                    "named": bool(bound.arguments.get("run_name") or tags.get("mlflow.runName")),
                    "pid": os.getpid(),
                    "time": time.time(),
                }
            )
        except Exception:
            pass
        return run

    setattr(create_run, _MARK, True)
    return create_run


def install(mlflow: Any) -> None:
    """Wrap ``start_run`` and ``MlflowClient.create_run`` (once per process), and note that the
    hook was there for this job (then no run is looked for by its creation time alone)."""
    try:
        if os.environ.get(RUN):
            _note({"hook": "installed", "pid": os.getpid()})
    except Exception:
        pass
    try:
        fluent = mlflow.tracking.fluent
        client = mlflow.tracking.client.MlflowClient
        if not getattr(fluent.start_run, _MARK, False):
            wrapped = _wrap_start_run(fluent.start_run, mlflow)
            fluent.start_run = wrapped  # what mlflow.log_* call when no run is active
            mlflow.start_run = wrapped
        if not getattr(client.create_run, _MARK, False):
            client.create_run = _wrap_create_run(client.create_run)
    except Exception:
        pass


def tidy(mlflow: Any, status: str) -> None:
    """After a callable entrypoint, in reprotrain's own process: end the runs the code left active
    (each in its own store, with the job's status), and put MLflow's process-global tracking URI
    and experiment back as they were before it, so that nothing leaks into the next job."""
    stores = {entry["run_id"]: entry["store"] for entry in read_notes(os.environ.get(LINKS))[0]}
    for _ in range(100):
        try:
            active = mlflow.active_run()
            if active is None:
                break
            mlflow.set_tracking_uri(stores.get(active.info.run_id) or os.environ.get(STORE))
            mlflow.end_run(status)  # pops the run first: a failure here cannot loop
        except Exception:
            continue
    try:
        mlflow.set_tracking_uri(None)
    except Exception:
        pass
    # no public call unsets these: set_experiment's choice, the last run, autologging turned on
    fluent = getattr(getattr(mlflow, "tracking", None), "fluent", None)
    try:
        fluent._active_experiment_id = None  # type: ignore[union-attr]
        fluent._last_active_run_id.set(None)  # type: ignore[union-attr]
    except Exception:
        pass
    try:
        from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

        enabled = [name for name, conf in AUTOLOGGING_INTEGRATIONS.items() if not conf.get("disable", False)]
    except Exception:
        enabled = []
    for name in enabled:
        try:
            target = mlflow if name == "mlflow" else getattr(mlflow, name)
            target.autolog(disable=True)
        except Exception:
            continue


def read_notes(path: str | None) -> tuple[list[dict[str, Any]], bool]:
    """What a ``REPROTRAIN_LINKS`` file says, read once: the runs noted in it, in the order they
    were created, and whether the hook was installed in any process of the job."""
    if not path:
        return [], False
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return [], False
    entries = []
    installed = False
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        installed = installed or entry.get("hook") == "installed"
        if isinstance(entry.get("run_id"), str):
            entries.append(entry)
    return entries, installed


def first_python(path: str | None) -> dict[str, Any] | None:
    """The first Python process of the job that noted itself (executable and prefix)."""
    found = pythons(path)
    return found[0] if found else None


def pythons(path: str | None) -> list[dict[str, Any]]:
    """Every Python process of the job that noted itself (executable and prefix), in order."""
    found: list[dict[str, Any]] = []
    if not path:
        return found
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("prefix"), str):
                    found.append(entry)
    except OSError:
        pass
    return found


# --------------------------------------------------------------------------- import hook


@contextmanager
def when_imported(name: str, callback: Callable[[Any], None]) -> Iterator[None]:
    """Call ``callback(module)`` right after top-level module ``name`` is first imported inside
    the block (at once if it already is). The module keeps its own spec and loader: only that
    loader's ``exec_module`` is wrapped, for this one import."""
    if name in sys.modules:
        callback(sys.modules[name])
        yield
        return
    finder = _After(name, callback)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)


class _After(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, callback: Callable[[Any], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one import only: the real finders take it from here
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        inner = loader.exec_module
        callback = self.callback

        def exec_module(module: Any) -> None:
            inner(module)
            del loader.exec_module  # the class's own again
            callback(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _chain() -> None:
    """Run the ``sitecustomize`` that this one hides (a distribution's, a virtualenv's)."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # imported by Python at start-up, from PYTHONPATH
    if os.environ.get(RUN):
        sys.meta_path.insert(0, _After("mlflow", install))
        try:  # which Python ran the code: the record describes that environment
            _note({"python": sys.executable, "prefix": sys.prefix, "pid": os.getpid()})
        except Exception:
            pass
    try:
        _chain()
    except Exception:
        pass
