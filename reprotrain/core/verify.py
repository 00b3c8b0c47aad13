"""Did a rerun reproduce its original? Metric and output-file comparison, and environment drift."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprotrain.core.config import canonical_json

__all__ = [
    "EXIT_CODES",
    "NOTHING_TO_COMPARE",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "Check",
    "Verdict",
    "combined_outcome",
    "compare",
    "env_drift",
]


@dataclass(frozen=True)
class Check:
    kind: str  # "metric", "file", "output" (a pipeline stage's, by DVC hash), or "run" (created by the code)
    name: str
    original: Any
    rerun: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "original": self.original, "rerun": self.rerun, "ok": self.ok}


REPRODUCED = "reproduced"
NOT_REPRODUCED = "not-reproduced"
NOTHING_TO_COMPARE = "nothing-to-compare"


@dataclass(frozen=True)
class Verdict:
    checks: list[Check]

    @property
    def reproduced(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def outcome(self) -> str:
        """reproduced, not-reproduced, or nothing-to-compare (no metric, file or linked run to
        compare: that says nothing either way, so it is never called "not reproduced")."""
        if not self.checks:
            return NOTHING_TO_COMPARE
        return REPRODUCED if self.reproduced else NOT_REPRODUCED

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _created(runs: Sequence[Mapping[str, float]]) -> str | None:
    return f"{len(runs)} run(s)" if runs else None


def _metric_checks(
    original: Mapping[str, float], rerun: Mapping[str, float], rtol: float, atol: float, prefix: str = ""
) -> list[Check]:
    checks = []
    for name in sorted(set(original) | set(rerun)):
        a, b = original.get(name), rerun.get(name)
        ok = a is not None and b is not None and _close(a, b, rtol, atol)
        checks.append(Check("metric", prefix + name, a, b, ok))
    return checks


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if rtol == 0 and atol == 0:
        return a == b
    return abs(a - b) <= atol + rtol * abs(a)


def compare(
    original_metrics: Mapping[str, float],
    rerun_metrics: Mapping[str, float],
    original_files: Mapping[str, str],
    rerun_files: Mapping[str, str],
    file_patterns: Iterable[str] = (),
    rtol: float = 0.0,
    atol: float = 0.0,
    original_linked: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
    rerun_linked: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
    original_outputs: Mapping[str, str] | None = None,
    rerun_outputs: Mapping[str, str] | None = None,
) -> Verdict:
    """Every metric of the original (exact unless a tolerance is given), every metric of each run
    the code created itself, paired by role (``*_linked``: role -> the metrics of its runs), and the
    sha256 of each output file matching ``file_patterns`` (glob, relative to the output dir), and
    the DVC hash of every output a pipeline's stages made (``*_outputs``: path -> hash), all of them."""
    checks = _metric_checks(original_metrics, rerun_metrics, rtol, atol)
    linked_a, linked_b = original_linked or {}, rerun_linked or {}
    for role in sorted(set(linked_a) | set(linked_b)):
        runs_a, runs_b = linked_a.get(role, []), linked_b.get(role, [])
        if len(runs_a) != len(runs_b):
            checks.append(Check("run", role, _created(runs_a), _created(runs_b), False))
            continue
        # a group that ran at the same time has no order: its runs are paired by what they logged
        pairs = zip(sorted(runs_a, key=canonical_json), sorted(runs_b, key=canonical_json))
        for n, (a, b) in enumerate(pairs, 1):
            label = f"[{role}] " if len(runs_a) == 1 else f"[{role} {n}/{len(runs_a)}] "
            checks += _metric_checks(a, b, rtol, atol, label)
    patterns = list(file_patterns)
    names = {n for n in set(original_files) | set(rerun_files) if any(fnmatch.fnmatch(n, p) for p in patterns)}
    for pattern in patterns:
        if not any(fnmatch.fnmatch(n, pattern) for n in names):
            checks.append(Check("file", pattern, None, None, False))  # named but produced by neither
    for name in sorted(names):
        fa, fb = original_files.get(name), rerun_files.get(name)
        checks.append(Check("file", name, fa, fb, fa is not None and fa == fb))
    outs_a, outs_b = original_outputs or {}, rerun_outputs or {}
    for name in sorted(set(outs_a) | set(outs_b)):
        ha, hb = outs_a.get(name), outs_b.get(name)
        checks.append(Check("output", name, ha, hb, ha is not None and ha == hb))
    return Verdict(checks)


EXIT_CODES = {REPRODUCED: 0, NOT_REPRODUCED: 4, NOTHING_TO_COMPARE: 5}  # of `rerun --verify`


def combined_outcome(outcomes: Iterable[str], jobs: int) -> str:
    """One verdict for a sweep's jobs: reproduced only if every job was; not reproduced if any job
    was not (or has no verdict: it failed); else nothing to compare."""
    found = list(outcomes)
    if len(found) < jobs or NOT_REPRODUCED in found:
        return NOT_REPRODUCED
    return NOTHING_TO_COMPARE if NOTHING_TO_COMPARE in found else REPRODUCED


def env_drift(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """(name, recorded, current) for Python and every package whose version differs."""
    rows: list[tuple[str, str | None, str | None]] = []
    if recorded.get("python") != current.get("python"):
        rows.append(("python", recorded.get("python"), current.get("python")))
    was, now = recorded.get("implementation"), current.get("implementation")
    if was and now and was != now:  # CPython and PyPy of one version are not the same interpreter
        rows.append(("implementation", was, now))
    old = recorded.get("packages") or {}
    new = current.get("packages") or {}
    for name in sorted(set(old) | set(new)):
        if name == "reprotrain":
            continue  # the launcher itself is not the training environment
        if old.get(name) != new.get(name):
            rows.append((name, old.get(name), new.get(name)))
    return rows
