"""What changed between two runs: config key by key, data per output, metrics, environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reprotrain.core.config import config_differences
from reprotrain.core.schema import schema_changes

__all__ = ["diff_config", "diff_data", "diff_entries", "diff_metrics", "diff_schemas", "diff_where"]


def diff_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "a": va, "b": vb} for k, va, vb in config_differences(a, b)]


def diff_entries(a: Mapping[str, str], b: Mapping[str, str]) -> dict[str, list[str]]:
    """Files added, removed and changed between two directory manifests (relative path -> md5)."""
    return {
        "added": sorted(set(b) - set(a)),
        "removed": sorted(set(a) - set(b)),
        "changed": sorted(k for k in set(a) & set(b) if a[k] != b[k]),
    }


def diff_data(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    manifests: Mapping[str, Mapping[str, str] | None],
) -> list[dict[str, Any]]:
    """One row per output whose hash differs or that only one run used. ``manifests`` maps a
    `.dir` hash to its entries (None when the manifest is not in the local cache)."""
    left = {o["path"]: o for o in a}
    right = {o["path"]: o for o in b}
    rows = []
    for path in sorted(set(left) | set(right)):
        oa, ob = left.get(path), right.get(path)
        if oa and ob and oa["hash"] == ob["hash"]:
            continue
        row: dict[str, Any] = {
            "path": path,
            "a": {"hash": oa["hash"], "size": oa.get("size"), "nfiles": oa.get("nfiles")} if oa else None,
            "b": {"hash": ob["hash"], "size": ob.get("size"), "nfiles": ob.get("nfiles")} if ob else None,
        }
        if oa and ob and oa["hash"].endswith(".dir") and ob["hash"].endswith(".dir"):
            ma, mb = manifests.get(oa["hash"]), manifests.get(ob["hash"])
            row["files"] = diff_entries(ma, mb) if ma is not None and mb is not None else None
        rows.append(row)
    return rows


def diff_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name), b.get(name)
        if va == vb:
            continue
        delta = vb - va if va is not None and vb is not None else None
        rows.append({"name": name, "a": va, "b": vb, "delta": delta})
    return rows


def diff_where(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where two runs ran (their records' `environment`): host, platform and Python executable,
    where both name them and they differ (jobs of one sweep that a cluster ran on different nodes)."""
    keys = ("host", "platform", "executable")
    return [{"name": k, "a": a[k], "b": b[k]} for k in keys if a.get(k) and b.get(k) and a[k] != b[k]]


def diff_schemas(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per table whose schema differs between two runs' records (their `schemas`), with
    each change (core/schema.schema_changes); a table only one run read is a row too."""
    rows = []
    for path in sorted(set(a) | set(b)):
        if path not in a:
            rows.append({"path": path, "changes": ["only in b"]})
        elif path not in b:
            rows.append({"path": path, "changes": ["only in a"]})
        else:
            changes = schema_changes(a[path], b[path])
            if changes:
                rows.append({"path": path, "changes": changes})
    return rows
