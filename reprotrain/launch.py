"""Orchestration of `reprotrain run`: where the pure core meets the adapters.

The parent process checks the pins, prepares the store, then hands the command line to Hydra.
Hydra calls :func:`_task` once per job (in this process, or in a launcher's worker), and each job
opens its own MLflow run, runs the training code and closes the run with the right status.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from reprotrain.adapters import git as git_adapter
from reprotrain.adapters import hydra as hydra_adapter
from reprotrain.adapters import interpreter, store_helper, tables
from reprotrain.adapters.store_helper import HelperTracker
from reprotrain.adapters.tracking import (
    Tracker,
    check_writable_store,
    create_sqlite_store,
    default_tracking_uri,
    is_local_store,
    quick_failure,
    sqlite_file,
)
from reprotrain.core.entrypoint import Entrypoint, parse_entrypoint
from reprotrain.core.pin import (
    Problem,
    config_source_problems,
    data_problems,
    git_status_problems,
    not_pushed_problem,
    uncached_problems,
)
from reprotrain.core.pipeline import PipelinePlan, inputs_of
from reprotrain.core.record import PINNED_BY_GIT, DataOutput, GitInfo, data_digest, strip_credentials
from reprotrain.core.ui import Original
from reprotrain.errors import NotPinnedError, ReprotrainError, UsageError
from reprotrain.fileio import write_json
from reprotrain.query import this_launcher
from reprotrain.settings import Project, Settings, find_project

__all__ = [
    "LAST_RUN_FILE",
    "LaunchResult",
    "Lineage",
    "PinCheck",
    "RunOptions",
    "check_pins",
    "gate",
    "launch",
    "remember_launch",
    "run",
]

LAST_RUN_FILE = "last_run"  # run IDs of the newest `reprotrain run`, for `reprotrain show last`
DATA_MEMO_FILE = "data-memo.json"  # the last DVC check that passed (adapters/data_memo.py)


@dataclass(frozen=True)
class RunOptions:
    allow_unpinned: bool = False
    timeout: float | None = None
    require_pushed: bool = False
    data_verified: bool = False  # a rerun's worktree: its data was just restored and hashed
    accept_schema_change: bool = False  # run though an input differs from the schema contract (recorded)
    smoke: bool | None = None  # first one short job (smoke_overrides); None: for -m when smoke_multirun is set


@dataclass(frozen=True)
class PinCheck:
    """The gate's verdict and what it read on the way."""

    problems: list[Problem]
    git: GitInfo
    git_root: Path
    data: list[DataOutput] = field(default_factory=list)
    schemas: dict[str, Any] = field(default_factory=dict)  # the tables among ``data`` (adapters/tables)
    accepted: list[Problem] = field(default_factory=list)  # schema changes run with --accept-schema-change

    @property
    def pinned(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Lineage:
    """How a launch relates to an earlier run: extra tags, and for a rerun the recorded resolved
    config that composition at the same commit must give again (volatile keys aside)."""

    tags: dict[str, str] = field(default_factory=dict)
    expected: dict[str, Any] | None = None
    expected_volatile: tuple[str, ...] = ()
    expected_env_digests: dict[str, str] = field(default_factory=dict)
    original: Original | None = None  # the run reran or derived from, as the UI links it
    name: str = ""  # the run's name in the UI (`rerun of <original's name>`)
    # the original's branch: a rerun's worktree is detached at the original's commit, and the
    # commit came from that branch (an empty branch said "detached" of a run that was not)
    branch: str = ""


@dataclass(frozen=True)
class Replay:
    """Recorded jobs launched again through Hydra's launcher (`rerun` of a sweep, or of a job that
    ran on a launcher): each job's overrides and lineage, in order, and the sweep parent they go
    under (None: one job rerun on its own, with no parent)."""

    jobs: tuple[tuple[tuple[str, ...], Lineage], ...]
    parent: str | None
    sweep_overrides: tuple[str, ...] = ()  # the original sweep's, as its jobs are named


@dataclass(frozen=True)
class Session:
    """What every job of one `reprotrain run` shares; pickled to launcher workers as it is."""

    session_dir: str
    root: str
    settings: Settings
    tracking_uri: str
    experiment_id: str
    check: PinCheck
    argv: list[str]
    environment: dict[str, Any]
    options: RunOptions
    lineage: Lineage = field(default_factory=Lineage)
    sweep_overrides: list[str] | None = None  # set for `-m`: the jobs share one parent run
    launcher: str = ""  # `host:pid:start` of the reprotrain process that launched the jobs
    # when the launch began (wall clock): a file in an output dir whose status changed before it
    # is not the job's (an earlier run left it in a reused dir); see job._changed_since
    started_ns: int = 0
    pipeline: PipelinePlan | None = None  # set when the entrypoint is `dvc repro [targets]`
    # a replay (`rerun` through the launcher): job N's lineage is job_lineages[N]
    job_lineages: tuple[Lineage, ...] = ()
    # the launch's own REPROTRAIN_/MLFLOW_/DVC_ variables (no secret among them), set in a launcher's
    # worker for its jobs: a Ray worker has the environment of `ray start`, not the launch's
    job_env: dict[str, str] = field(default_factory=dict)

    def lineage_for(self, num: int) -> Lineage:
        return self.job_lineages[num] if num < len(self.job_lineages) else self.lineage


def ensure_state_dir(project: Project) -> Path:
    """reprotrain's state directory, ignored by git without the user editing any .gitignore."""
    state = project.state_dir
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# reprotrain state (runs, store, outputs): never committed\n*\n", encoding="utf-8")
    return state


def check_pins(
    project: Project,
    require_pushed: bool = False,
    data_verified: bool = False,
    config_sources: list[tuple[Path, str]] | None = None,
    hash_data: bool = False,
) -> PinCheck:
    """The pin gate (DESIGN.md §6): every reason the code and data are not pinned, at once.

    git is asked once (`git status --porcelain=v2 --branch`), DVC once for its status (reusing its
    stored hashes) and once for the cache's object ids; the remotes only when ``require_pushed``.
    """
    from reprotrain.adapters import dvc as dvc_adapter

    require_pushed = require_pushed or project.settings.require_pushed
    hash_data = hash_data or project.settings.hash_data

    snap = git_adapter.snapshot(project.root)
    if snap is None:
        problems = [
            Problem(
                "not-a-repo",
                str(project.root),
                "not inside a git repository",
                'git init && git add -A && git commit -m "initial commit"',
            )
        ]
        return PinCheck(problems, GitInfo("", "", ""), project.root)
    problems = git_status_problems(snap.state)
    problems.extend(_config_problems(snap.root, config_sources or [(project.config_dir, "config_dir")]))
    problems.extend(
        Problem(
            "submodule-missing",
            path,
            "submodule not checked out: the code the commit pins is not in the workspace",
            f"git submodule update --init {path}",
        )
        for path in snap.uninitialized_submodules
    )
    if require_pushed and snap.state.commit:
        has_remote, pushed = git_adapter.commit_on_remote(snap.root)
        if not pushed:
            problems.append(not_pushed_problem(snap.state.branch, has_remote))
    memo = None if problems or require_pushed else project.state_dir / DATA_MEMO_FILE
    data = dvc_adapter.snapshot(
        project.root,
        snap.root,
        check_remote=require_pushed,
        hash_files=hash_data,
        verified=data_verified,
        memo=memo,
        commit=snap.state.commit or "",
    )
    problems.extend(data.problems)
    uncached = [(o.path, o.source) for o in data.uncached]
    tracked = git_adapter.tracked_paths(snap.root, [p for p, _ in uncached])
    problems.extend(uncached_problems(uncached, tracked))
    pinned_by_git = [replace(o, source=o.source + PINNED_BY_GIT) for o in data.uncached if o.path in tracked]
    outputs = sorted([*data.outputs, *pinned_by_git], key=lambda o: o.path)
    declared = [os.path.relpath(project.root / p, snap.root) for p in project.settings.inputs]
    problems.extend(
        data_problems(
            [(o.path, o.source) for o in outputs],
            declared,
            # a .dvc file DVC cannot see is named already: "no DVC-tracked data" would say less
            project.settings.has_data and not any(p.kind == "data-hidden-by-gitignore" for p in data.problems),
            data.is_dvc_repo,
        )
    )
    # the tables' schemas: of the data DVC vouches for (they are remembered by its hash); a data
    # problem of an output leaves it out, and the contract then says nothing of it either
    schemas: dict[str, Any] = {}
    if project.settings.schemas:
        troubled = {p.path for p in problems if p.kind.startswith("data-")}
        readable = [o for o in outputs if o.path not in troubled]
        schemas = tables.schemas_of(snap.root, readable)
        problems.extend(schema_problems(project, readable, schemas))
    git = GitInfo(snap.state.commit or "", snap.state.branch or "", snap.remote, os.fspath(snap.root))
    return PinCheck(problems, git, snap.root, outputs, schemas)


def schema_problems(project: Project, outputs: list[DataOutput], schemas: dict[str, Any]) -> list[Problem]:
    """Each input that differs from the committed schema contract (none without one), with the fix."""
    from reprotrain.core.schema import CONTRACT_FILE, contract_changes

    where = project.root / CONTRACT_FILE
    contract, wrong = tables.load_contract(where)
    shown = os.path.relpath(where, Path.cwd()) if where.is_relative_to(Path.cwd()) else str(where)
    if wrong:
        return [Problem("schema-contract", shown, f"the schema contract {wrong}", f"fix it, or `git rm {shown}`")]
    if contract is None:
        return []
    problems = []
    for output in outputs:
        if output.path not in schemas and output.path not in contract:
            continue  # not a table, and none is expected
        changes = contract_changes(contract.get(output.path), schemas.get(output.path))
        if changes:
            problems.append(
                Problem(
                    "schema-change",
                    output.path,
                    f"differs from {CONTRACT_FILE}: " + "; ".join(changes),
                    f"reprotrain schema accept {output.path} && git commit {shown} -m 'accept the schema of "
                    f"{output.path}', or run with --accept-schema-change (recorded on the run)",
                )
            )
    return problems


_CONFIG_SUFFIXES = (".yaml", ".yml")


def _config_problems(git_root: Path, sources: list[tuple[Path, str]]) -> list[Problem]:
    """Every directory Hydra composes from must be in the commit (see config_source_problems)."""
    resolved = [(os.path.realpath(path), how) for path, how in sources]
    root = os.path.realpath(git_root)
    ignored = {}
    for path, _how in resolved:
        if os.path.isdir(path) and (path == root or path.startswith(root + os.sep)):
            ignored[path] = git_adapter.ignored_files(git_root, os.path.relpath(path, root), _CONFIG_SUFFIXES)
    return config_source_problems(resolved, root, ignored)


def gate(cwd: Path | None = None, require_pushed: bool = False, hash_data: bool = False) -> dict[str, Any]:
    """`reprotrain check`: the gate alone, as plain data (pinned, problems, git, data)."""
    project = find_project(cwd)
    check = check_pins(project, require_pushed, hash_data=hash_data)
    return {
        "pinned": check.pinned,
        "problems": [p.to_dict() for p in check.problems],
        "warnings": _check_warnings(project, check),
        "git": {"commit": check.git.commit, "branch": check.git.branch, "remote": check.git.remote},
        "data": [asdict(o) for o in check.data],
        "data_digest": data_digest(check.data),
        "project": str(project.root),
    }


def _check_warnings(project: Project, check: PinCheck) -> list[dict[str, str]]:
    """What does not stop a run here but will stop its rerun elsewhere."""
    from reprotrain.adapters.dvc_config import default_remote

    if not check.data:
        return []
    found = default_remote(project.root)
    if found is not None and found[1].name == "config" and found[1].parent.name == ".dvc":
        return []  # in the repository's own config: every clone has it
    fix = "dvc remote add -d <name> <url> && git commit .dvc/config -m 'DVC remote' && dvc push"
    if found is None:
        message = "no default DVC remote: a rerun from another clone or machine cannot fetch the data"
    else:
        message = (
            f"the default DVC remote {found[0]!r} is set only in {found[1]}, which another clone does not have: "
            "a rerun there cannot fetch the data"
        )
        fix = f"dvc remote add -d -f {found[0]} <url> && git commit .dvc/config -m 'DVC remote' (if every clone may)"
    return [{"kind": "no-dvc-remote", "path": "", "message": message, "fix": fix}]


def environment() -> dict[str, Any]:
    """This interpreter's environment (adapters/interpreter), its distributions remembered in the
    user's cache by the stats of their metadata."""
    return interpreter.describe(str(environment_memo()))


def environment_memo() -> Path:
    """Where this interpreter's distributions are remembered (one file per interpreter)."""
    import hashlib

    from reprotrain.fileio import user_cache

    key = hashlib.sha256(f"{sys.executable}\0{sys.prefix}".encode()).hexdigest()[:24]
    return user_cache("environments") / f"{key}.json"


def tracking_uri(project: Project) -> str:
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or project.settings.tracking_uri
        or default_tracking_uri(project.state_dir)
    )


