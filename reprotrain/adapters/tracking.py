"""MLflow, through MlflowClient: the store, the run, and everything logged into it.

Every call names the run explicitly (no fluent global state), so jobs in a reused worker process
cannot leak into each other.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.adapters.compat import incompatible, reports_incompatible
from reprotrain.core.record import DataOutput, strip_credentials, strip_urls
from reprotrain.core.secrets import Masker
from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.fileio import Entry, walk_tree

__all__ = [
    "RunView",
    "Tracker",
    "check_writable_store",
    "default_tracking_uri",
    "is_local_store",
    "quick_failure",
    "sqlite_file",
    "FileScan",
    "scan_file",
    "secret_pattern",
    "upload_tree",
]

_BATCH = 100  # MLflow's limit of params per log_batch call
TERMINAL = {"FINISHED", "FAILED", "KILLED"}


def default_tracking_uri(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI (query string dropped); None otherwise."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def is_local_store(uri: str) -> bool:
    """A store MLflow opens in-process (database or file), as opposed to a tracking server."""
    return not uri.startswith(("http://", "https://", "databricks"))


@contextmanager
def quick_failure(retries: int = 1, timeout: int = 10) -> Iterator[None]:
    """Fail fast on an unreachable tracking server instead of MLflow's minutes of retries
    (unless the user set MLflow's own retry variables)."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries), "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}
    added = [key for key in wanted if key not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def check_writable_store(uri: str) -> None:
    """Raise unless a run can be recorded in the `sqlite:///` store ``uri``: its database file
    and the directory SQLite writes its journal in must be writable (a store not created yet
    passes). Asked without opening the file: closing any descriptor of a SQLite database drops
    the locks this process holds on it."""
    db = sqlite_file(uri)
    if db is None:
        return
    problem = _unwritable(db)
    if problem is not None:
        raise problem


def _unwritable(db: Path) -> ReprotrainError | None:
    fix = "or export MLFLOW_TRACKING_URI=<a writable store>"
    if db.is_file() and not os.access(db, os.W_OK):
        return ReprotrainError(
            f"the tracking store {db} is read-only: no run can be recorded in it",
            hint=f"make it writable: chmod u+w {db} (chattr -i {db} if it is immutable), {fix}",
        )
    parent = db.parent
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        return ReprotrainError(
            f"the directory {parent} of the tracking store {db} is read-only: SQLite cannot write its journal there",
            hint=f"make it writable: chmod u+w {parent} (chattr -i {parent} if it is immutable), {fix}",
        )
    return None


_DAMAGED = ("file is not a database", "database disk image is malformed")
# what SQLite says when it cannot write: read-only file or directory, or a descriptor opened
# before the file became read-only (a store helper's)
_CANNOT_WRITE = ("attempt to write a readonly database", "unable to open database file", "disk I/O error")


def _store_file_problem(uri: str, exc: BaseException) -> ReprotrainError | None:
    """What is wrong with a `sqlite:///` store's file, when SQLite's error says it is the file."""
    db = sqlite_file(uri)
    if db is None:
        return None
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    damage = next((d for d in _DAMAGED if d in text), None)
    if damage is not None:
        return ReprotrainError(
            f"the tracking store {db} is not a valid SQLite database (SQLite: {damage})",
            hint=f"move it aside: mv {db} {db}.damaged; a new store is created on the next run "
            "(the runs recorded in it stay in the moved file)",
        )
    if any(c in text for c in _CANNOT_WRITE):
        return _unwritable(db)
    return None


def _one_line(text: str) -> str:
    """An error of SQLAlchemy's without its SQL, parameters and links, on one line."""
    text = re.sub(r"\(raised as a result of [^)]*\)", "", text)
    text = re.split(r"\n\[SQL: |\n\[parameters: |\n\(Background on this error", text, maxsplit=1)[0]
    return " ".join(text.split())


@contextmanager
def _mlflow_errors(action: str, uri: str) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    shown = strip_credentials(uri)  # an error names the store; never with its password
    try:
        yield
    except ReprotrainError:
        raise
    except Exception as exc:
        if isinstance(exc, ImportError) and (mismatch := incompatible(exc)) is not None:
            raise mismatch from exc  # e.g. an old MLflow beside a newer SQLAlchemy: which package to change
        problem = _store_file_problem(uri, exc)
        if problem is not None:
            raise problem from exc
        if isinstance(exc, MlflowException):
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ReprotrainError(
                    strip_urls(f"{action}: not found in the tracking store {shown}"),
                    hint="check the run ID, or set MLFLOW_TRACKING_URI to the store that holds it",
                ) from exc
            raise ReprotrainError(
                strip_urls(f"{action} failed on the tracking store {shown}: {_one_line(exc.message)}")
            ) from exc
        if isinstance(exc, (OSError, ConnectionError)):
            raise ReprotrainError(
                strip_urls(f"{action}: the tracking store {shown} is unreachable ({_one_line(str(exc))})")
            ) from exc
        # SQLAlchemy and requests errors have no common base to name here
        if type(exc).__module__.split(".")[0] in {"sqlalchemy", "requests", "urllib3", "alembic"}:
            raise ReprotrainError(
                strip_urls(f"{action}: the tracking store {shown} failed: {_one_line(str(exc))}")
            ) from exc
        raise


class RunView:
    """What `show` needs of a stored run."""

    def __init__(self, run: Any) -> None:
        self.run_id: str = run.info.run_id
        self.status: str = run.info.status
        self.experiment_id: str = run.info.experiment_id
        self.start_time: int | None = run.info.start_time
        self.end_time: int | None = run.info.end_time
        self.tags: dict[str, str] = dict(run.data.tags)
        self.metrics: dict[str, float] = dict(run.data.metrics)
        self.params: dict[str, str] = dict(run.data.params)
        self.name: str = run.info.run_name or self.tags.get("mlflow.runName", "")
        inputs = getattr(run, "inputs", None)
        self.datasets: list[tuple[str, str]] = [
            (d.dataset.name, d.dataset.digest) for d in (inputs.dataset_inputs if inputs else [])
        ]


@reports_incompatible
def create_sqlite_store(db: Path) -> None:
    """Make a new SQLite store atomically: created and migrated beside ``db`` under a temporary
    name, then moved into place. A launch killed meanwhile (SIGINT, SIGKILL) leaves no
    half-migrated database that every later command would fail on (`duplicate column name`).
    The caller holds the store's lock; leftovers of earlier attempts are removed."""
    if db.exists():
        return
    for leftover in db.parent.glob(f"{glob.escape(db.name)}.creating-*"):
        leftover.unlink(missing_ok=True)
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    aside = db.with_name(f"{db.name}.creating-{os.getpid()}")
    try:
        if not _from_template(aside, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH):
            store = SqlAlchemyStore(f"sqlite:///{aside}", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
            store.engine.dispose()
            _save_template(aside)
        os.link(aside, db)  # never over a store something else made meanwhile (FileExistsError)
        aside.unlink()
    except FileExistsError:
        aside.unlink(missing_ok=True)
    except Exception as exc:
        aside.unlink(missing_ok=True)
        raise ReprotrainError(f"creating the tracking store {db} failed: {_first_line(exc)}") from exc


def _template_path() -> Path | None:
    """Where an empty, migrated store for this MLflow and SQLAlchemy is kept (the user's cache
    dir): migrating a new SQLite store through every MLflow migration takes a second or more,
    copying a migrated one milliseconds. None when no cache dir can be named."""
    import mlflow
    import sqlalchemy

    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache"))
    if not base or base.startswith("~"):
        return None
    return Path(base) / "reprotrain" / f"empty-store-mlflow-{mlflow.__version__}-sqlalchemy-{sqlalchemy.__version__}.db"


def _from_template(aside: Path, artifact_root: str) -> bool:
    """``aside`` as a copy of the kept empty store, its Default experiment made here as MLflow
    makes it (artifact location under ``artifact_root``, created now); False without a template."""
    import shutil
    import sqlite3

    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    template = _template_path()
    if template is None or not template.is_file():
        return False
    try:
        shutil.copyfile(template, aside)
        now = int(time.time() * 1000)
        location = str(append_to_uri_path(resolve_uri_if_local(artifact_root), "0"))
        with contextlib.closing(sqlite3.connect(aside)) as conn, conn:
            (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if not version:
                raise sqlite3.DatabaseError("no alembic version")
            conn.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                "WHERE experiment_id = 0",
                (location, now, now),
            )
    except (OSError, sqlite3.Error, TypeError):
        aside.unlink(missing_ok=True)
        template.unlink(missing_ok=True)  # a damaged template is made again by the next new store
        return False
    return True


def _save_template(created: Path) -> None:
    """Keep a copy of a store MLflow just created and migrated, before anything is logged to it."""
    import shutil

    template = _template_path()
    if template is None or template.exists():
        return
    tmp = template.with_name(f"{template.name}.{os.getpid()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(created, tmp)
        os.replace(tmp, template)  # whole or not at all
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache dir only costs the next new store a second


def _same_location(stored: str, given: str) -> bool:
    """Whether an experiment's artifact location is ``given`` (MLflow may store it as a file URI)."""
    from urllib.parse import unquote, urlsplit

    if stored.startswith("file:"):
        stored = unquote(urlsplit(stored).path)
    return os.path.normpath(stored) == os.path.normpath(given)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Tracker:
    """One MLflow tracking store."""

    @reports_incompatible
    def __init__(self, uri: str, create: bool = True) -> None:
        """``create=False`` (read-only commands): a local SQLite store that does not exist yet is
        an error, not a new empty database in the user's tree."""
        import logging

        db = sqlite_file(uri)
        if not create and db is not None and not db.is_file():
            raise ReprotrainError(
                f"no tracking store at {db}: no run has been recorded here yet",
                hint="reprotrain run ... first, or set MLFLOW_TRACKING_URI to the store that holds the runs",
            )
        from mlflow.tracking import MlflowClient

        # after the import: importing mlflow sets its own and alembic's loggers to INFO
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial tables" chatter
        logging.getLogger("alembic").setLevel(logging.WARNING)  # nor alembic's migration lines (MLflow 3.9)
        # nor the traceback MLflow logs for a database error it raises: reprotrain reports it in one line
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        # progress bars belong to terminals; reprotrain shows its own progress where it helps
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.uri = uri
        with _mlflow_errors("opening the tracking store", uri):
            self.client = MlflowClient(tracking_uri=uri)

    def ensure_experiment(self, name: str, artifact_location: str | None) -> str:
        """Create (and for a fresh database, migrate) the store and the experiment, once, before
        any job runs: concurrent jobs on a fresh store otherwise race in the schema migration.
        A new experiment opens in the UI's model-training mode; so does an existing one that
        reprotrain made (its artifact location is the one reprotrain gives) and that has no mode
        yet. A mode the user chose is never changed."""
        from mlflow.exceptions import MlflowException

        from reprotrain.core.ui import EXPERIMENT_KIND, TRAINING

        with _mlflow_errors(f"opening experiment {name!r}", self.uri):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    raise ReprotrainError(
                        f"experiment {name!r} is deleted in {strip_credentials(self.uri)}",
                        hint=f"mlflow experiments restore --experiment-id {experiment.experiment_id}, "
                        "or set experiment_name in [tool.reprotrain]",
                    )
                ours = artifact_location is not None and _same_location(experiment.artifact_location, artifact_location)
                if ours and EXPERIMENT_KIND not in experiment.tags:
                    self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, TRAINING)
                return str(experiment.experiment_id)
            try:
                return str(
                    self.client.create_experiment(
                        name, artifact_location=artifact_location, tags={EXPERIMENT_KIND: TRAINING}
                    )
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = self.client.get_experiment_by_name(name)
                assert experiment is not None
                return str(experiment.experiment_id)

    def create_run(self, experiment_id: str, tags: Mapping[str, str]) -> str:
        with _mlflow_errors("creating the run", self.uri):
            run = self.client.create_run(experiment_id, tags=dict(tags))
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        with _mlflow_errors("logging params", self.uri):
            for start in range(0, len(items), _BATCH):
                self.client.log_batch(run_id, params=items[start : start + _BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        from mlflow.entities import Metric

        items = [Metric(k, v, timestamp_ms, 0) for k, v in metrics.items()]
        with _mlflow_errors("logging metrics", self.uri):
            for start in range(0, len(items), 1000):
                self.client.log_batch(run_id, metrics=items[start : start + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        with _mlflow_errors("setting tags", self.uri):
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_data_inputs(
        self,
        run_id: str,
        outputs: Sequence[DataOutput],
        remote: str = "",
        schemas: Mapping[str, tuple[str | None, dict[str, Any]]] | None = None,
    ) -> None:
        """One MLflow dataset input per DVC output, its DVC hash as the digest; its source names the
        `.dvc` file or `dvc.lock` stage and the DVC remote (core/ui.py); a table's schema and
        profile fields (rows, columns) from ``schemas``, by path."""
        if not outputs:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        from reprotrain.core.ui import dataset_profile, dataset_source

        schemas = schemas or {}
        inputs = [
            DatasetInput(
                Dataset(
                    name=o.path,
                    digest=o.hash[:36],
                    source_type="dvc",
                    source=dataset_source(o, remote),
                    schema=schemas.get(o.path, (None, {}))[0],
                    profile=dataset_profile(o, remote, schemas.get(o.path, (None, {}))[1]),
                ),
                tags=[InputTag("mlflow.data.context", "training")],
            )
            for o in outputs
        ]
        with _mlflow_errors("logging dataset inputs", self.uri):
            for attempt in range(5):
                try:
                    self.client.log_inputs(run_id, datasets=inputs)
                    break
                except Exception as exc:
                    # parallel jobs registering the same dataset in one experiment race on its
                    # unique key; the loser finds the winner's row on the next attempt
                    if attempt == 4 or "UNIQUE constraint" not in str(exc) and "duplicate key" not in str(exc):
                        raise
                    time.sleep(0.05 * (attempt + 1))

    def log_artifacts(
        self, run_id: str, local_dir: Path, artifact_path: str | None = None, masker: Masker | None = None
    ) -> None:
        """Upload a directory as fileio.walk_tree sees it: a link out of it, a dangling link and a
        special file (FIFO, socket) are never sent; with a masker, files holding a secret are sent
        masked, whatever their size. The local files are left as they are: the upload tree is made
        of hard links, and of masked copies where a file holds a secret."""
        if not local_dir.is_dir() or not any(local_dir.iterdir()):
            return
        with tempfile.TemporaryDirectory(prefix="upload-", dir=local_dir.parent) as tmp:
            source = upload_tree(local_dir, Path(tmp) / local_dir.name, masker)
            with _mlflow_errors(f"uploading artifacts from {local_dir}", self.uri):
                self.client.log_artifacts(run_id, os.fspath(source), artifact_path)

    def search_all(self, filter_string: str, max_results: int = 1000, deleted: bool = False) -> list[RunView]:
        """Runs in every experiment of the store (deleted experiments too) matching ``filter_string``;
        deleted runs too when ``deleted``."""
        from mlflow.entities import ViewType

        runs = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
        with _mlflow_errors("searching runs", self.uri):
            experiments = [e.experiment_id for e in self.client.search_experiments(view_type=ViewType.ALL)]
            found = self.client.search_runs(
                experiments, filter_string=filter_string, max_results=max_results, run_view_type=runs
            )
        return [RunView(r) for r in found]

    def experiment_names(self, experiment_ids: Sequence[str]) -> dict[str, str]:
        """ID -> name of each experiment (an ID not found is left out)."""
        names = {}
        with _mlflow_errors("reading experiments", self.uri):
            for experiment_id in dict.fromkeys(experiment_ids):
                try:
                    names[experiment_id] = self.client.get_experiment(experiment_id).name
                except Exception:  # deleted for good, or never there
                    continue
        return names

    def search(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 1000,
        order_by: Sequence[str] = (),
    ) -> list[RunView]:
        """Runs matching ``filter_string`` (MLflow's search syntax), newest first unless ``order_by``.
        A filter or order MLflow rejects is a usage error: only a user's can be malformed."""
        from mlflow.exceptions import MlflowException

        with _mlflow_errors("searching runs", self.uri):
            try:
                runs = self.client.search_runs(
                    list(experiment_ids),
                    filter_string=filter_string,
                    max_results=max_results,
                    order_by=list(order_by) or None,
                )
            except MlflowException as exc:
                if exc.error_code != "INVALID_PARAMETER_VALUE":
                    raise
                raise UsageError(
                    f"MLflow rejected the search: {_one_line(exc.message)}",
                    hint="e.g. --filter \"metrics.loss < 0.1 and params.model.lr = '0.1'\" --sort metrics.loss",
                ) from None
        return [RunView(r) for r in runs]

    def experiment_id(self, name: str) -> str | None:
        with _mlflow_errors(f"experiment {name!r}", self.uri):
            experiment = self.client.get_experiment_by_name(name)
        return None if experiment is None else str(experiment.experiment_id)

    def terminate(self, run_id: str, status: str) -> None:
        with _mlflow_errors(f"marking run {run_id} {status}", self.uri):
            self.client.set_terminated(run_id, status=status)

    def get_run(self, run_id: str) -> RunView:
        with _mlflow_errors(f"run {run_id}", self.uri):
            return RunView(self.client.get_run(run_id))

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        """The run's artifact ``path`` (a file or a directory), downloaded under ``dest``."""
        with _mlflow_errors(f"artifact {path} of run {run_id}", self.uri):
            return Path(self.client.download_artifacts(run_id, path, os.fspath(dest)))

    def logged_models(self, experiment_id: str, run_id: str) -> list[dict[str, str]]:
        """The models a run logged (MLflow 3's logged models: `log_model`, autolog): each one's
        ID, name and URI; none where the store or this MLflow has no logged models."""
        search = getattr(self.client, "search_logged_models", None)
        if search is None:
            return []
        try:
            found = search([experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=100)
        except Exception:  # a store without logged models (an older server): nothing to show
            return []
        return [{"model_id": str(m.model_id), "name": str(m.name or ""), "uri": f"models:/{m.model_id}"} for m in found]

    def read_json_artifact(self, run_id: str, path: str) -> Any:
        with _mlflow_errors(f"artifact {path} of run {run_id}", self.uri), tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text(encoding="utf-8"))


_CHUNK = 1 << 20
_TEXT_PROBE = 8192  # a NUL byte in the first 8 KiB makes a file binary (git's rule)


@dataclass(frozen=True)
class FileScan:
    """One read of an output file: its sha256, whether it holds a secret, whether it is binary,
    or why it could not be read (then nothing else is known)."""

    sha256: str = ""
    secret: bool = False
    binary: bool = False
    error: str = ""

    @property
    def held_back(self) -> bool:
        """A binary file with a secret inside: masking would corrupt it, sending it would leak."""
        return self.secret and self.binary


def scan_file(entry: Entry, secrets: tuple[Any, int] | None) -> FileScan:
    """Read the file the walk saw (never through a link swapped in since: the open refuses links,
    and the file must be the very inode the walk found) once: hash, secret search, binary probe."""
    import hashlib

    assert entry.source is not None
    try:
        fd = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        return FileScan(error=exc.strerror or str(exc))
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != entry.inode:
            return FileScan(error="replaced while it was read")
        digest = hashlib.sha256()
        found = binary = False
        tail = b""
        first = True
        try:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                if first:
                    binary, first = b"\0" in chunk[:_TEXT_PROBE], False
                if secrets is not None and not found:
                    window = tail + chunk
                    found = secrets[0].search(window) is not None
                    tail = window[-secrets[1] :]
        except OSError as exc:
            return FileScan(error=exc.strerror or str(exc))
    return FileScan(digest.hexdigest(), found, binary)


def upload_tree(
    source: Path, target: Path, masker: Masker | None = None, copy: bool = False, entries: list[Entry] | None = None
) -> Path:
    """``target``: what an upload of ``source`` sends (see Tracker.log_artifacts). Each file is a
    hard link (``copy``: a copy, which later writes to the original do not reach), a masked copy
    when it holds a secret, or left out: a binary file holding a secret, a file that cannot be
    read, or one replaced since the walk. Secrets in file names are masked too."""
    secrets = secret_pattern(masker)
    target.mkdir(parents=True, exist_ok=True)
    for entry in walk_tree(source) if entries is None else entries:
        if entry.source is None:
            continue  # a link out of the tree, a special file, an unreadable directory
        scan = scan_file(entry, secrets)
        if scan.error or scan.held_back:
            continue
        dest = target / (masker.text(entry.rel) if masker else entry.rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if scan.secret and secrets is not None:
                _write_masked(entry.source, dest, *secrets)
            else:
                _place(entry, dest, copy)
        except OSError:
            dest.unlink(missing_ok=True)  # left out, as an unreadable file is
    return target


def _place(entry: Entry, dest: Path, copy: bool) -> None:
    """Link (or copy) the file into the upload tree, and make sure what landed there is the
    regular file the walk saw, not a link put in its place meanwhile."""
    import shutil

    assert entry.source is not None
    if copy:
        fd = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src, dest.open("wb") as out:
            if (os.fstat(src.fileno()).st_dev, os.fstat(src.fileno()).st_ino) != entry.inode:
                raise OSError("replaced while it was read")
            shutil.copyfileobj(src, out, _CHUNK)
        return
    try:
        os.link(entry.source, dest, follow_symlinks=False)
    except OSError:
        _place(entry, dest, copy=True)  # another filesystem
        return
    info = dest.lstat()
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != entry.inode:
        dest.unlink()
        raise OSError("replaced while it was read")


def secret_pattern(masker: Masker | None) -> tuple[Any, int] | None:
    """The secrets as one bytes pattern, and how many bytes one may span (longest first, so that
    a secret that contains another is masked whole). Undecodable bytes in a secret (from the
    environment) are kept as the bytes they were."""
    import re

    if not masker or not masker.values:
        return None
    values = [os.fsencode(v) for v in masker.values]
    return re.compile(b"|".join(re.escape(v) for v in values)), max(len(v) for v in values)


def _write_masked(path: Path, dest: Path, pattern: Any, keep: int) -> None:
    """Copy ``path`` with every secret replaced, one chunk at a time (a checkpoint of gigabytes
    never sits in memory); a secret across two chunks is kept whole in the carried part."""
    from reprotrain.core.secrets import MASK

    mask = MASK.encode()
    carry = b""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src, dest.open("wb") as out:
        while True:
            chunk = src.read(_CHUNK)
            window = carry + chunk
            if not chunk:
                out.write(pattern.sub(mask, window))
                return
            cut = max(0, len(window) - keep)
            for match in pattern.finditer(window):
                if match.start() >= cut:
                    break
                if match.end() > cut:
                    cut = match.start()
                    break
            out.write(pattern.sub(mask, window[:cut]))
            carry = window[cut:]
