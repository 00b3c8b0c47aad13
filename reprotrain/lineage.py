"""Orchestration of `reprotrain lineage PATH[@HASH] | RUN_ID`: walk the store from data versions to
the runs that used them (their reruns and verdicts), to what those runs produced (a pipeline's
outputs), to the runs that used that; core/lineage draws it. For a run, the picture is also logged
beside it (`reprotrain/lineage/lineage.html`), so that the MLflow UI shows it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.core.lineage import Graph, RunNode, data_key, to_html
from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.query import data_runs, resolve_run_id, search_quote, store_uri

__all__ = ["Found", "lineage", "log_picture"]

MAX_RUNS = 500  # a walk that finds more stops, and says so


@dataclass
class Found:
    """What `lineage` found: the graph, its roots, and for a run its ID and where its picture was
    logged beside it (or why it could not be)."""

    graph: Graph
    roots: list[str]
    run_id: str | None = None
    logged: str | None = None  # the artifact path of the picture
    warning: str | None = None  # the picture could not be logged: why


class _Walk:
    """One walk of the store: each run's record read once."""

    def __init__(self, tracker: Any, experiment_id: str) -> None:
        self.tracker = tracker
        self.experiment_id = experiment_id
        self.graph = Graph()
        self.records: dict[str, Any] = {}

    def record(self, run_id: str) -> Any:
        if run_id not in self.records:
            try:
                self.records[run_id] = self.tracker.read_json_artifact(run_id, "reprotrain/record.json")
            except ReprotrainError:
                self.records[run_id] = {}
        return self.records[run_id]

    def data_runs(self, path: str, digest: str | None, limit: int = MAX_RUNS) -> list[Any]:
        return data_runs(self.tracker, self.experiment_id, [], path, digest, limit, self.record)

    def node(self, view: Any) -> RunNode:
        node = self.record_node(view)
        node.models = self.tracker.logged_models(view.experiment_id, view.run_id)
        return node

    def record_node(self, view: Any) -> RunNode:
        record = self.record(view.run_id)
        record = record if isinstance(record, dict) else {}
        return RunNode(
            run_id=view.run_id,
            name=view.name or "",
            status=view.status or "",
            commit=str(view.tags.get("reprotrain.git.commit", "")),
            verdict=str(view.tags.get("reprotrain.verdict", "")),
            rerun_of=str(view.tags.get("reprotrain.rerun_of", "")),
            smoke=view.tags.get("reprotrain.smoke") == "true",
            inputs=_keys(record.get("data")),
            outputs=_keys(record.get("outputs")),
        )

    def walk(self, start: list[str], depth: int) -> None:
        """From the data keys ``start``: their users and makers, each run's reruns, each run's
        outputs and their users, ``depth`` steps of data -> run -> data."""
        graph = self.graph
        frontier, done = list(start), set()
        for _ in range(depth):
            following: list[str] = []
            for key in frontier:
                if key in done:
                    continue
                done.add(key)
                path, _, digest = key.rpartition("@")
                for view in self.data_runs(path, digest):
                    if len(graph.runs) >= MAX_RUNS:
                        graph.truncated = True
                        return
                    if view.run_id in graph.runs or view.tags.get("reprotrain.sweep") == "true":
                        continue  # a sweep's parent: its jobs are the runs that used the data
                    node = self.node(view)
                    graph.add_run(node)
                    self.reruns(node.run_id)
                    following += [k for k in node.outputs if k not in done]
            frontier = following
            if not frontier:
                return
        graph.truncated = bool(frontier)

    def reruns(self, run_id: str) -> None:
        query = f"tags.`reprotrain.rerun_of` = {search_quote(run_id)}"
        for view in self.tracker.search([self.experiment_id], query, max_results=100):
            if view.run_id not in self.graph.runs:
                self.graph.add_run(self.node(view))

    def versions(self, path: str) -> list[str]:
        """Every version of ``path`` a run used or made, by its full hash (from the records)."""
        keys: list[str] = []
        for view in self.data_runs(path, None):
            node = self.record_node(view)
            keys += [k for k in [*node.inputs, *node.outputs] if k.rpartition("@")[0] == path and k not in keys]
        return keys

    def of_run(self, run_id: str, depth: int) -> None:
        """A run, the makers of what it read (upstream), its reruns and everything downstream."""
        node = self.node(self.tracker.get_run(run_id))
        self.graph.add_run(node)
        for source in node.inputs:
            source_path, _, source_hash = source.rpartition("@")
            for view in self.data_runs(source_path, source_hash, 50):
                if view.run_id not in self.graph.runs and source in self.record_node(view).outputs:
                    self.graph.add_run(self.node(view))
        self.reruns(run_id)
        self.walk(node.outputs, depth)


def _keys(entries: Any) -> list[str]:
    """The data keys (`path@hash`) of a record's `data` or `outputs`."""
    if not isinstance(entries, list):
        return []
    return [data_key(str(o.get("path")), str(o.get("hash"))) for o in entries if isinstance(o, dict)]


def lineage(target: str, depth: int = 6, cwd: Path | None = None, log: bool = True) -> Found:
    """The lineage of ``target``: a run ID (or prefix, or `last`), or a DVC-tracked path, with
    `@HASH` (a prefix) for one version. For a run, with ``log``, its picture is logged beside it,
    best effort (a read-only store still gets the lineage, with a warning)."""
    from reprotrain.adapters.store_helper import reader_for
    from reprotrain.launch import experiment_name
    from reprotrain.settings import find_project

    if depth < 1:
        raise UsageError("--depth must be at least 1")
    uri = store_uri(cwd)
    tracker = reader_for(uri)
    project = find_project(cwd)
    experiment_id = tracker.experiment_id(experiment_name(project))
    if experiment_id is None:
        raise ReprotrainError("no runs in this project's experiment yet", hint="reprotrain run ...")
    walk = _Walk(tracker, experiment_id)
    path, _, digest = target.partition("@")
    looks_like_path = "@" in target or "/" in target or os.path.exists(target)
    if not looks_like_path:
        try:
            run_id = resolve_run_id(target, tracker, cwd)
        except ReprotrainError:
            run_id = ""
        if run_id:
            walk.of_run(run_id, depth)
            found = Found(walk.graph, [run_id], run_id)
            if log:
                try:
                    found.logged = log_picture(run_id, walk.graph, found.roots, cwd)
                except ReprotrainError as exc:
                    found.warning = f"the picture could not be logged beside run {run_id[:12]}: {exc}"
            return found
    git_root = _git_root(project.root)
    if os.path.exists(path):  # a path in this checkout: relative to the repository root, as recorded
        path = os.path.relpath(os.path.abspath(path), git_root)
    keys = walk.versions(path)
    if digest:
        keys = [k for k in keys if k.rpartition("@")[2].startswith(digest)]
    if not keys:
        which = f"{path}@{digest}" if digest else path
        raise ReprotrainError(
            f"no run used or made {which}",
            hint="reprotrain runs --data PATH lists the runs of a path; paths are relative to the repository root",
        )
    walk.walk(keys, depth)
    return Found(walk.graph, keys)


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