def experiment_name(project: Project) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or project.settings.experiment_name or project.name


def artifact_location(uri: str, project: Project, name: str) -> str | None:
    """Where a new experiment keeps artifacts: never MLflow's default `./mlruns` in the working
    tree. Beside a SQLite file; in the state directory for other local stores; servers decide."""
    if not is_local_store(uri):
        return None
    db = sqlite_file(uri)
    if db is not None:
        return str(db.parent / "artifacts" / _slug(name))
    return str(project.state_dir / "artifacts" / _slug(name))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "default"


def _gate_while_importing(
    project: Project,
    require_pushed: bool,
    verified: bool,
    import_mlflow: bool = True,
    config_sources: list[tuple[Path, str]] | None = None,
) -> tuple[PinCheck, dict[str, Any]]:
    """Run the gate (git, DVC) in a forked process while this one imports Hydra (and MLflow,
    unless the store's helper serves it): on two cores the gate then costs no wall time.
    Nothing is written before the gate's verdict."""
    import multiprocessing

    if (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return check_pins(project, require_pushed, verified, config_sources), environment()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    args = (send, os.getpid(), project, require_pushed, verified, config_sources)
    gate = context.Process(target=_gate_child, args=args)
    gate.start()
    send.close()
    try:
        hydra_adapter.warm_imports()
        if import_mlflow:
            import mlflow.tracking  # noqa: F401  (the import, not the store: nothing is opened yet)
        env_record = environment()  # here, not in the fork: this side is idle otherwise
        try:
            kind, value = receive.recv()
        except EOFError:  # the fork died without an answer (killed, out of memory)
            gate.join()
            kind, value = "error", ReprotrainError(f"the pin gate's process died (exit {gate.exitcode})")
    finally:
        if gate.is_alive():  # interrupted here (Ctrl-C): the gate is not waited for
            gate.kill()
        gate.join()
        receive.close()
    if kind == "error":
        raise value
    return value, env_record


def _gate_child(send: Any, parent: int, *args: Any) -> None:
    """The gate in the fork: it dies with its parent (a SIGTERM or SIGKILL during the gate leaves
    nothing behind; a Ctrl-C is the parent's to handle) and sends back its verdict or its error."""
    from reprotrain.adapters.process import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    try:
        reply: tuple[str, Any] = ("ok", check_pins(*args))
    except ReprotrainError as exc:
        reply = ("error", exc)
    except Exception as exc:  # anything else is a bug: reported, not swallowed
        reply = ("error", ReprotrainError(f"the pin gate failed: {type(exc).__name__}: {exc}"))
    send.send(reply)
    send.close()


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Importing MLflow, SQLAlchemy and Hydra makes long-lived objects by the million, and the
    cyclic garbage collector would walk them all again at every full pass (≈0.1 s of a launch).
    Collect rarely while they import, then freeze them out of later passes and restore the
    thresholds before any training code runs."""
    import gc

    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 100_000), max(old[1], 50), max(old[2], 100))
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*old)


MIN_FREE_MB = 16  # REPROTRAIN_MIN_FREE_MB: below this, a launch is refused before anything is written


def _check_free_space(root: Path) -> None:
    """A disk too full to hold a run's record, console log and store rows: refused in one line
    before the store, the run or Hydra's output dir is touched (a run half-written on a full
    disk cannot be closed)."""
    try:
        wanted = float(os.environ.get("REPROTRAIN_MIN_FREE_MB") or MIN_FREE_MB)
    except ValueError:
        wanted = MIN_FREE_MB  # a typo does not switch the check off
    try:
        info = os.statvfs(root)
    except OSError:
        return
    free = info.f_bavail * info.f_frsize / 1e6
    if free < wanted:
        raise ReprotrainError(
            f"only {free:.1f} MB free on the disk of {root}; a run needs about {wanted:g} MB to be recorded",
            hint="free space on that disk (the DVC cache, .reprotrain/outputs and old checkpoints are the "
            "usual culprits), or set REPROTRAIN_MIN_FREE_MB lower",
        )


def _prepare_store(uri: str, name: str, location: str | None, helper: HelperTracker | None = None) -> str:
    """Reach the store before any job starts (failing within seconds if it is down), create and
    migrate it once, and mark runs left RUNNING by a launcher that died as KILLED."""
    from reprotrain.query import reap_stale

    with quick_failure(), _store_lock(uri):
        db = sqlite_file(uri)
        if db is not None and helper is None:
            create_sqlite_store(db)
        tracker = helper or Tracker(uri)
        experiment_id = tracker.ensure_experiment(name, location)
        reap_stale(tracker, [experiment_id])
    return experiment_id


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Two launches on a fresh SQLite store would race in its schema migration: the first to
    take this lock (beside the database file) creates and migrates it, the other waits."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


_ROOT_DIR_VALUES = {".", "./", "${hydra:runtime.cwd}", "${hydra.runtime.cwd}"}


def _names_the_root(project: Project, value: Any) -> bool:
    """Whether an output dir setting, as written, is the project root (or above it): Hydra
    1.0-era apps set `hydra.run.dir: .` so that the code runs where it was started."""
    if not isinstance(value, str):
        return False
    text = value.strip().strip("'\"")
    if text in _ROOT_DIR_VALUES:
        return True
    if "${" in text or not text:
        return False
    where = (project.root / text).resolve()
    return where == project.root or where in project.root.parents


def _output_overrides(project: Project, args: hydra_adapter.HydraArgs, config_name: str, job_name: str) -> list[str]:
    """Send Hydra's output dirs into the state dir unless the user chose them (config or command).
    An output dir that is the project root is not taken as it is: the run's files would mix with
    the project's and dirty the tree; the job runs in the root all the same (hydra.job.chdir=false)."""
    extra = []
    stamp = "${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"
    chdir = False
    for key, sub in (("hydra.run.dir", "outputs"), ("hydra.sweep.dir", "multirun")):
        given = hydra_adapter.override_value(args, key)
        if given is None:
            given = hydra_adapter.primary_config_value(project.config_dir, config_name, key)
        if given is not None and _names_the_root(project, given):
            print(
                f"reprotrain: note: {key} is the project root ({given}); this run's Hydra files and outputs go to "
                f"{project.state_dir / sub}/ instead, and the code still runs in {project.root}",
                file=sys.stderr,
            )
            given, chdir = None, True
        if given is None:
            extra.append(f"{key}={hydra_adapter.quote_value(str(project.state_dir / sub) + '/' + stamp)}")
    if chdir and not hydra_adapter.sets_key(args, "hydra.job.chdir"):
        extra.append("hydra.job.chdir=false")
    if not hydra_adapter.sets_key(args, "hydra.job.name"):
        extra.append(f"hydra.job.name={job_name}")
    return extra


