"""Orchestration of `reprotrain lineage PATH[@HASH] | RUN_ID`: walk the store from data versions to
the runs that used them (their reruns and verdicts), to what those runs produced (a pipeline's
outputs), to the runs that used that; core/lineage draws it. For a run, the picture is also logged
beside it (`reprotrain/lineage/lineage.html`), so that the MLflow UI shows it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from reprotrain.core.lineage import Graph, RunNode, data_key, to_html
from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.query import data_runs, resolve_run_id, search_quote, store_uri

__all__ = ["lineage", "log_picture"]

MAX_RUNS = 500  # a walk that finds more stops, and says so


def _node(tracker: Any, view: Any) -> RunNode:
    node = _record_node(tracker, view)
    node.models = tracker.logged_models(view.experiment_id, view.run_id)
    return node


_RECORDS: dict[str, Any] = {}  # the records read during one walk, by run ID


def _record_node(tracker: Any, view: Any) -> RunNode:
    if view.run_id not in _RECORDS:
        try:
            _RECORDS[view.run_id] = tracker.read_json_artifact(view.run_id, "reprotrain/record.json")
        except ReprotrainError:
            _RECORDS[view.run_id] = {}
    record = _RECORDS[view.run_id]
    record = record if isinstance(record, dict) else {}
    inputs = [data_key(str(o.get("path")), str(o.get("hash"))) for o in record.get("data") or [] if isinstance(o, dict)]
    outputs = [
        data_key(str(o.get("path")), str(o.get("hash"))) for o in record.get("outputs") or [] if isinstance(o, dict)
    ]
    return RunNode(
        run_id=view.run_id,
        name=view.name or "",
        status=view.status or "",
        commit=str(view.tags.get("reprotrain.git.commit", "")),
        verdict=str(view.tags.get("reprotrain.verdict", "")),
        rerun_of=str(view.tags.get("reprotrain.rerun_of", "")),
        smoke=view.tags.get("reprotrain.smoke") == "true",
        inputs=inputs,
        outputs=outputs,
    )


def _walk(tracker: Any, experiment_id: str, graph: Graph, start: list[str], depth: int) -> None:
    """From the data keys ``start``: their users and makers, each run's reruns, each run's outputs
    and their users, ``depth`` steps of data -> run -> data."""
    frontier, done = list(start), set()
    for _ in range(depth):
        following: list[str] = []
        for key in frontier:
            if key in done:
                continue
            done.add(key)
            path, _, digest = key.rpartition("@")
            for view in data_runs(tracker, experiment_id, [], path, digest, MAX_RUNS):
                if len(graph.runs) >= MAX_RUNS:
                    graph.truncated = True
                    return
                if view.run_id in graph.runs or view.tags.get("reprotrain.sweep") == "true":
                    continue  # a sweep's parent: its jobs are the runs that used the data
                node = _node(tracker, view)
                graph.add_run(node)
                _reruns(tracker, experiment_id, graph, node.run_id)
                following += [k for k in node.outputs if k not in done]
        frontier = following
        if not frontier:
            return
    graph.truncated = bool(frontier)


def _reruns(tracker: Any, experiment_id: str, graph: Graph, run_id: str) -> None:
    found = tracker.search([experiment_id], f"tags.`reprotrain.rerun_of` = {search_quote(run_id)}", max_results=100)
    for view in found:
        if view.run_id not in graph.runs:
            graph.add_run(_node(tracker, view))


def _versions(tracker: Any, experiment_id: str, path: str) -> list[str]:
    """Every version of ``path`` a run used or made, by its full hash (from the records)."""
    keys: list[str] = []
    for view in data_runs(tracker, experiment_id, [], path, None, MAX_RUNS):
        node = _record_node(tracker, view)
        keys += [k for k in [*node.inputs, *node.outputs] if k.rpartition("@")[0] == path and k not in keys]
    return keys


def lineage(target: str, depth: int = 6, cwd: Path | None = None) -> tuple[Graph, list[str], str | None]:
    """(the graph, its roots, the run it was asked of or None) for ``target``: a run ID (or prefix,
    or `last`), or a DVC-tracked path, with `@HASH` (a prefix) for one version."""
    from reprotrain.adapters.store_helper import reader_for
    from reprotrain.launch import experiment_name
    from reprotrain.settings import find_project

    if depth < 1:
        raise UsageError("--depth must be at least 1")
    _RECORDS.clear()
    uri = store_uri(cwd)
    tracker = reader_for(uri)
    project = find_project(cwd)
    experiment_id = tracker.experiment_id(experiment_name(project))
    if experiment_id is None:
        raise ReprotrainError("no runs in this project's experiment yet", hint="reprotrain run ...")
    graph = Graph()
    path, _, digest = target.partition("@")
    looks_like_path = "@" in target or "/" in target or os.path.exists(target)
    if not looks_like_path:
        try:
            run_id = resolve_run_id(target, tracker, cwd)
        except ReprotrainError:
            run_id = ""
        if run_id:
            node = _node(tracker, tracker.get_run(run_id))
            graph.add_run(node)
            for source in node.inputs:  # upstream: who made what it read
                source_path, _, source_hash = source.rpartition("@")
                for view in data_runs(tracker, experiment_id, [], source_path, source_hash, 50):
                    if view.run_id not in graph.runs and _made_by(tracker, view, source):
                        graph.add_run(_node(tracker, view))
            _reruns(tracker, experiment_id, graph, run_id)
            _walk(tracker, experiment_id, graph, node.outputs, depth)
            return graph, [run_id], run_id
    git_root = _git_root(project.root)
    if os.path.exists(path):  # a path in this checkout: relative to the repository root, as recorded
        path = os.path.relpath(os.path.abspath(path), git_root)
    keys = _versions(tracker, experiment_id, path)
    if digest:
        keys = [k for k in keys if k.rpartition("@")[2].startswith(digest)]
    if not keys:
        which = f"{path}@{digest}" if digest else path
        raise ReprotrainError(
            f"no run used or made {which}",
            hint="reprotrain runs --data PATH lists the runs of a path; paths are relative to the repository root",
        )
    _walk(tracker, experiment_id, graph, keys, depth)
    return graph, keys, None


def _made_by(tracker: Any, view: Any, key: str) -> bool:
    return key in _record_node(tracker, view).outputs


def _git_root(root: Path) -> Path:
    from reprotrain.adapters import git as git_adapter

    snap = git_adapter.snapshot(root)
    return snap.root if snap is not None else root


def log_picture(run_id: str, graph: Graph, roots: list[str], cwd: Path | None = None) -> str:
    """The lineage page logged beside the run; its artifact path."""
    from reprotrain.adapters.store_helper import tracker_for

    tracker = tracker_for(store_uri(cwd), start=False)
    with tempfile.TemporaryDirectory(prefix="reprotrain-lineage-") as tmp:
        (Path(tmp) / "lineage.html").write_text(to_html(graph, roots, f"lineage of run {run_id}"), encoding="utf-8")
        tracker.log_artifacts(run_id, Path(tmp), "reprotrain/lineage")
    return "reprotrain/lineage/lineage.html"
