"""The schemas of a run's DVC-tracked tables, read from the workspace (core/schema parses them) and
remembered by content hash: a hash's schema never changes, so each version of a dataset is read
once (`$REPROTRAIN_SCHEMA_CACHE`, else `$XDG_CACHE_HOME/reprotrain/schemas`), and the gate of the
next run reads a small JSON file per input instead.

Only what the gate found exactly as committed is read (the memo is keyed by that hash). A link is
followed only to a file inside the repository (DVC's symlink or hardlink cache is there); a link
out of it is not read, and the table is left without a schema."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reprotrain.core.record import DataOutput
from reprotrain.core.schema import (
    SCHEMA_VERSION,
    ParquetError,
    contract_error,
    csv_schema,
    directory_schema,
    gzipped,
    jsonl_schema,
    parquet_footer_schema,
    parquet_footer_size,
    table_format,
)
from reprotrain.fileio import user_cache, walk_tree, write_json
from reprotrain.progress import progress

__all__ = ["cache_root", "file_schema", "load_contract", "schemas_of", "write_contract"]

_LARGE = 64 * 1024 * 1024  # reading more than this says so
_MAX_FOOTER = 64 * 1024 * 1024
_MAX_FIELD = 1 << 30


def cache_root() -> Path:
    return user_cache("schemas", "REPROTRAIN_SCHEMA_CACHE")


def _memo_path(digest: str) -> Path:
    safe = "".join(c for c in digest if c.isalnum() or c in "._-")
    return cache_root() / f"v{SCHEMA_VERSION}" / safe[:2] / f"{safe}.json"


def _recall(digest: str) -> tuple[bool, dict[str, Any] | None]:
    try:
        data = json.loads(_memo_path(digest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, None
    if not isinstance(data, dict) or "schema" not in data:
        return False, None
    return True, data["schema"]


def _remember(digest: str, schema: dict[str, Any] | None) -> None:
    path = _memo_path(digest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"schema": schema})
    except OSError:  # a read-only or full cache: the next gate reads the table again
        pass


def _inside(path: Path, tops: tuple[str, ...]) -> Path | None:
    """``path`` resolved, when it is a regular file inside one of ``tops`` (the repository, DVC's
    cache): a link anywhere else is never followed."""
    real = os.path.realpath(path)
    if not any(real.startswith(top + os.sep) for top in tops):
        return None
    return Path(real) if os.path.isfile(real) else None


def _cache_dirs(git_root: Path) -> tuple[str, ...]:
    """DVC's cache directory when configured outside the repository (`dvc cache dir`; a shared
    cache with symlink links): its content-addressed files are what the links point at."""
    from reprotrain.adapters.dvc_config import cache_dir_setting

    found = cache_dir_setting(git_root)
    return (os.path.realpath(found),) if found else ()


def _lines(raw: Any) -> Iterator[str]:
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    yield from text


def file_schema(path: Path, fmt: str, compressed: bool = False) -> dict[str, Any] | None:
    """The schema of one table file (``compressed``: gzipped); None when it cannot be read as one
    (not UTF-8, broken)."""
    import gzip

    try:
        size = path.stat().st_size
        if size > _LARGE:
            progress(f"reading the schema of {path.name} ({size // (1024 * 1024)} MB), once for this version")
        with open(path, "rb") as plain, gzip.open(plain) if compressed else contextlib.nullcontext(plain) as raw:
            if fmt == "parquet":
                return _parquet(raw, size)
            if fmt == "jsonl":
                return jsonl_schema(json.loads(line) for line in _lines(raw) if line.strip())
            csv.field_size_limit(_MAX_FIELD)  # a long text field is a field, not a broken file
            return csv_schema(csv.reader(_lines(raw), delimiter="\t" if fmt == "tsv" else ","), fmt)
    except OSError:
        raise  # the file could not be read now: nothing is remembered of it
    except (ValueError, UnicodeDecodeError, csv.Error, RecursionError, EOFError):
        return None


def _parquet(raw: Any, size: int) -> dict[str, Any] | None:
    if size < 12:
        return None
    raw.seek(size - 8)
    try:
        length = parquet_footer_size(raw.read(8))
        if length > min(size - 12, _MAX_FOOTER):
            return None
        raw.seek(size - 8 - length)
        return parquet_footer_schema(raw.read(length))
    except ParquetError:
        return None


def _directory(path: Path, tops: tuple[str, ...]) -> dict[str, Any] | None:
    files: list[tuple[str, dict[str, Any] | None]] = []
    for entry in walk_tree(path):
        fmt = table_format(entry.rel)
        if fmt is None:
            continue
        source = entry.source if entry.kind == "file" else None
        if entry.kind == "link":  # DVC's symlink cache: a link to a file of the repository
            source = _inside(path / entry.rel, tops)
        files.append((entry.rel, file_schema(source, fmt, gzipped(entry.rel)) if source is not None else None))
    # (an OSError reading one file goes up: the directory is not remembered, and is read next time)
    return directory_schema(files)


def schemas_of(git_root: Path, outputs: Sequence[DataOutput]) -> dict[str, dict[str, Any]]:
    """The schema of every table among ``outputs`` (a CSV/TSV, Parquet or JSON Lines file, or a
    directory holding such files), by path; each read once per content hash."""
    tops: tuple[str, ...] | None = None  # where links may lead: looked up once a table is read
    found: dict[str, dict[str, Any]] = {}
    for output in outputs:
        is_dir = output.hash.endswith(".dir")
        fmt = table_format(output.path)
        if not is_dir and fmt is None:
            continue
        digest = output.hash
        known, schema = _recall(digest)
        if not known:
            path = git_root / output.path
            tops = tops or (os.path.realpath(git_root), *_cache_dirs(git_root))
            try:
                if is_dir:
                    schema = _directory(path, tops) if path.is_dir() and not path.is_symlink() else None
                else:
                    source = _inside(path, tops)
                    if source is None or fmt is None:
                        continue  # a link out of the repository: never read (nor remembered as no table)
                    schema = file_schema(source, fmt, gzipped(output.path))
            except OSError:
                continue  # unreadable now (permissions, a flaky disk): no schema, nothing remembered
            _remember(digest, schema)
        if schema is not None:
            found[output.path] = schema
    return found


def load_contract(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The schema contract at ``path``: (entries by input path, ""), (None, "") when there is
    none, or (None, what is wrong with it)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot be read: {exc}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, f"is not valid YAML{f' (line {mark.line + 1})' if mark is not None else ''}"
    if data is None:
        return {}, ""
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        return None, "must map each input's path to its schema (columns, rows)"
    wrong = contract_error(data)
    if wrong:
        return None, f"is not valid: {wrong}"
    return {str(k): v for k, v in data.items()}, ""


_HEADER = """\
# The schema contract of this project's DVC-tracked tables, written by `reprotrain schema accept`
# and committed with the code. `reprotrain run` and `reprotrain check` refuse an input whose format
# or columns (name: type, in order) differ from these, or whose row count is outside a range given
# here: add min and/or max under rows (rows: {accepted: 1000, min: 900, max: 2000}).
"""


def write_contract(path: Path, entries: dict[str, Any]) -> None:
    import yaml

    body = yaml.safe_dump(dict(sorted(entries.items())), sort_keys=False, allow_unicode=True, width=120)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(_HEADER + body, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