def _check_defaults_overrides(project: Project, args: hydra_adapter.HydraArgs, config_name: str) -> None:
    """`+group=x` for a group the defaults list already names (`experiment: null`, the idiom of
    Hydra's docs) fails in Hydra with `Multiple values for experiment`: say what to type instead."""
    for override in args.overrides:
        if not override.startswith("+") or override.startswith("++") or "=" not in override:
            continue
        group, value = override[1:].split("=", 1)
        other_dirs = args.namespace.config_dir or args.namespace.config_path  # groups reprotrain does not see
        if not other_dirs and _meant_a_group(project, config_name, group, value):
            print(
                f"reprotrain: note: {override} adds a plain key {group}={value!r} to the config: there is no config "
                f"group {project.config_dir.name}/{group}/ (if a group was meant, create "
                f"{project.config_dir.name}/{group}/{value}.yaml; ++{group}={value} adds the key without this note)",
                file=sys.stderr,
            )
        named = hydra_adapter.group_in_defaults(project.config_dir, config_name, group)
        if named is not None and (project.config_dir / group.replace(".", "/")).is_dir():
            plain = override[1:]
            raise UsageError(
                f"{override}: the defaults list of {config_name} already has `{named}`, so the group is "
                f"set with {plain}, not added with +",
                hint=f"reprotrain run {plain}",
            )


