"""Runs a job's training code created itself: found after the code ends, linked both ways by
tags, and recorded with their metrics (`reprotrain/linked-runs.json`) for `show` and `rerun --verify`.

They are found three ways, most exact first:

1. noted by the hook in the code's process (adapters/code_site): every run any MlflowClient
   created there, in whatever store;
2. tagged ``reprotrain.launched_by`` in reprotrain's store (fluent runs of a process the hook did not
   reach, through ``MLFLOW_RUN_CONTEXT``);
3. only when the hook was in none of the code's processes (``python -E``, a replaced
   ``PYTHONPATH``) and reprotrain's store is a local file (one user writes it): runs with no
   reprotrain tag created while the code ran, those of a client that went around both.

Runs the code left RUNNING (a client's run never terminated, a worker process that exited without
MLflow's exit handler) are closed with the job's status: nothing else ever would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reprotrain.adapters import code_hook
from reprotrain.adapters.store_helper import AnyTracker
from reprotrain.adapters.tracking import RunView, Tracker, sqlite_file
from reprotrain.core.links import LinkedRun, assign_roles, portable_store
from reprotrain.core.record import strip_credentials
from reprotrain.errors import ReprotrainError

__all__ = ["LINKED_RUNS", "link_created_runs", "write_linked"]

LINKED_RUNS = "linked-runs.json"  # artifact under reprotrain/
LAUNCHED_BY = "reprotrain.launched_by"
OPENED_DURING = "reprotrain.opened_during"
CLOSED = "reprotrain.status_reason"


def link_created_runs(
    tracker: AnyTracker, run_id: str, links_file: Path, window_ms: tuple[int, int] | None, root: Path, status: str
) -> tuple[list[LinkedRun], dict[str, str]]:
    """Every run the code created during the job, with its role (see core/links.py), tagged with
    the job's run and its role, and closed with the job's ``status`` if the code left it RUNNING.
    Returns the runs as they are now and the job run's own tags."""
    notes = code_hook.read_notes(links_file)
    noted = [e for e in notes.runs if e["run_id"] != run_id]
    here = [e for e in noted if code_hook.same_store(e["store"], tracker.uri)]
    by_time = window_ms if not notes.hook_installed and _file_store(tracker.uri) else None
    runs = _in_our_store(tracker, run_id, here, by_time)
    elsewhere: dict[str, list[dict[str, Any]]] = {}
    for entry in noted:
        if entry not in here:
            elsewhere.setdefault(code_hook.store_key(entry["store"]), []).append(entry)
    clients: dict[str, AnyTracker] = {}  # another store (as shown) -> its client, opened once
    for entries in elsewhere.values():
        found, client = _in_another_store(entries[0]["store"], entries, run_id, root)
        runs += found
        if client is not None and found:
            clients[found[0].store] = client
    runs = assign_roles(runs)
    linked = [_link(clients.get(r.store, tracker), r, run_id, status) for r in runs]
    return linked, ({"reprotrain.foreign_runs": json.dumps([r.run_id for r in runs])} if runs else {})


def _file_store(uri: str) -> bool:
    """A store in a local file: a SQLite database or a directory (not a database server)."""
    return sqlite_file(uri) is not None or uri.startswith("file:") or "://" not in uri


def _in_our_store(
    tracker: AnyTracker, run_id: str, noted: list[dict[str, Any]], window_ms: tuple[int, int] | None
) -> list[LinkedRun]:
    named = {e["run_id"]: bool(e.get("named")) for e in noted}
    views: dict[str, tuple[RunView, str]] = {}
    for entry in noted:
        try:
            views[entry["run_id"]] = (tracker.get_run(entry["run_id"]), "hook")
        except ReprotrainError:
            continue  # deleted by the code itself
    for view in tracker.search_all(f"tags.`{LAUNCHED_BY}` = '{run_id}'"):
        views.setdefault(view.run_id, (view, "tag"))
    if window_ms is not None:
        start, end = window_ms
        for view in tracker.search_all(f"attributes.start_time >= {start} AND attributes.start_time <= {end}"):
            if view.run_id != run_id and not any(k.startswith("reprotrain.") for k in view.tags):
                views.setdefault(view.run_id, (view, "time"))
    views.pop(run_id, None)
    names = tracker.experiment_names([v.experiment_id for v, _ in views.values()]) if views else {}
    return [
        _linked(view, run_id, names.get(view.experiment_id, ""), "", found_by, named.get(view.run_id, False))
        for view, found_by in views.values()
    ]


def _in_another_store(
    uri: str, entries: list[dict[str, Any]], run_id: str, root: Path
) -> tuple[list[LinkedRun], Tracker | None]:
    shown = portable_store(strip_credentials(uri), str(root))
    try:
        tracker = Tracker(uri, create=False)
        views = [tracker.get_run(e["run_id"]) for e in entries]
        names = tracker.experiment_names([v.experiment_id for v in views])
    except ReprotrainError as exc:
        unread = [LinkedRun(e["run_id"], str(e.get("experiment_id", "")), store=shown, error=str(exc)) for e in entries]
        return unread, None
    found = [
        _linked(view, run_id, names.get(view.experiment_id, ""), shown, "hook", bool(entry.get("named")))
        for view, entry in zip(views, entries)
    ]
    return found, tracker


def _linked(view: RunView, run_id: str, experiment: str, store: str, found_by: str, named: bool) -> LinkedRun:
    return LinkedRun(
        run_id=view.run_id,
        experiment_id=view.experiment_id,
        experiment=experiment,
        store=store,
        nested=view.tags.get("mlflow.parentRunId") == run_id,
        name=view.name,
        named=named,
        start_time=view.start_time,
        end_time=view.end_time,
        status=view.status,
        found_by=found_by,
        metrics=dict(view.metrics),
    )


def _link(target: AnyTracker, run: LinkedRun, run_id: str, status: str) -> LinkedRun:
    """Tag one linked run with the job's run and its role; close it with ``status`` if the code
    left it RUNNING. Returns it as it is now."""
    if run.error:
        return run
    tags = {OPENED_DURING: run_id, "reprotrain.role": run.role}
    if run.status == "RUNNING":
        tags[CLOSED] = f"left RUNNING by the training code of run {run_id}; closed when its job ended"
    try:
        target.set_tags(run.run_id, tags)
        if run.status == "RUNNING":
            target.terminate(run.run_id, status)
            return replace(run, status=status)
    except ReprotrainError:
        pass  # the link from the job's run still stands
    return run


def write_linked(runs: Sequence[LinkedRun], directory: Path) -> None:
    if runs:
        rows = [r.to_dict() for r in runs]
        (directory / LINKED_RUNS).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
