"""Reading recorded runs back: `reprotrain show`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.settings import find_project

__all__ = ["last_run_id", "load_run", "store_uri"]


def store_uri(cwd: Path | None = None) -> str:
    """The tracking store this shell points at: MLFLOW_TRACKING_URI, else the project's store."""
    from reprotrain.launch import tracking_uri

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    try:
        project = find_project(cwd)
    except UsageError as exc:
        raise UsageError(
            "no tracking store: not inside a reprotrain project and MLFLOW_TRACKING_URI is not set",
            hint="cd into the project, or export MLFLOW_TRACKING_URI=<store>",
        ) from exc
    return tracking_uri(project)


def load_run(run_id: str, cwd: Path | None = None) -> dict[str, Any]:
    """The run's record with its status, metrics and times added."""
    from reprotrain.adapters.tracking import Tracker

    if run_id == "last":
        run_id = last_run_id(cwd)
    tracker = Tracker(store_uri(cwd))
    view = tracker.get_run(run_id)
    if "reprotrain.config.digest" not in view.tags:
        raise ReprotrainError(
            f"run {run_id} in {tracker.uri} was not launched by reprotrain (it has no reprotrain record)"
        )
    record: dict[str, Any] = tracker.read_json_artifact(run_id, "reprotrain/record.json")
    record.update(
        status=view.status,
        exit_code=_int(view.tags.get("reprotrain.exit_code")),
        status_reason=view.tags.get("reprotrain.status_reason", ""),
        metrics=view.metrics,
        start_time=view.start_time,
        end_time=view.end_time,
        experiment_id=view.experiment_id,
        tracking_uri=tracker.uri,
    )
    return record


def last_run_id(cwd: Path | None = None) -> str:
    """The newest run launched from this project (the first job of the newest `reprotrain run`)."""
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
