"""Orchestration of `reprotrain schema show|accept`: the schemas of the project's DVC-tracked tables
(adapters/tables reads them, core/schema parses and compares them) against the committed contract
`reprotrain-schema.yaml`, and accepting the current ones into it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reprotrain.adapters import tables
from reprotrain.core.record import DataOutput
from reprotrain.core.schema import CONTRACT_FILE, accepted_entry, contract_changes
from reprotrain.errors import NotPinnedError, UsageError
from reprotrain.launch import check_pins
from reprotrain.settings import Project, find_project

__all__ = ["accept", "current"]


def _read(project: Project, paths: list[str]) -> tuple[Path, dict[str, Any], dict[str, Any] | None, list[DataOutput]]:
    """(git root, schemas of the chosen tables, the contract or None, the chosen outputs). Data that
    is not as its .dvc file or dvc.lock says is refused (its schema would be a guess); an
    uncommitted .dvc file is fine (`dvc add` a new version, accept its schema, commit both)."""
    check = check_pins(project)
    root = check.git_root
    outputs = check.data
    if paths:
        known = {o.path for o in outputs}
        # a path as the shell sees it (relative to here), or as reprotrain prints it (to the repository's root)
        wanted = {p if p in known else os.path.relpath(os.path.abspath(p), root) for p in paths}
        unknown = sorted(wanted - known)
        if unknown:
            raise UsageError(
                f"not a DVC-tracked input: {', '.join(unknown)}",
                hint="the inputs are: " + (", ".join(sorted(known)) or "none (dvc add them first)"),
            )
        outputs = [o for o in outputs if o.path in wanted]
    blocking = [p for p in check.problems if p.kind.startswith("data-") and p.path in {o.path for o in outputs}]
    if blocking:
        raise NotPinnedError(blocking)
    contract, wrong = tables.load_contract(project.root / CONTRACT_FILE)
    if wrong:
        raise UsageError(f"{CONTRACT_FILE} {wrong}", hint="fix it, or remove it and run `reprotrain schema accept`")
    # the gate read them already (unless `schemas = false`): only the rest is read here
    chosen = {o.path for o in outputs}
    schemas = {path: schema for path, schema in check.schemas.items() if path in chosen}
    rest = [o for o in outputs if o.path not in check.schemas]
    return root, schemas | (tables.schemas_of(root, rest) if rest else {}), contract, outputs


def current(paths: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """Each table's schema, whether the contract has it, and how it differs from it."""
    project = find_project(cwd)
    _, schemas, contract, outputs = _read(project, paths)
    rows = []
    for output in outputs:
        schema = schemas.get(output.path)
        entry = (contract or {}).get(output.path)
        if schema is None and entry is None:
            continue
        changes = contract_changes(entry, schema) if contract is not None else []
        rows.append({"path": output.path, "schema": schema, "in_contract": entry is not None, "changes": changes})
    stale = sorted(set(contract or {}) - {o.path for o in outputs}) if contract and not paths else []
    return {"contract": CONTRACT_FILE if contract is not None else None, "inputs": rows, "stale": stale}


def accept(paths: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """Write the current schemas of the chosen tables (default: all) into the contract, keeping
    every other entry and the row ranges declared in the replaced ones (widened to the new count)."""
    project = find_project(cwd)
    _, schemas, contract, outputs = _read(project, paths)
    chosen = [o for o in outputs if o.path in schemas]
    if not chosen:
        raise UsageError(
            "no table among " + (", ".join(paths) if paths else "the DVC-tracked inputs"),
            hint="tables are CSV/TSV, Parquet and JSON Lines files, and directories holding them",
        )
    entries = dict(contract or {})
    gone = sorted(set(entries) - {o.path for o in outputs}) if not paths else []
    for path in gone:  # accepting every table: an entry of an input no longer tracked goes
        del entries[path]
    rows = []
    for output in chosen:
        before = entries.get(output.path)
        entries[output.path], notes = accepted_entry(schemas[output.path], before)
        rows.append(
            {
                "path": output.path,
                "schema": schemas[output.path],
                "in_contract": True,
                "changes": contract_changes(before, schemas[output.path]) if before is not None else ["added"],
                "notes": notes,
            }
        )
    tables.write_contract(project.root / CONTRACT_FILE, entries)
    return {"contract": CONTRACT_FILE, "inputs": rows, "written": str(project.root / CONTRACT_FILE), "removed": gone}
