"""Reading recorded runs back: `reprotrain show`, `runs`, `diff`, `ui`, and reaping stale runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reprotrain.adapters.tracking import quick_failure
from reprotrain.core.record import strip_credentials
from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.settings import NoProjectError, find_project
from reprotrain.spool import PARAMS_FROM_CODE

__all__ = [
    "data_runs",
    "last_run_id",
    "load_environment",
    "launcher_alive",
    "this_launcher",
    "list_runs",
    "load_run",
    "open_ui",
    "reap",
    "reap_stale",
    "resolve_run_id",
    "search_quote",
    "stale_runs",
    "store_uri",
]


def store_uri(cwd: Path | None = None) -> str:
    """The tracking store this shell points at: MLFLOW_TRACKING_URI, else the project's store."""
    from reprotrain.launch import tracking_uri

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    try:
        project = find_project(cwd)
    except NoProjectError as exc:
        raise UsageError(
            "no tracking store: not inside a reprotrain project and MLFLOW_TRACKING_URI is not set",
            hint="cd into the project, or export MLFLOW_TRACKING_URI=<store>",
        ) from exc
    return tracking_uri(project)


@quick_failure()  # an unreachable server fails in seconds, not after minutes of retries
def load_run(run_id: str, cwd: Path | None = None) -> dict[str, Any]:
    """The run's record with its status, metrics and times added."""
    from reprotrain.adapters.store_helper import reader_for

    tracker = reader_for(store_uri(cwd))
    run_id = resolve_run_id(run_id, tracker, cwd)
    view = tracker.get_run(run_id)
    if "reprotrain.config.digest" not in view.tags and view.tags.get("reprotrain.sweep") != "true":
        during = view.tags.get("reprotrain.opened_during") or view.tags.get("reprotrain.launched_by")
        if during:
            raise ReprotrainError(
                f"run {run_id} was created by the training code of reprotrain run {during}, not by reprotrain",
                hint=f"reprotrain show {during}",
            )
        raise ReprotrainError(
            f"run {run_id} in {strip_credentials(tracker.uri)} was not launched by reprotrain "
            "(it has no reprotrain record)"
        )
    record = _record(tracker, view)
    record.update(
        name=view.tags.get("mlflow.runName", ""),
        status=view.status,
        exit_code=_int(view.tags.get("reprotrain.exit_code")),
        status_reason=view.tags.get("reprotrain.status_reason", ""),
        metrics=view.metrics,
        start_time=iso_time(view.start_time),
        end_time=iso_time(view.end_time),
        rerun_of=view.tags.get("reprotrain.rerun_of"),
        derived_from=view.tags.get("reprotrain.derived_from"),
        verdict=view.tags.get("reprotrain.verdict"),
        reproduced=_bool(view.tags.get("reprotrain.reproduced")),
        verification=_verification(tracker, view),
        experiment_id=view.experiment_id,
        tracking_uri=strip_credentials(tracker.uri),
        params_from_code=_json_list(view.tags.get(PARAMS_FROM_CODE)),
        linked_runs=_linked_rows(tracker, view),
    )
    if view.tags.get("reprotrain.sweep") == "true":
        jobs = tracker.search([view.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
        record["jobs"] = [_row(j) for j in sorted(jobs, key=lambda j: int(j.tags.get("reprotrain.job.num", "0")))]
    return record


def _record(tracker: Any, view: Any) -> dict[str, Any]:
    try:
        record = tracker.read_json_artifact(view.run_id, "reprotrain/record.json")
    except ReprotrainError:
        if view.tags.get("reprotrain.sweep") != "true":
            raise
        record = None  # a sweep's rerun recorded before sweep reruns had a record: its tags say enough
    if isinstance(record, dict):
        return record
    tags = view.tags
    return {
        "schema": 1,
        "kind": "sweep",
        "run_id": view.run_id,
        "pinned": tags.get("reprotrain.pinned") == "true",
        "git": {k: tags.get(f"reprotrain.git.{k}", "") for k in ("commit", "branch", "remote")},
        "data_digest": tags.get("reprotrain.data.digest", ""),
        "overrides": _json_list(tags.get("reprotrain.overrides")),
    }


def _verification(tracker: Any, view: Any) -> list[dict[str, Any]] | None:
    """The checks `rerun --verify` made (on the rerun's run), None when it was not verified."""
    if "reprotrain.verdict" not in view.tags or view.tags.get("reprotrain.sweep") == "true":
        return None
    try:
        payload = tracker.read_json_artifact(view.run_id, "reprotrain/verification.json")
    except ReprotrainError:
        return None
    checks = payload.get("checks") if isinstance(payload, dict) else None
    return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else None


def iso_time(ms: int | None) -> str | None:
    """MLflow's epoch milliseconds as ISO 8601 in UTC, as every `--json` prints times."""
    import datetime as dt

    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


def _bool(text: str | None) -> bool | None:
    return {"true": True, "false": False}.get(text or "")


def _json_list(text: str | None) -> list[Any]:
    import json

    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _linked_rows(tracker: Any, view: Any) -> list[dict[str, Any]]:
    """The runs the training code created itself (recorded when the job ended)."""
    from reprotrain.linking import LINKED_RUNS

    if "reprotrain.foreign_runs" not in view.tags:
        return []
    try:
        rows = tracker.read_json_artifact(view.run_id, f"reprotrain/{LINKED_RUNS}")
    except ReprotrainError:  # recorded before the runs' details were kept: their IDs only
        return [{"run_id": rid} for rid in _json_list(view.tags["reprotrain.foreign_runs"])]
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    for row in rows:  # recorded in MLflow's epoch milliseconds; --json gives ISO 8601 everywhere
        for key in ("start_time", "end_time"):
            if isinstance(row.get(key), int):
                row[key] = iso_time(row[key])
    return rows


RUN_ID_PREFIX_MIN = 8  # as short as git lets a commit be named in practice; MLflow's IDs are 32 hex digits
_HEX = frozenset("0123456789abcdef")


def resolve_run_id(ref: str, tracker: Any, cwd: Path | None = None) -> str:
    """The full run ID that ``ref`` names: `last`, a full ID, or a unique prefix of 8 or more hex
    digits (as `runs` prints them), searched in every experiment of the store."""
    if ref == "last":
        return last_run_id(cwd)
    prefix = ref.strip().lower()
    if not prefix or not set(prefix) <= _HEX:
        return ref  # not an MLflow ID at all: the store says it does not exist
    if len(prefix) >= 32:
        return prefix  # a full ID (as MLflow writes them: lower case)
    if len(prefix) < RUN_ID_PREFIX_MIN:
        raise UsageError(
            f"run ID {ref!r} is too short: give at least {RUN_ID_PREFIX_MIN} characters of it",
            hint="reprotrain runs lists the runs with their IDs",
        )
    # deleted runs too: a full ID finds them, so a prefix does as well
    matches = tracker.search_all(f"attributes.run_id LIKE '{prefix}%'", max_results=20, deleted=True)
    if not matches:
        raise ReprotrainError(
            f"no run ID starts with {prefix} in {strip_credentials(tracker.uri)}", hint="reprotrain runs"
        )
    if len(matches) > 1:
        shown = ", ".join(sorted(m.run_id for m in matches))
        raise UsageError(
            f"run ID {prefix} is ambiguous: {len(matches)} runs start with it ({shown})",
            hint="give more characters of the ID",
        )
    return str(matches[0].run_id)


def last_run_id(cwd: Path | None = None) -> str:
    """The newest launch from this project: the run of the newest `reprotrain run` or `rerun`, or
    its sweep's parent run."""
    from reprotrain.launch import LAST_RUN_FILE

    project = find_project(cwd)
    path = project.state_dir / LAST_RUN_FILE
    try:
        return path.read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        raise UsageError(
            f"no run has been launched from {project.root} yet", hint="reprotrain run ..., or give a run ID"
        ) from None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def this_launcher() -> str:
    """`host:pid:start` of this process, as :func:`launcher_alive` reads it: the start time (clock
    ticks since boot) makes it unique, so a reused PID is not taken for a live launcher."""
    import socket

    try:
        start = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "0"
    return f"{socket.gethostname()}:{os.getpid()}:{start}"


def launcher_alive(tag: str, host: str | None = None) -> bool | None:
    """Whether the launcher process named by a `reprotrain.launcher` tag (`host:pid:start`) is still
    running: True/False on this host, None when it ran elsewhere (it cannot be known from here)."""
    import socket

    try:
        launcher_host, pid, start = tag.rsplit(":", 2)
    except ValueError:
        return None
    if launcher_host != (host or socket.gethostname()):
        return None
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return False
    return fields[19] == start  # same PID and same start time: the very same process


def stale_runs(tracker: Any, experiment_ids: list[str]) -> list[Any]:
    """RUNNING runs whose launcher on this host is gone (killed with SIGKILL, machine crash)."""
    running = tracker.search(experiment_ids, "attributes.status = 'RUNNING'")
    return [r for r in running if launcher_alive(r.tags.get("reprotrain.launcher", "")) is False]


def reap_stale(tracker: Any, experiment_ids: list[str]) -> list[str]:
    """Mark stale runs KILLED, with the reason and the config's params (a job logs them when its
    code ends, which a killed launcher never saw); returns their IDs."""
    from reprotrain.core.config import flatten_params
    from reprotrain.spool import log_config_params

    reaped = []
    for view in stale_runs(tracker, experiment_ids):
        reason = "its launcher died without closing it (found by a later reprotrain command)"
        tags = {"reprotrain.status_reason": reason}
        try:
            record = tracker.read_json_artifact(view.run_id, "reprotrain/record.json")
            tags |= log_config_params(tracker, view.run_id, flatten_params(record["config"]["resolved"]))
        except (ReprotrainError, KeyError, TypeError):
            pass  # no record uploaded yet: nothing to log the params from
        tracker.set_tags(view.run_id, tags)
        tracker.terminate(view.run_id, "KILLED")
        reaped.append(view.run_id)
    return reaped


@quick_failure()  # an unreachable server fails in seconds, not after minutes of retries
def reap(experiment: str | None = None, cwd: Path | None = None) -> list[str]:
    """`reprotrain runs --reap`: mark the experiment's stale RUNNING runs KILLED."""
    from reprotrain.adapters.store_helper import reader_for
    from reprotrain.launch import experiment_name

    tracker = reader_for(store_uri(cwd))
    experiment_id = tracker.experiment_id(experiment or experiment_name(find_project(cwd)))
    return reap_stale(tracker, [experiment_id] if experiment_id else [])


def open_ui(host: str, port: int, cwd: Path | None = None) -> int:
    """`reprotrain ui`: MLflow's UI on the project's store (a server's URL is opened instead)."""
    from reprotrain.ui import serve

    uri = store_uri(cwd)
    if uri.startswith(("http://", "https://")):
        import webbrowser

        print(f"the project's store is a tracking server: {strip_credentials(uri)}")
        webbrowser.open(uri)
        return 0
    return serve(uri, host, port, _experiment_page(uri, cwd))  # the page in model-training mode


def _experiment_page(uri: str, cwd: Path | None) -> str:
    """The UI's page of the project's experiment, or its list when there is none yet."""
    from reprotrain.adapters.tracking import Tracker
    from reprotrain.core.ui import TRAINING_VIEW, experiment_route
    from reprotrain.launch import experiment_name

    try:
        with quick_failure():
            found = Tracker(uri, create=False).experiment_id(experiment_name(find_project(cwd)))
    except (ReprotrainError, NoProjectError):
        found = None
    return experiment_route(found) if found else f"#/experiments?{TRAINING_VIEW}"


def search_quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


@quick_failure()  # an unreachable server fails in seconds, not after minutes of retries
def list_runs(
    cwd: Path | None = None,
    *,
    experiment: str | None = None,
    status: str | None = None,
    commit: str | None = None,
    data_path: str | None = None,
    data_hash: str | None = None,
    sweep: str | None = None,
    stale: bool = False,
    limit: int = 100,
    filter_string: str | None = None,
    sort: str | None = None,
    smoke: bool = False,
) -> list[dict[str, Any]]:
    """Runs of the project's experiment (or ``experiment``), newest first, as plain rows.
    ``filter_string`` is MLflow's search syntax, ANDed with the other filters; ``sort`` is
    `KEY[:asc|desc]` (`metrics.loss`, `params.model.lr`, `start_time`, ...). Smoke runs (`run
    --smoke`) are kept apart: listed only with ``smoke``, and then alone."""
    from reprotrain.adapters.store_helper import reader_for
    from reprotrain.launch import experiment_name

    uri = store_uri(cwd)
    tracker = reader_for(uri)
    if experiment is None:
        experiment = experiment_name(find_project(cwd))
    experiment_id = tracker.experiment_id(experiment)
    if experiment_id is None:
        raise ReprotrainError(
            f"no experiment {experiment!r} in the tracking store {strip_credentials(uri)}", hint="reprotrain run ..."
        )
    order = _order_by(sort) if sort else []
    if stale:
        views = stale_runs(tracker, [experiment_id])
    else:
        clauses = [filter_string.strip()] if filter_string and filter_string.strip() else []  # MLflow has AND only
        if status:
            clauses.append(f"attributes.status = {search_quote(status.upper())}")
        if commit:
            clauses.append(
                f"tags.`reprotrain.git.commit` = {search_quote(commit)}"
                if len(commit) == 40
                else f"tags.`reprotrain.git.commit` LIKE {search_quote(commit + '%')}"
            )
        if sweep:
            sweep = resolve_run_id(sweep, tracker, cwd)
            clauses.append(f"tags.`mlflow.parentRunId` = {search_quote(sweep)}")
        if smoke:
            clauses.append("tags.`reprotrain.smoke` = 'true'")
        # runs left out below (smoke runs, runs the code created) must not cut the listing short
        fetch = limit + 200
        if data_path or data_hash:
            views = data_runs(tracker, experiment_id, clauses, data_path, data_hash, fetch)
        elif order and order[0].startswith(("params.", "tags.")):
            # MLflow orders params and tags as strings (`10` before `9`): take every match, order them here
            views = tracker.search([experiment_id], " AND ".join(clauses), max_results=50000, order_by=order)
        else:
            views = tracker.search([experiment_id], " AND ".join(clauses), max_results=fetch, order_by=order)
    # runs the training code created itself are listed by `show` of the run they belong to
    views = [v for v in views if "reprotrain.opened_during" not in v.tags]
    views = [v for v in views if (v.tags.get("reprotrain.smoke") == "true") == smoke]
    if sort:
        views = _sorted(views, order[0])  # the same order for runs found by two searches (--data)
    return [_row(v) for v in views[:limit]]


_ATTRIBUTES = {"start_time", "end_time", "status", "run_name", "run_id"}


def _order_by(sort: str) -> list[str]:
    """`metrics.loss`, `params.model.lr:desc`, `start_time:asc` as MLflow's order_by clause."""
    key, _, direction = sort.strip().partition(":")
    direction = (direction or "asc").lower()
    if direction not in {"asc", "desc"} or not key:
        raise UsageError(f"--sort {sort!r}: give KEY or KEY:asc or KEY:desc", hint="--sort metrics.loss:asc")
    if key in _ATTRIBUTES:
        key = f"attributes.{key}"
    elif not key.startswith(("metrics.", "params.", "tags.", "attributes.")):
        raise UsageError(
            f"--sort {sort!r}: sort by metrics.NAME, params.NAME, tags.NAME or {', '.join(sorted(_ATTRIBUTES))}",
            hint="--sort metrics.loss",
        )
    kind, _, name = key.partition(".")
    return [f"{kind}.`{name}` {direction.upper()}"]


def _sorted(views: list[Any], clause: str) -> list[Any]:
    """``views`` in MLflow's order_by ``clause`` order; runs without the key last, as MLflow has them."""
    key, _, direction = clause.rpartition(" ")
    kind, _, name = key.partition(".")
    name = name.strip("`")

    def value(view: Any) -> Any:
        if kind == "attributes":
            return getattr(view, name, None) if name != "run_name" else view.tags.get("mlflow.runName")
        source = {"metrics": view.metrics, "params": view.params, "tags": view.tags}[kind]
        return source.get(name)

    known = [v for v in views if value(v) is not None]
    unknown = [v for v in views if value(v) is None]

    descending = direction == "DESC"
    if kind not in {"params", "tags"}:
        return sorted(known, key=value, reverse=descending) + unknown
    # numbers in number order (as metrics are), then other text, either way round
    numbers = [v for v in known if _number(value(v)) is not None]
    texts = [v for v in known if _number(value(v)) is None]
    return (
        sorted(numbers, key=lambda v: _number(value(v)) or 0.0, reverse=descending)
        + sorted(texts, key=lambda v: str(value(v)), reverse=descending)
        + unknown
    )


def _number(text: Any) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN has no order


def data_runs(
    tracker: Any,
    experiment_id: str,
    clauses: list[str],
    path: str | None,
    digest: str | None,
    limit: int,
    read_record: Callable[[str], Any] | None = None,
) -> list[Any]:
    """Runs that read the data (an MLflow dataset input: its DVC hash is the digest) and runs whose
    pipeline made it (the `reprotrain.outputs` tag, `|path=hash|...`), newest first. A run with
    more outputs than its tag holds is asked its record (``read_record``: run ID -> the record,
    {} when unreadable; by default read from the store)."""
    read = read_record or (lambda run_id: _read_record(tracker, run_id))
    consumed = [*clauses]
    if path:
        consumed.append(f"datasets.name = {search_quote(path)}")
    if digest:
        consumed.append(f"datasets.digest = {search_quote(digest[:36])}")
    readers = tracker.search([experiment_id], " AND ".join(consumed), max_results=limit)
    if path and digest:  # both on one dataset, not one each on two
        readers = [v for v in readers if (path, digest[:36]) in v.datasets]
    pattern = f"%|{path or '%'}={digest or ''}%"
    made = [*clauses, f"tags.`reprotrain.outputs` LIKE {search_quote(pattern)}"]
    makers = tracker.search([experiment_id], " AND ".join(made), max_results=limit)
    makers = [v for v in makers if _made(v.tags.get("reprotrain.outputs", ""), path, digest)]  # LIKE's _ is a wildcard
    cut = [*clauses, "tags.`reprotrain.outputs_truncated` = 'true'"]  # more outputs than the tag holds
    for view in tracker.search([experiment_id], " AND ".join(cut), max_results=limit):
        if view.run_id not in {v.run_id for v in makers} and _made(_record_outputs(read(view.run_id)), path, digest):
            makers.append(view)
    seen = {v.run_id for v in readers}
    views = readers + [v for v in makers if v.run_id not in seen]
    return sorted(views, key=lambda v: v.start_time or 0, reverse=True)[:limit]


def _read_record(tracker: Any, run_id: str) -> Any:
    try:
        return tracker.read_json_artifact(run_id, "reprotrain/record.json")
    except ReprotrainError:
        return {}


def _record_outputs(record: Any) -> str:
    """Every output of a run's record, in the tag's `|path=hash|` form."""
    outputs = record.get("outputs", []) if isinstance(record, dict) else []
    return "|" + "".join(f"{o.get('path')}={o.get('hash')}|" for o in outputs if isinstance(o, dict))


def _made(tag: str, path: str | None, digest: str | None) -> bool:
    for entry in tag.strip("|").split("|"):
        made_path, _, made_hash = entry.rpartition("=")
        if (path is None or made_path == path) and (digest is None or made_hash.startswith(digest)):
            return True
    return False


def _row(view: Any) -> dict[str, Any]:
    import json

    tags = view.tags
    try:
        overrides = json.loads(tags.get("reprotrain.overrides", "[]"))
    except ValueError:
        overrides = []
    return {
        "run_id": view.run_id,
        "name": tags.get("mlflow.runName", ""),
        "status": view.status,
        "start_time": iso_time(view.start_time),
        "end_time": iso_time(view.end_time),
        "overrides": overrides,
        "commit": tags.get("reprotrain.git.commit", ""),
        "data_digest": tags.get("reprotrain.data.digest", ""),
        "config_digest": tags.get("reprotrain.config.digest", ""),
        "pinned": tags.get("reprotrain.pinned") == "true",
        "metrics": view.metrics,
        "params": view.params,
        "tags": {k: v for k, v in tags.items() if not k.startswith(("mlflow.", "reprotrain."))},  # the user's
        "reproduced": _bool(tags.get("reprotrain.reproduced")),
        "verdict": tags.get("reprotrain.verdict"),
        "rerun_of": tags.get("reprotrain.rerun_of"),
        "parent": tags.get("mlflow.parentRunId"),
        "outputs": _outputs_of(tags.get("reprotrain.outputs", "")),
    }


def _outputs_of(tag: str) -> dict[str, str]:
    """path -> DVC hash of what a pipeline run made, from its `reprotrain.outputs` tag."""
    pairs = (entry.rpartition("=") for entry in tag.strip("|").split("|") if "=" in entry)
    return {path: digest for path, _, digest in pairs}


def load_environment(run_id: str, cwd: Path | None = None) -> tuple[str, dict[str, Any]]:
    """`reprotrain env`: (the run's ID, the Python environment its code ran in); a sweep's parent
    has none of its own (each job records where it ran)."""
    view = load_run(run_id, cwd)
    if view.get("kind") == "sweep":
        raise UsageError(
            f"run {view['run_id']} is a sweep: each of its jobs records the environment it ran in",
            hint=f"reprotrain runs --sweep {view['run_id'][:12]}, then reprotrain env JOB_RUN_ID",
        )
    return str(view["run_id"]), dict(view.get("environment") or {})


@quick_failure()  # an unreachable server fails in seconds, not after minutes of retries
def diff_runs(run_a: str, run_b: str, cwd: Path | None = None) -> dict[str, Any]:
    """`reprotrain diff`: config, data, code, environment and metric differences of two runs."""
    from reprotrain.adapters import dvc as dvc_adapter
    from reprotrain.adapters import git as git_adapter
    from reprotrain.core.diff import diff_config, diff_data, diff_metrics, diff_schemas, diff_where
    from reprotrain.core.verify import env_drift

    a, b = load_run(run_a, cwd), load_run(run_b, cwd)
    for run in (a, b):
        if run.get("kind") == "sweep":
            raise UsageError(
                f"run {run['run_id']} is a sweep: diff compares single runs, such as its jobs",
                hint=f"reprotrain runs --sweep {run['run_id'][:12]}, then reprotrain diff JOB_A JOB_B",
            )
    project = find_project(cwd)
    dirs = sorted({o["hash"] for o in a.get("data", []) + b.get("data", []) if o["hash"].endswith(".dir")})
    manifests = dvc_adapter.dir_manifests(project.root, dirs) if dirs else {}
    commit_a, commit_b = a.get("git", {}).get("commit", ""), b.get("git", {}).get("commit", "")
    code: dict[str, Any] = {"a": commit_a, "b": commit_b, "same": commit_a == commit_b}
    if commit_a != commit_b and git_adapter.snapshot(project.root) is not None:
        code |= git_adapter.code_changes(project.root, commit_a, commit_b)
    return {
        "a": a["run_id"],
        "b": b["run_id"],
        "config": diff_config(a.get("config", {}).get("resolved", {}), b.get("config", {}).get("resolved", {})),
        "overrides": {"a": a.get("config", {}).get("overrides"), "b": b.get("config", {}).get("overrides")},
        "groups": {  # config groups either run chose (Hydra's choices): a group may set any key
            side: sorted(str(k) for k in (run.get("config", {}).get("choices") or {}) if not str(k).startswith("hydra"))
            for side, run in (("a", a), ("b", b))
        },
        "data": diff_data(a.get("data", []), b.get("data", []), manifests),
        "schemas": diff_schemas(a.get("schemas") or {}, b.get("schemas") or {}),
        "code": code,
        "environment": diff_where(a.get("environment") or {}, b.get("environment") or {})
        + [
            {"name": n, "a": va, "b": vb} for n, va, vb in env_drift(a.get("environment", {}), b.get("environment", {}))
        ],
        "metrics": diff_metrics(a.get("metrics", {}), b.get("metrics", {})),
    }
