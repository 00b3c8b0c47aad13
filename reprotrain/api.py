"""The Python API: recorded runs as typed, frozen values, and their data as it was.

    run = reprotrain.load("last")                  # or a run ID
    run.commit, run.config["model"]["lr"], run.metrics["acc"]
    with run.open("data/train.csv") as f:          # the bytes the run read, from the DVC cache
        ...
    for row in reprotrain.runs(status="finished", data="data/train.csv"):
        ...

A thin layer over :mod:`reprotrain.query` (the functions behind `reprotrain show` and
`reprotrain runs`); nothing heavy is imported until a function is called.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, TextIO, overload

from reprotrain.errors import ReprotrainError, UsageError

__all__ = ["DataVersion", "Run", "RunSummary", "load", "runs"]


@dataclass(frozen=True)
class DataVersion:
    """One DVC output as a run recorded it."""

    path: str  # relative to the git repository's root, `/`-separated
    hash: str  # DVC's md5, `<md5>.dir` for a directory
    size: int | None  # bytes (a directory: all its files)
    nfiles: int | None  # files in a directory; None for a file
    source: str  # the `.dvc` file, or `dvc.lock:<stage>`

    @property
    def is_dir(self) -> bool:
        return self.hash.endswith(".dir")


@dataclass(frozen=True)
class Run:
    """A run as `reprotrain show RUN_ID --json` prints it, typed. Every mapping is a copy."""

    run_id: str
    name: str  # MLflow's run name
    status: str  # FINISHED, FAILED, KILLED, RUNNING, SCHEDULED
    start: datetime | None  # timezone-aware (UTC)
    end: datetime | None  # None while the run is running
    commit: str  # full SHA of the code that ran
    branch: str  # empty when HEAD was detached
    pinned: bool  # False for a run launched with --allow-unpinned
    overrides: tuple[str, ...]  # the Hydra overrides as given
    config: dict[str, Any]  # the resolved config (secret values masked)
    data: tuple[DataVersion, ...]  # every DVC output the run read (a pipeline run: its inputs)
    outputs: tuple[DataVersion, ...]  # what a pipeline run's stages made; () otherwise
    metrics: dict[str, float]
    params: dict[str, str]  # as MLflow holds them (flattened config, values cut at 6000 characters)
    rerun_of: str | None  # the run this one reran
    reproduced: bool | None  # a rerun made with --verify: whether it reproduced rerun_of; else None
    verdict: str | None  # a rerun made with --verify: reproduced, not-reproduced or nothing-to-compare
    record: dict[str, Any] = field(repr=False)  # the raw record with status, metrics and times
    root: Path | None = field(default=None, repr=False)  # the project it was loaded from

    def version(self, path: str | Path) -> DataVersion:
        """The recorded output holding ``path`` (the output itself or a file inside it)."""
        return self._locate(path)[0]

    def files(self, path: str | Path) -> tuple[str, ...]:
        """The files of a directory output as the run recorded it, as paths from the repository root."""
        version, member = self._locate(path)
        if not version.is_dir or member is not None:
            raise UsageError(f"{_rel(path)} is not a directory output of run {self.run_id}")
        from reprotrain.adapters import dvc_cache

        names = dvc_cache.directory_files(self._project_root(), version.hash)
        return tuple(f"{version.path}/{name}" for name in names)

    def data_path(self, path: str | Path) -> Path:
        """A local path holding the file's recorded bytes: the verified DVC cache file (fetched from
        the DVC remote when missing). Read it, never write it: it is the cache itself."""
        version, member = self._file(path)
        if _kept_by_git(version):
            raise UsageError(
                f"{version.path} is kept by git, not by the DVC cache: there is no cache file to point at",
                hint=f"run.open({version.path!r}) reads it",
            )
        from reprotrain.adapters import dvc_cache

        return dvc_cache.cached_file(self._project_root(), version.hash, member)

    @overload
    def open(self, path: str | Path, mode: Literal["rb"]) -> BinaryIO: ...

    @overload
    def open(
        self, path: str | Path, mode: Literal["r"] = "r", *, encoding: str = "utf-8", newline: str | None = None
    ) -> TextIO: ...

    def open(
        self, path: str | Path, mode: str = "r", *, encoding: str = "utf-8", newline: str | None = None
    ) -> BinaryIO | TextIO:
        """The file ``path`` (from the repository root; a file inside a directory output works) with
        the bytes the run recorded, whatever the workspace holds now: read from the DVC cache by
        the recorded hash, fetched from the DVC remote when the cache lacks it, and verified."""
        import io

        if mode not in ("r", "rb"):
            raise UsageError(f"Run.open: mode {mode!r} is not supported", hint='mode="r" or mode="rb"')
        version, member = self._file(path)
        if _kept_by_git(version):
            binary: BinaryIO = io.BytesIO(self._from_git(version))
        else:
            from reprotrain.adapters import dvc_cache

            binary = dvc_cache.open_object(self._project_root(), version.hash, member)
        if mode == "rb":
            return binary
        return io.TextIOWrapper(binary, encoding=encoding, newline=newline)  # type: ignore[arg-type]

    def _file(self, path: str | Path) -> tuple[DataVersion, str | None]:
        version, member = self._locate(path)
        if version.is_dir and member is None:
            raise UsageError(
                f"{version.path} is a directory output: open a file inside it",
                hint=f"run.files({version.path!r}) lists them",
            )
        if version.is_dir and _kept_by_git(version):
            raise UsageError(
                f"{version.path} is a directory git keeps (cache: false): reprotrain cannot read its files",
                hint=f"git show {self.commit[:12]}:{version.path}/<file>",
            )
        return version, member

    def _from_git(self, version: DataVersion) -> bytes:
        """An output git keeps, not DVC's cache (`cache: false`): one this pipeline run made is
        in its artifacts (`reprotrain/pipeline/`, from the project root), an input in its commit."""
        import hashlib

        root = self._project_root()
        if version in self.outputs:
            data, where = _kept_artifact(root, self.run_id, version.path), f"the artifacts of run {self.run_id}"
        else:
            from reprotrain.adapters import git as git_adapter

            data, where = git_adapter.file_at(root, self.commit, version.path), f"commit {self.commit[:12]}"
        actual = hashlib.md5(data).hexdigest()
        if actual != version.hash:
            raise ReprotrainError(
                f"{version.path} in {where} hashes to {actual}, not to the {version.hash} the run recorded"
                " (a secret masked in it, or a file edited after DVC hashed it)"
            )
        return data

    def _locate(self, path: str | Path) -> tuple[DataVersion, str | None]:
        wanted = _rel(path)
        for version in (*self.data, *self.outputs):
            if wanted == version.path:
                return version, None
            if version.is_dir and wanted.startswith(version.path + "/"):
                return version, wanted[len(version.path) + 1 :]
        known = ", ".join(v.path for v in (*self.data, *self.outputs)) or "none"
        raise UsageError(
            f"run {self.run_id} recorded no data at {wanted!r} (its DVC outputs: {known})",
            hint="give a path from the repository root, as `reprotrain show RUN_ID` lists them",
        )

    def _project_root(self) -> Path:
        if self.root is None:
            raise UsageError(
                f"run {self.run_id} was loaded outside a project: there is no DVC cache to read its data from",
                hint="reprotrain.load(run_id, cwd=<the project>)",
            )
        return self.root


@dataclass(frozen=True)
class RunSummary:
    """One row of `reprotrain runs --json`."""

    run_id: str
    name: str
    status: str
    start: datetime | None  # timezone-aware (UTC)
    end: datetime | None
    commit: str
    pinned: bool
    overrides: tuple[str, ...]
    data_digest: str  # the `reprotrain.data.digest` tag
    config_digest: str  # the `reprotrain.config.digest` tag
    metrics: dict[str, float]
    params: dict[str, str]
    reproduced: bool | None  # as Run.reproduced
    verdict: str | None  # `reproduced`, `not-reproduced` or `nothing-to-compare`
    rerun_of: str | None
    parent: str | None  # the sweep's parent run, for a job of a sweep
    outputs: dict[str, str]  # a pipeline run's outputs: path -> DVC hash


def load(run_id: str, *, cwd: str | Path | None = None) -> Run:
    """The run ``run_id`` (an ID, a unique prefix of 8 or more characters, or `last`, as the
    commands take it) of the project at ``cwd`` (default: the current directory), from the
    project's tracking store (or ``MLFLOW_TRACKING_URI``). Raises :class:`ReprotrainError` when
    it is not found (:class:`UsageError` for an ambiguous or too short prefix)."""
    from reprotrain.adapters.tracking import Tracker, quick_failure
    from reprotrain.query import load_run, store_uri

    where = Path(cwd) if cwd is not None else None
    record = load_run(run_id, where)
    with quick_failure():  # the params are the one thing `show` leaves out
        view = Tracker(store_uri(where), create=False).get_run(str(record["run_id"]))
    return _run(record, view.params, _root(where))


def runs(
    *,
    experiment: str | None = None,
    status: str | None = None,
    commit: str | None = None,
    data: str | None = None,
    data_hash: str | None = None,
    sweep: str | None = None,
    filter: str | None = None,  # as `reprotrain runs --filter`
    sort: str | None = None,
    limit: int = 100,
    cwd: str | Path | None = None,
) -> list[RunSummary]:
    """Runs of the project's experiment (or ``experiment``), newest first, as `reprotrain runs`
    filters them: ``status`` (any case), ``commit`` (a SHA or its prefix), ``data`` (runs that
    read or made this path), ``data_hash`` (a DVC hash or its prefix), ``sweep`` (the jobs of
    this sweep's parent run), ``filter`` (MLflow's search syntax, ANDed with the rest:
    ``"metrics.acc > 0.8"``); ordered by ``sort`` (`KEY[:asc|desc]`: `metrics.loss`,
    `params.model.lr:desc`, `start_time:asc`) instead of newest first; at most ``limit``."""
    from reprotrain.query import list_runs

    if limit < 1:
        raise UsageError(f"runs: limit must be at least 1, got {limit}")
    rows = list_runs(
        Path(cwd) if cwd is not None else None,
        experiment=experiment,
        status=status,
        commit=commit,
        data_path=_rel(data) if data is not None else None,
        data_hash=data_hash,
        sweep=sweep,
        limit=limit,
        filter_string=filter,
        sort=sort,
    )
    return [_summary(row) for row in rows]


def _run(record: dict[str, Any], params: Mapping[str, str], root: Path | None) -> Run:
    git = record.get("git") or {}
    config = record.get("config") or {}
    return Run(
        run_id=str(record["run_id"]),
        name=str(record.get("name") or ""),
        status=str(record.get("status", "")),
        start=to_datetime(record.get("start_time")),
        end=to_datetime(record.get("end_time")),
        commit=str(git.get("commit", "")),
        branch=str(git.get("branch", "")),
        pinned=bool(record.get("pinned", False)),
        overrides=tuple(str(o) for o in config.get("overrides") or ()),
        config=copy.deepcopy(dict(config.get("resolved") or {})),
        data=_versions(record.get("data")),
        outputs=_versions(record.get("outputs")),
        metrics=dict(record.get("metrics") or {}),
        params=dict(params),
        rerun_of=record.get("rerun_of"),
        reproduced=_flag(record.get("reproduced")),
        verdict=record.get("verdict"),
        record=record,
        root=root,
    )


def _summary(row: Mapping[str, Any]) -> RunSummary:
    return RunSummary(
        run_id=str(row["run_id"]),
        name=str(row.get("name") or ""),
        status=str(row.get("status", "")),
        start=to_datetime(row.get("start_time")),
        end=to_datetime(row.get("end_time")),
        commit=str(row.get("commit", "")),
        pinned=bool(row.get("pinned", False)),
        overrides=tuple(str(o) for o in row.get("overrides") or ()),
        data_digest=str(row.get("data_digest", "")),
        config_digest=str(row.get("config_digest", "")),
        metrics=dict(row.get("metrics") or {}),
        params=dict(row.get("params") or {}),
        reproduced=_flag(row.get("reproduced")),
        verdict=row.get("verdict"),
        rerun_of=row.get("rerun_of"),
        parent=row.get("parent"),
        outputs=dict(row.get("outputs") or {}),
    )


def to_datetime(value: int | float | str | None) -> datetime | None:
    """A recorded time as a timezone-aware datetime: epoch milliseconds (MLflow's) or ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return to_datetime(int(text))
        try:
            when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ReprotrainError(f"unreadable time in the run record: {value!r}") from None
        return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReprotrainError(f"unreadable time in the run record: {value!r}")
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _versions(rows: Sequence[Any] | None) -> tuple[DataVersion, ...]:
    return tuple(
        DataVersion(
            path=str(row.get("path", "")),
            hash=str(row.get("hash", "")),
            size=row.get("size"),
            nfiles=row.get("nfiles"),
            source=str(row.get("source", "")),
        )
        for row in rows or ()
        if isinstance(row, Mapping)
    )


def _kept_by_git(version: DataVersion) -> bool:
    from reprotrain.core.record import PINNED_BY_GIT

    return version.source.endswith(PINNED_BY_GIT)


def _kept_artifact(root: Path, run_id: str, path: str) -> bytes:
    """A pipeline output git keeps, from the run's `reprotrain/pipeline/` artifacts."""
    import tempfile

    from reprotrain.adapters.tracking import Tracker, quick_failure
    from reprotrain.query import store_uri

    git_root = next((d for d in (root, *root.parents) if (d / ".git").exists()), root)
    rel = posixpath.relpath(path, root.relative_to(git_root).as_posix())
    with tempfile.TemporaryDirectory(prefix="reprotrain-open-") as tmp, quick_failure():
        tracker = Tracker(store_uri(root), create=False)
        return tracker.download_artifacts(run_id, f"reprotrain/pipeline/{rel}", Path(tmp)).read_bytes()


def _flag(text: Any) -> bool | None:
    if isinstance(text, bool):
        return text
    return {"true": True, "false": False}.get(str(text).lower()) if text is not None else None


def _rel(path: str | Path) -> str:
    """A recorded-style path: `/`-separated, normalised, no leading `./`."""
    text = posixpath.normpath(PurePosixPath(Path(path).as_posix()).as_posix())
    return "" if text == "." else text


def _root(cwd: Path | None) -> Path | None:
    from reprotrain.settings import NoProjectError, find_project

    try:
        return find_project(cwd).root
    except NoProjectError:
        return None
