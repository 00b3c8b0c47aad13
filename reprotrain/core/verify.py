"""Did a rerun reproduce its original? Metric and output-file comparison, and environment drift."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "Verdict", "compare", "env_drift"]


@dataclass(frozen=True)
class Check:
    kind: str  # "metric" or "file"
    name: str
    original: Any
    rerun: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "original": self.original, "rerun": self.rerun, "ok": self.ok}


@dataclass(frozen=True)
class Verdict:
    checks: list[Check]

    @property
    def reproduced(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


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
) -> Verdict:
    """Every metric of the original (exact unless a tolerance is given), and the sha256 of each
    output file matching ``file_patterns`` (glob, relative to the output dir)."""
    checks = []
    for name in sorted(set(original_metrics) | set(rerun_metrics)):
        a, b = original_metrics.get(name), rerun_metrics.get(name)
        ok = a is not None and b is not None and _close(a, b, rtol, atol)
        checks.append(Check("metric", name, a, b, ok))
    patterns = list(file_patterns)
    names = {n for n in set(original_files) | set(rerun_files) if any(fnmatch.fnmatch(n, p) for p in patterns)}
    for pattern in patterns:
        if not any(fnmatch.fnmatch(n, pattern) for n in names):
            checks.append(Check("file", pattern, None, None, False))  # named but produced by neither
    for name in sorted(names):
        fa, fb = original_files.get(name), rerun_files.get(name)
        checks.append(Check("file", name, fa, fb, fa is not None and fa == fb))
    return Verdict(checks)


def env_drift(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """(name, recorded, current) for Python and every package whose version differs."""
    rows: list[tuple[str, str | None, str | None]] = []
    if recorded.get("python") != current.get("python"):
        rows.append(("python", recorded.get("python"), current.get("python")))
    old = recorded.get("packages") or {}
    new = current.get("packages") or {}
    for name in sorted(set(old) | set(new)):
        if name == "reprotrain":
            continue  # the launcher itself is not the training environment
        if old.get(name) != new.get(name):
            rows.append((name, old.get(name), new.get(name)))
    return rows
