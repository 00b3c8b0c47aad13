"""Reading recorded runs back: `reprotrain show`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.settings import find_project

__all__ = ["load_run", "store_uri"]


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


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
