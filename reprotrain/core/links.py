"""Runs the training code created itself (its own `start_run`, nested runs, a framework logger's
client, another experiment or store): what is known of each, and the role it plays in a job.

A role names a linked run by where it is and its place there, never by its ID, so that the same
run of an original and of its rerun can be paired: ``nested:fold-0`` (a nested run the code named
``fold-0``), ``lightning_logs#1`` (the first run in experiment ``lightning_logs``),
``mine in sqlite:////data/other.db#1`` (the first run in experiment ``mine`` of another store;
a store inside the project is written ``sqlite:///<project>/...``, the same for a rerun's worktree).
Unnamed runs of one place that ran at the same time (a pool of workers) have no order to tell them
apart: they share one role, ``lightning_logs#1-4``, and are compared as a group.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["PROJECT", "LinkedRun", "assign_roles", "linked_metrics", "load_linked", "portable_store"]

PROJECT = "<project>"  # stands for the project's root in a store's path


@dataclass(frozen=True)
class LinkedRun:
    run_id: str
    experiment_id: str
    experiment: str = ""  # the experiment's name
    store: str = ""  # another store's tracking URI, credentials removed; "" for reprotrain's own
    nested: bool = False  # its parent is reprotrain's run
    name: str = ""  # mlflow.runName
    named: bool = False  # the code gave that name (MLflow makes one up otherwise)
    start_time: int | None = None
    end_time: int | None = None  # None: still running when the job ended
    status: str = ""
    found_by: str = "hook"  # hook (noted in the code's process), tag (reprotrain.launched_by), time
    metrics: dict[str, float] = field(default_factory=dict)
    role: str = ""
    error: str = ""  # why it could not be read, if it could not

    @property
    def place(self) -> str:
        if self.nested:
            return "nested"
        experiment = self.experiment or f"experiment {self.experiment_id}"
        return f"{experiment} in {self.store}" if self.store else experiment

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assign_roles(runs: Sequence[LinkedRun]) -> list[LinkedRun]:
    """Each run with its role: its place, then its name when the code gave it one that no other
    run of that place has, else its position there (by start time, then order of creation); unnamed
    runs that overlap in time share the role of their positions (``place#2-3``)."""
    order = sorted(range(len(runs)), key=lambda i: (runs[i].start_time or 0, i))
    by_place: dict[str, list[int]] = {}
    for i in order:
        by_place.setdefault(runs[i].place, []).append(i)
    roles: dict[int, str] = {}
    for place, members in by_place.items():
        names = Counter(runs[i].name for i in members if runs[i].named)
        unnamed = []
        for position, i in enumerate(members, 1):
            run = runs[i]
            if run.named and run.name and names[run.name] == 1:
                roles[i] = f"{place}:{run.name}"
            else:
                unnamed.append((position, i))
        for group in _overlapping(runs, unnamed):
            first, last = group[0][0], group[-1][0]
            role = f"{place}#{first}" if first == last else f"{place}#{first}-{last}"
            roles.update({i: role for _, i in group})
    return [replace(run, role=roles[i]) for i, run in enumerate(runs)]


def _overlapping(runs: Sequence[LinkedRun], members: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """(position, index) pairs in start order, grouped where a run started before the ones before
    it had all ended."""
    groups: list[list[tuple[int, int]]] = []
    ends_at = -1.0
    for position, i in members:
        run = runs[i]
        start = run.start_time or 0
        if groups and start < ends_at:
            groups[-1].append((position, i))
        else:
            groups.append([(position, i)])
            ends_at = -1.0
        ends_at = max(ends_at, float("inf") if run.end_time is None else run.end_time)
    return groups


def portable_store(uri: str, root: str) -> str:
    """A store's URI with a path inside the project written from ``<project>``: the same store of
    an original and of its rerun (which runs in a worktree) then has one name."""
    for prefix in ("sqlite:///", "file://"):
        if uri.startswith(prefix):
            path, sep, query = uri[len(prefix) :].partition("?")
            real, top = os.path.realpath(path), os.path.realpath(root)
            if real == top or real.startswith(top + os.sep):
                return f"{prefix}{PROJECT}/{os.path.relpath(real, top)}{sep}{query}"
    return uri


def load_linked(rows: Iterable[Mapping[str, Any]]) -> list[LinkedRun]:
    """LinkedRuns back from their recorded form (`reprotrain/linked-runs.json`), unknown keys dropped."""
    known = set(LinkedRun.__dataclass_fields__)
    out = []
    for row in rows:
        if isinstance(row, Mapping) and isinstance(row.get("run_id"), str):
            values = {k: v for k, v in row.items() if k in known}
            values["metrics"] = {str(k): float(v) for k, v in (row.get("metrics") or {}).items()}
            out.append(LinkedRun(**values))
    return out


def linked_metrics(runs: Iterable[LinkedRun]) -> dict[str, list[dict[str, float]]]:
    """Role -> the metrics of each run in it (one run, or a group that ran at the same time): what
    `rerun --verify` compares of the linked runs."""
    found: dict[str, list[dict[str, float]]] = {}
    for run in runs:
        if run.role:
            found.setdefault(run.role, []).append(dict(run.metrics))
    return found