def _meant_a_group(project: Project, config_name: str, name: str, value: str) -> bool:
    """`+experiment=baseline` where conf/ has no `experiment/`: Hydra adds a key, while the idiom
    (and the word after `=`, a name rather than a number) say a config group was meant."""
    if not name.isidentifier() or not value.isidentifier() or value.lower() in {"true", "false", "null", "none"}:
        return False
    if (project.config_dir / name).is_dir():
        return False
    if hydra_adapter.primary_config_value(project.config_dir, config_name, name) is not None:
        return False  # the key is there already: Hydra refuses the + itself
    searchpath = hydra_adapter.primary_config_value(project.config_dir, config_name, "hydra.searchpath")
    return searchpath is None  # groups may live in another search path: Hydra knows, reprotrain does not


def version_base(project: Project) -> str:
    """The version_base for hydra.main: the setting, else 1.1 for Hydra 1.0-era configs."""
    if project.settings.hydra_version_base:
        return project.settings.hydra_version_base
    return "1.1" if hydra_adapter.uses_package_group(project.config_dir) else "1.3"


@dataclass(frozen=True)
class LaunchResult:
    exit_code: int
    results: list[dict[str, Any]]
    sweep_run_id: str | None = None

    @property
    def run_ids(self) -> list[str]:
        return [r["run_id"] for r in self.results if r.get("run_id")]


