"""Sweeps (`reprotrain run -m ...`): one parent MLflow run per sweep, one child run per job.

The parent is created by the first job that starts, under a file lock (jobs may run in launcher
worker processes), so a sweep that Hydra rejects before any job starts creates no run at all.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprotrain import __version__
from reprotrain.adapters.dvc_config import default_remote_url, remote_secrets
from reprotrain.adapters.store_helper import AnyTracker, tracker_for
from reprotrain.core import ui
from reprotrain.core.record import MAX_TAG, data_digest, short_digest_tags
from reprotrain.core.secrets import Masker, secret_env_values, url_secrets
from reprotrain.errors import ReprotrainError
from reprotrain.fileio import write_json
from reprotrain.job import dataset_schemas

if TYPE_CHECKING:
    from reprotrain.launch import Session

__all__ = ["finish_parent", "parent_for_job", "summarize", "sweep_params"]


def parent_for_job(session: Session, tracker: AnyTracker) -> str:
    """The sweep's parent run ID, creating the run if this is the first job to ask."""
    directory = Path(session.session_dir)
    with open(directory / "parent.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "parent.json"
        if path.is_file():
            return str(json.loads(path.read_text(encoding="utf-8"))["run_id"])
        masker = Masker(
            secret_env_values(os.environ)
            | url_secrets([*(session.sweep_overrides or []), *session.argv])
            | remote_secrets(Path(session.root))  # the description names the DVC remote
        )
        check = session.check
        overrides = masker.overrides(session.sweep_overrides or [])
        tags = {
            "mlflow.source.git.commit": check.git.commit,
            "mlflow.source.git.branch": check.git.branch,
            "reprotrain.git.commit": check.git.commit,
            "reprotrain.git.branch": check.git.branch,
            "reprotrain.git.remote": check.git.remote,
            "reprotrain.pinned": "true" if check.pinned else "false",
            "reprotrain.data.digest": data_digest(check.data),
            **short_digest_tags(data_digest(check.data)),
            "reprotrain.overrides": json.dumps(overrides),
            "reprotrain.sweep": "true",
            ui.RUN_NAME: ui.sweep_name(overrides),
            "mlflow.user": _user(),
            "mlflow.source.name": (session.settings.entrypoint or "")[:500],
            "mlflow.source.type": "LOCAL",
            # found by `runs --stale` (and reaped) if reprotrain is killed before it closes it
            "reprotrain.launcher": session.launcher,
        } | session.lineage.tags
        run_id = tracker.create_run(session.experiment_id, tags)
        record = {
            "schema": 1,
            "kind": "sweep",
            "run_id": run_id,
            "pinned": check.pinned,
            "problems": [p.to_dict() for p in check.problems],
            "git": {"commit": check.git.commit, "branch": check.git.branch, "remote": check.git.remote},
            "data": [vars(o) for o in check.data],
            "data_digest": data_digest(check.data),
            "overrides": overrides,
            "command": {"argv": masker.overrides(session.argv)},
            "reprotrain_version": __version__,
        }
        _upload_json(tracker, run_id, "record.json", record)
        data_remote = masker.text(default_remote_url(Path(session.root)))
        argv = masker.overrides(session.argv)
        note = ui.sweep_description(
            argv, overrides, check.git, check.pinned, check.problems, check.data, data_remote, run_id
        )
        tracker.set_tags(run_id, {ui.NOTE: masker.text(note)[:MAX_TAG]})
        # the jobs' shared inputs, with the schema the jobs give them (MLflow keeps one per experiment)
        tracker.log_data_inputs(run_id, check.data, data_remote, dataset_schemas(check.schemas, check.data, masker))
        write_json(path, {"run_id": run_id})
        return run_id


def finish_parent(session: Session, run_id: str, results: list[dict[str, Any]], exit_code: int) -> None:
    """Close the parent after every job: FINISHED when all jobs succeeded, else FAILED/KILLED."""
    tracker = tracker_for(session.tracking_uri)
    jobs = [
        {"num": num, "run_id": r.get("run_id"), "status": r.get("status"), "exit_code": r.get("exit_code")}
        for num, r in enumerate(results)
    ]
    _upload_json(tracker, run_id, "sweep.json", {"jobs": jobs})
    status = "FINISHED" if exit_code == 0 else ("KILLED" if exit_code in (130, 143) else "FAILED")
    tags = {"reprotrain.exit_code": str(exit_code), "reprotrain.sweep.jobs": str(len(jobs))}
    tags |= _summary(tracker, session, run_id, results)
    tracker.set_tags(run_id, tags)
    tracker.terminate(run_id, status)


def _summary(tracker: AnyTracker, session: Session, run_id: str, results: list[dict[str, Any]]) -> dict[str, str]:
    direction = next((str(r["direction"]) for r in results if r.get("direction")), "minimize")
    return summarize(tracker, session.experiment_id, run_id, results, session.settings.objective, direction)


def summarize(
    tracker: AnyTracker,
    experiment_id: str,
    run_id: str,
    results: list[dict[str, Any]] | None,
    objective: str | None,
    direction: str,
) -> dict[str, str]:
    """What the UI shows of a finished sweep (or a sweep's rerun): the jobs' params on the parent
    (a value every job shares as it is, a swept one as the values the jobs took), and the best job
    by ``objective`` (tags, and a line of the description), from the jobs' results (run ID and
    value; without them, from the jobs' metrics). Returns the tags to set; a failure here never
    fails the sweep."""
    try:
        children = tracker.search([experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
        # a sweep's rerun launches its jobs one by one, each job 0: then their order is the start's
        children.sort(key=lambda c: (int(c.tags.get("reprotrain.job.num", "0") or 0), c.start_time or 0))
        params = sweep_params([c.params for c in children])
        if params:
            tracker.log_params(run_id, params)
        if results is None and objective:
            results = [{"run_id": c.run_id, "value": c.metrics.get(objective)} for c in children]
        best = ui.best_job(results or [], direction) if objective else None
        if best is None or objective is None:
            return {}
        tags = {
            "reprotrain.sweep.best": best.run_id,
            "reprotrain.sweep.best_value": repr(best.value),
            "reprotrain.sweep.objective": f"{direction} {objective}",
        }
        note = tracker.get_run(run_id).tags.get(ui.NOTE, "")
    except ReprotrainError as exc:
        print(f"reprotrain: warning: the sweep's summary was not logged on {run_id} ({exc})", file=sys.stderr)
        return {}
    if ui.is_ours(note):
        name = next((c.name for c in children if c.run_id == best.run_id), "")
        line = ui.best_line(objective, direction, best, name, experiment_id, len(children))
        tags[ui.NOTE] = ui.with_best(note, line)[:MAX_TAG]
    return tags


_MAX_PARAM = 500  # a swept param lists its values up to this long (MLflow takes 6000)


def sweep_params(jobs: list[dict[str, str]]) -> dict[str, str]:
    """One param per key the jobs logged: the value they share, or the values they took, in order."""
    if not jobs:
        return {}
    keys = sorted(set().union(*jobs))
    params = {}
    for key in keys:
        values = list(dict.fromkeys(job[key] for job in jobs if key in job))
        text = values[0] if len(values) == 1 else ", ".join(values)
        params[key] = text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 1] + "…"
    return params


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a container is not worth failing a sweep
        return "unknown"


def _upload_json(tracker: AnyTracker, run_id: str, name: str, payload: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tracker.log_artifacts(run_id, Path(tmp), "reprotrain")
