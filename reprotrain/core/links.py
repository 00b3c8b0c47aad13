"""Runs the training code created itself (its own `start_run`, nested runs, a framework logger's
client, another experiment or store): what is known of each, and the role it plays in a job.

A role names a linked run by where it is and its place there, never by its ID, so that the same
run of an original and of its rerun can be paired: ``nested:fold-0`` (a nested run the code named
``fold-0``), ``lightning_logs#1`` (the first run in experiment ``lightning_logs``),
``mine in sqlite:////data/other.db#1`` (the first run in experiment ``mine`` of another store).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["LinkedRun", "assign_roles", "linked_metrics", "load_linked"]


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
    run of that place has, else its position there (by start time, then order of creation)."""
    order = sorted(range(len(runs)), key=lambda i: (runs[i].start_time or 0, i))
    by_place: dict[str, list[int]] = {}
    for i in order:
        by_place.setdefault(runs[i].place, []).append(i)
    roles: dict[int, str] = {}
    for place, members in by_place.items():
        names = Counter(runs[i].name for i in members if runs[i].named)
        for position, i in enumerate(members, 1):
            run = runs[i]
            unique = run.named and run.name and names[run.name] == 1
            roles[i] = f"{place}:{run.name}" if unique else f"{place}#{position}"
    return [replace(run, role=roles[i]) for i, run in enumerate(runs)]


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


def linked_metrics(runs: Iterable[LinkedRun]) -> dict[str, dict[str, float]]:
    """Role -> metrics: what `rerun --verify` compares of the linked runs."""
    return {run.role: dict(run.metrics) for run in runs if run.role}
