"""Sweeps (`reprotrain run -m ...`): one parent MLflow run per sweep, one child run per job.

The parent is created by the first job that starts, under a file lock (jobs may run in launcher
worker processes), so a sweep that Hydra rejects before any job starts creates no run at all.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprotrain import __version__
from reprotrain.adapters.store_helper import AnyTracker, tracker_for
from reprotrain.core.record import data_digest
from reprotrain.core.secrets import Masker, secret_env_values, url_secrets
from reprotrain.fileio import write_json

if TYPE_CHECKING:
    from reprotrain.launch import Session

__all__ = ["finish_parent", "parent_for_job"]


def parent_for_job(session: Session, tracker: AnyTracker) -> str:
    """The sweep's parent run ID, creating the run if this is the first job to ask."""
    directory = Path(session.session_dir)
    with open(directory / "parent.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "parent.json"
        if path.is_file():
            return str(json.loads(path.read_text(encoding="utf-8"))["run_id"])
        masker = Masker(
            secret_env_values(os.environ) | url_secrets([*(session.sweep_overrides or []), *session.argv])
        )
        check = session.check
        overrides = masker.overrides(session.sweep_overrides or [])
        tags = {
            "mlflow.source.git.commit": check.git.commit,
            "reprotrain.git.commit": check.git.commit,
            "reprotrain.git.branch": check.git.branch,
            "reprotrain.git.remote": check.git.remote,
            "reprotrain.pinned": "true" if check.pinned else "false",
            "reprotrain.data.digest": data_digest(check.data),
            "reprotrain.overrides": json.dumps(overrides),
            "reprotrain.sweep": "true",
            "mlflow.runName": "sweep",
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
    tracker.set_tags(run_id, {"reprotrain.exit_code": str(exit_code), "reprotrain.sweep.jobs": str(len(jobs))})
    tracker.terminate(run_id, status)


def _upload_json(tracker: AnyTracker, run_id: str, name: str, payload: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tracker.log_artifacts(run_id, Path(tmp), "reprotrain")