def run(tokens: list[str], options: RunOptions, cwd: Path | None = None) -> int:
    """`reprotrain run`: returns the exit code (DESIGN.md §7). With a smoke run first (--smoke,
    or `smoke_multirun` for -m), the real run or sweep is launched only if it succeeds."""
    project = find_project(cwd)
    if _smoke_wanted(project, tokens, options):
        code = _smoke(project, tokens, options)
        if code:
            return code
    result = launch(project, tokens, options)
    remember_launch(project, [result.sweep_run_id] if result.sweep_run_id else result.run_ids)
    return result.exit_code


SMOKE_TAG = "reprotrain.smoke"


def _smoke_wanted(project: Project, tokens: list[str], options: RunOptions) -> bool:
    args = hydra_adapter.parse_args(tokens)
    if not args.runs_jobs:
        return False
    wanted = options.smoke if options.smoke is not None else (args.multirun and project.settings.smoke_multirun)
    if wanted and not project.settings.smoke_overrides:
        raise UsageError(
            "a smoke run needs the overrides that make a job short",
            hint='set smoke_overrides under [tool.reprotrain] (e.g. smoke_overrides = ["trainer.max_epochs=1", '
            '"+data.limit=200"]), or run with --no-smoke',
        )
    return bool(wanted)


def _smoke(project: Project, tokens: list[str], options: RunOptions) -> int:
    """One short job here (the sweep's first, with smoke_overrides), tagged as a smoke run and kept
    out of `last`: 0 when it succeeded, else its exit code, said in one line."""
    smoke, left = hydra_adapter.smoke_tokens(tokens, project.settings.smoke_overrides)
    for override in left:
        print(f"reprotrain: smoke run: {override} cannot be enumerated: left at the config's value", file=sys.stderr)
    print(f"reprotrain: smoke run first: {' '.join(smoke) or '(no overrides)'}", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = launch(
        project,
        smoke,
        replace(options, smoke=False),
        lineage=Lineage(tags={SMOKE_TAG: "true"}),
        argv0=("reprotrain", "run", "--smoke"),
    )
    seconds = time.monotonic() - started
    run_id = result.run_ids[0] if result.run_ids else "(none)"
    if result.exit_code:
        print(
            f"reprotrain: smoke run {run_id} failed (exit {result.exit_code}) in {seconds:.1f} s: nothing else was "
            f"launched; see: reprotrain show {run_id}",
            file=sys.stderr,
        )
        return result.exit_code
    print(f"reprotrain: smoke run {run_id} passed in {seconds:.1f} s; launching the run", file=sys.stderr, flush=True)
    return 0


def remember_launch(project: Project, run_ids: list[str]) -> None:
    """What `last` names from now on: the newest launch's run, or its sweep's parent run."""
    if run_ids:
        ensure_state_dir(project)
        (project.state_dir / LAST_RUN_FILE).write_text("\n".join(run_ids) + "\n", encoding="utf-8")


def launch(
    project: Project,
    tokens: list[str],
    options: RunOptions,
    *,
    uri: str | None = None,
    experiment_id: str | None = None,
    lineage: Lineage | None = None,
    argv0: tuple[str, ...] = ("reprotrain", "run"),
    replay: Replay | None = None,
) -> LaunchResult:
    """Gate, prepare the store, and run every Hydra job of ``tokens`` in ``project`` (with ``replay``:
    its jobs, through the launcher ``tokens`` configure)."""
    args = hydra_adapter.parse_args(tokens)
    config_name = args.config_name or project.settings.config_name
    os.chdir(project.root)
    _check_defaults_overrides(project, args, config_name)
    if not args.runs_jobs:  # --help, --cfg, --info: Hydra prints; nothing runs, nothing is recorded
        # Hydra's help names the app after the job (`launch is powered by Hydra.`): name the job after the
        # project (nothing runs), so that an app_name of the project's own config still wins
        named = []
        if args.namespace.help and not hydra_adapter.sets_key(args, "hydra.job.name"):
            named = [f"hydra.job.name={hydra_adapter.quote_value(project.name)}"]
        return LaunchResult(_hydra(project, config_name, hydra_adapter.build_argv(args, named), _no_job, None), [])

    if not project.settings.entrypoint:
        raise UsageError(
            f"no entrypoint set for the project at {project.root}",
            hint='add entrypoint = "python train.py" (or "module:function") under [tool.reprotrain] in pyproject.toml',
        )
    entry = parse_entrypoint(project.settings.entrypoint)
    with _pipeline_runner_ahead(project, entry, args, config_name):
        return _launch_jobs(
            project, tokens, args, config_name, entry, options, uri, experiment_id, lineage, argv0, replay
        )


def _pipeline_runner_ahead(
    project: Project, entry: Entrypoint, args: hydra_adapter.HydraArgs, config_name: str
) -> AbstractContextManager[None]:
    """A `dvc repro` entrypoint's runner started now, when the first job runs in this process (a
    run, or a sweep on Hydra's basic launcher): see pipeline.runner_started_ahead."""
    from reprotrain.core.pipeline import parse_repro

    try:
        is_pipeline = parse_repro(entry.text) is not None
    except ValueError:
        is_pipeline = False  # refused with its message by _pipeline_plan
    if not is_pipeline or (
        args.multirun and hydra_adapter.launcher_choice(args, project.config_dir, config_name) not in (None, "basic")
    ):
        return nullcontext()
    from reprotrain.pipeline import runner_started_ahead

    return runner_started_ahead(project.root)


def _launch_jobs(
    project: Project,
    tokens: list[str],
    args: hydra_adapter.HydraArgs,
    config_name: str,
    entry: Entrypoint,
    options: RunOptions,
    uri: str | None,
    experiment_id: str | None,
    lineage: Lineage | None,
    argv0: tuple[str, ...],
    replay: Replay | None,
) -> LaunchResult:
    uri = uri or tracking_uri(project)
    with _rare_collections():
        # MLflow is then imported by the helper, not here; none is started before the gate's
        # verdict (the first job starts one, for the next launch, once the store exists)
        helper = store_helper.connect(uri, start=False)
        sources = hydra_adapter.config_sources(args, project.config_dir, config_name, project.root)
        check, env_record = _gate_while_importing(
            project, options.require_pushed, options.data_verified, helper is None, sources
        )
        pipeline = _pipeline_plan(project, entry, check)
        if pipeline is not None:  # what the pipeline makes again is no reason to refuse it
            kept = [p for p in check.problems if not _recomputed(p, pipeline, project.root, check.git_root)]
            rel = os.path.relpath(project.root.resolve(), check.git_root.resolve())
            read = {o.path for o in inputs_of(check.data, pipeline, "" if rel == "." else rel + "/")}
            # the contract is of the pipeline's inputs: a product of its stages is made anew
            kept = [p for p in kept if not (p.kind == "schema-change" and p.path not in read)]
            check = replace(check, problems=kept)
        if options.accept_schema_change:  # run anyway, and say so in the record
            changed = [p for p in check.problems if p.kind == "schema-change"]
            check = replace(check, problems=[p for p in check.problems if p not in changed], accepted=changed)
        if not check.pinned and not options.allow_unpinned:
            raise NotPinnedError(check.problems)  # before anything is written: no run, no output dir
        if pipeline is not None:
            _refuse_uncommitted(check)
        if lineage is not None and lineage.branch and not check.git.branch:
            check = replace(check, git=replace(check.git, branch=lineage.branch))
        check_writable_store(uri)  # a read-only store would fail the job's first write
        _check_free_space(project.root)
        ensure_state_dir(project)

        name = experiment_name(project)
        experiment_id = (
            experiment_id
            or os.environ.get("MLFLOW_EXPERIMENT_ID")
            or _prepare_store(uri, name, artifact_location(uri, project, name), helper)
        )
    session_dir = project.state_dir / "sessions" / uuid.uuid4().hex
    (session_dir / "jobs").mkdir(parents=True)
    if not check.pinned and (check.git_root / ".git").exists():
        git_adapter.save_unpinned_evidence(check.git_root, session_dir / "unpinned")
    session = Session(
        session_dir=str(session_dir),
        root=str(project.root),
        settings=project.settings,
        tracking_uri=uri,
        experiment_id=experiment_id,
        check=check,
        argv=[*argv0, *tokens],
        environment=env_record,
        options=options,
        lineage=lineage or Lineage(),
        sweep_overrides=_sweep_overrides(args, replay),
        launcher=this_launcher(),
        started_ns=time.time_ns(),
        pipeline=pipeline,
        job_lineages=tuple(lineage for _, lineage in replay.jobs) if replay else (),
        job_env=_job_environment(),
    )
    launcher = hydra_adapter.launcher_choice(args, project.config_dir, config_name) if args.multirun else None
    _warn_out_of_reach(uri, launcher, project.state_dir)
    if entry.module and entry.function:
        _import_entry(project, entry.module, entry.function)
    task = functools.update_wrapper(functools.partial(_task, session), _task)
    argv = hydra_adapter.build_argv(args, _output_overrides(project, args, config_name, entry.job_name))
    if replay is not None:
        argv += _replay_overrides(session_dir, replay)
    keep_session = False
    try:
        try:
            with _stopped_by_signals(args.multirun):
                code = _hydra(project, config_name, argv, task, session_dir, launcher)
        except _Stopped as stop:  # a sweep stopped between jobs or while workers ran them
            code = 128 + stop.signum
            print(f"reprotrain: sweep stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
            # a cluster's jobs run on without this process: each still reads its config from the
            # session (its code may not have started yet), so the session stays for them
            from reprotrain.core.cluster import runs_elsewhere

            keep_session = runs_elsewhere(launcher)
        results = _job_results(session_dir)
        exit_code = code or next((r["exit_code"] for r in results if r.get("exit_code")), 0)
        parent = sweep_parent_id(session)
        if parent is not None:
            from reprotrain.sweep import finish_parent

            finish_parent(session, parent, results, exit_code)
            print(
                f"reprotrain: sweep {parent}: {len(results)} job(s); see: reprotrain runs --sweep {parent}",
                file=sys.stderr,
            )
        return LaunchResult(exit_code, results, parent)
    finally:
        if not keep_session:
            shutil.rmtree(session_dir, ignore_errors=True)


# what a worktree of the commit would not have: a pipeline runs there, so it cannot run these
_NOT_IN_THE_COMMIT = {
    "untracked", "conflict", "submodule-moved", "submodule-dirty", "staged", "modified", "no-commit",
    "data-modified", "data-not-cached",
}  # fmt: skip
_OUTPUT_PROBLEMS = {"data-missing", "data-modified", "data-not-cached", "data-not-pushed"}


_FOR_JOBS = ("REPROTRAIN_", "MLFLOW_", "DVC_")


def _job_environment() -> dict[str, str]:
    """The variables the jobs are launched with that a launcher's worker may not have inherited;
    never one that holds a secret (the session is pickled to the workers, by some to disk)."""
    from reprotrain.core.secrets import is_secret_name, secret_env_values

    return {
        key: value
        for key, value in os.environ.items()
        # a value that is, or holds, a secret (a password in a URL) is left out whole
        if key.startswith(_FOR_JOBS) and not is_secret_name(key) and not secret_env_values({key: value})
    }


@contextmanager
def _launch_environment(session: Session) -> Iterator[None]:
    """In a launcher's worker (not the launching process), the launch's variables during the job."""
    from reprotrain.adapters.process import variables_set

    with variables_set({} if this_launcher() == session.launcher else session.job_env):
        yield


def _sweep_overrides(args: hydra_adapter.HydraArgs, replay: Replay | None) -> list[str] | None:
    """What a sweep's jobs share (their parent's overrides); None when the jobs have no parent."""
    if replay is not None:
        return list(replay.sweep_overrides) if replay.parent else None
    return list(args.overrides) if args.multirun else None


def _replay_overrides(session_dir: Path, replay: Replay) -> list[str]:
    """Hydra's sweeper for a replay: hydra_plugins/reprotrain_replay launches the listed jobs."""
    jobs_file = session_dir / "replay.json"
    write_json(jobs_file, [list(overrides) for overrides, _ in replay.jobs])
    if replay.parent:  # the jobs go under the rerun's parent (sweep.parent_for_job finds it here)
        write_json(session_dir / "parent.json", {"run_id": replay.parent})
    # relative to the project root, where the launch runs Hydra: no `$` or `\\` of the user's path
    # in an override (Hydra's grammar and OmegaConf's interpolation would read them)
    relative = os.path.relpath(jobs_file)
    given = relative if re.fullmatch(r"[\w./-]+", relative) else hydra_adapter.quote_value(str(jobs_file))
    return ["hydra/sweeper=reprotrain_replay", f"hydra.sweeper.jobs_file={given}"]


def _pipeline_plan(project: Project, entry: Entrypoint, check: PinCheck) -> PipelinePlan | None:
    """The stages of a `dvc repro` entrypoint (core/pipeline.py), checked before anything is written."""
    from reprotrain.core.pipeline import parse_repro

    try:
        parsed = parse_repro(entry.text)
    except ValueError as exc:
        raise UsageError(f"entrypoint {entry.text!r}: {exc}", hint='entrypoint = "dvc repro [stage ...]"') from exc
    if parsed is None or not check.git.commit:
        return None  # no commit: the gate says so
    from reprotrain.pipeline import plan_for

    plan = plan_for(project.root, ensure_state_dir(project), check.git.commit, *parsed)
    if not plan.reads_params:
        raise UsageError(
            f"no stage of `{entry.text}` reads params from params.yaml: the composed config would not reach it",
            hint="declare what each stage reads in dvc.yaml (params: [train.lr]), as `dvc exp run` needs too",
        )
    return plan


def _recomputed(problem: Problem, plan: PipelinePlan, root: Path, git_root: Path) -> bool:
    """A pin problem a pipeline run does not have: a stale dvc.lock, a changed or missing output
    of the workspace (the stages run again in a worktree of the commit, from their inputs)."""
    from reprotrain.core.pipeline import is_input

    if problem.kind in ("stage-changed", "stage-dep-changed"):
        return True
    if problem.kind not in _OUTPUT_PROBLEMS:
        return False
    try:
        prefix = root.resolve().relative_to(git_root.resolve()).as_posix()
    except ValueError:
        prefix = "."
    path = problem.path
    if prefix != "." and path.startswith(prefix + "/"):
        path = path[len(prefix) + 1 :]
    return not is_input(path, plan)


def _refuse_uncommitted(check: PinCheck) -> None:
    left = sorted({p.path or p.kind for p in check.problems if p.kind in _NOT_IN_THE_COMMIT})
    if left:
        raise UsageError(
            "a pipeline entrypoint runs the committed pipeline in a worktree of the commit, and what is not "
            f"committed would not be in it: {', '.join(left[:8])}",
            hint="commit it (git add -A && git commit; dvc commit for data) and run again; "
            "`dvc exp run` runs uncommitted changes",
        )


def _import_entry(project: Project, module: str, function: str) -> None:
    """Import a callable entrypoint's module before Hydra composes, as an `@hydra.main` script
    is imported before its decorator runs: what the module sets when imported (`PROJECT_ROOT`, as
    rootutils sets it) is there for `${oc.env:...}` in `hydra.run.dir` too. Each job imports it
    again (adapters/process.load_callable), as before; MLflow's hook is in place for both."""
    from reprotrain.adapters import code_hook
    from reprotrain.adapters.process import load_callable

    hook = code_hook.in_process()
    with hook.when_imported("mlflow", hook.install):
        load_callable(module, function, project.root)


class _Stopped(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _warn_out_of_reach(uri: str, launcher: str | None, state_dir: Path) -> None:
    """One line for each of the store and the state directory that a cluster launcher's job on
    another node would not reach (core/cluster.py)."""
    from reprotrain.adapters.engine import filesystem_type
    from reprotrain.core.cluster import out_of_reach, runs_elsewhere

    if not runs_elsewhere(launcher):
        return
    store = strip_credentials(uri) if is_local_store(uri) else None
    for line in out_of_reach(launcher, store, str(state_dir), filesystem_type(str(state_dir))):
        print(f"reprotrain: warning: {line}", file=sys.stderr)


@contextmanager
def _stopped_by_signals(multirun: bool) -> Iterator[None]:
    """During a sweep, SIGTERM and SIGINT to reprotrain stop it as an exception, so the parent
    run is closed KILLED with the jobs done so far (a job running here handles them itself
    first: its code is stopped and its run closed). Without it, a sweep whose jobs run in a
    launcher's workers died at once and left its parent RUNNING."""
    from reprotrain.adapters.process import signal_handlers

    if not multirun:
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        raise _Stopped(signum)

    with signal_handlers(stop):
        yield


def _hydra(
    project: Project,
    config_name: str,
    argv: list[str],
    task: Any,
    session_dir: Path | None,
    launcher: str | None = None,
) -> int:
    try:
        hydra_adapter.run_app(project.config_dir, config_name, version_base(project), argv, task)
    except hydra_adapter.LauncherFailed as exc:  # the jobs it ran have closed their runs
        from reprotrain.core.cluster import launcher_fix

        what = f"the launcher hydra/launcher={launcher}" if launcher else "Hydra"
        fix = launcher_fix(launcher, str(exc))
        print(f"reprotrain: error: {what} failed: {exc}{f' (fix: {fix})' if fix else ''}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if (launcher or "").startswith("ray") and code == signal.SIGTERM:
            # ray.init replaces the driver's SIGTERM handler with sys.exit(15): the sweep was stopped
            raise _Stopped(signal.SIGTERM) from None
        # Hydra reports a bad override or an unknown config group itself, then exits 1 before
        # any job starts: that is a usage error, exit 2.
        if code == 1 and (session_dir is None or not any((session_dir / "jobs").iterdir())):
            print(
                "reprotrain: error: Hydra rejected the command line or the config (its message is above): "
                f"{' '.join(t for t in argv if not t.startswith(_OWN_OVERRIDES)) or '(no arguments)'}; "
                "no run was created",
                file=sys.stderr,
            )
            return UsageError.exit_code
        return code
    return 0


def sweep_parent_id(session: Session) -> str | None:
    path = Path(session.session_dir) / "parent.json"
    return json.loads(path.read_text(encoding="utf-8"))["run_id"] if path.is_file() else None


_OWN_OVERRIDES = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra.job.name=")  # what reprotrain adds


def _no_job(cfg: Any) -> None:  # Hydra needs a task function even when it only prints
    return None


def _job_results(session_dir: Path) -> list[dict[str, Any]]:
    found: dict[int, Path | dict[str, Any]] = {int(p.stem): p for p in (session_dir / "jobs").glob("*.json")}
    found |= {num: values for (where, num), values in _UNWRITTEN.items() if where == str(session_dir)}
    results = []
    for _num, item in sorted(found.items()):
        results.append(item if isinstance(item, dict) else json.loads(item.read_text(encoding="utf-8")))
    return results


_UNWRITTEN: dict[tuple[str, int], dict[str, Any]] = {}  # results a full disk would not take


def write_result(session: Session, num: int, **values: Any) -> None:
    try:
        write_json(Path(session.session_dir) / "jobs" / f"{num}.json", {"num": num, **values})
    except OSError:  # a full disk: a job run in the launcher's own process still reports its exit code
        if session.launcher.rsplit(":", 2)[1:2] != [str(os.getpid())]:
            raise  # a launcher worker: only the file reaches the launcher
        _UNWRITTEN[(session.session_dir, num)] = {"num": num, **values}
    else:
        _UNWRITTEN.pop((session.session_dir, num), None)


def _task(session: Session, cfg: Any) -> Any:
    """One Hydra job (called by Hydra, possibly in a launcher's worker process)."""
    from reprotrain.adapters.process import defer_signals, take_deferred
    from reprotrain.job import run_job

    # a job's run is never left half-recorded by SIGINT or SIGTERM
    with _launch_environment(session), defer_signals():
        value = run_job(session, cfg)
        late = take_deferred()  # arrived while the job was being recorded: stop the sweep now
    if late:
        raise SystemExit(128 + late[0])
    return value
