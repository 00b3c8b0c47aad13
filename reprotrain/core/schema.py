"""Schemas and profiles of tabular data (pure): column names and types and the row count of a CSV,
TSV, JSON Lines or Parquet file (its footer, read without pyarrow), a directory's files grouped by
pattern, the schema contract a project commits (`reprotrain-schema.yaml`) and each way an input
differs from it, and the MLflow dataset schema and profile of one.

A schema is plain data: ``{"format": "csv", "columns": [{"name": "id", "type": "long"}, ...],
"rows": 1000}``; a directory's ``{"format": "directory", "files": 3, "patterns": {"*.csv": {...}}}``.
Types: boolean, long, double, string (CSV/TSV and JSON Lines infer them from the first
SAMPLE_ROWS rows; JSON Lines adds array and object), and Parquet's own: boolean, integer, long,
float, double, string, binary, date, time, datetime, decimal(P,S), list, map, struct.
"""

from __future__ import annotations

import posixpath
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CONTRACT_FILE",
    "SAMPLE_ROWS",
    "SCHEMA_VERSION",
    "ParquetError",
    "accepted_entry",
    "contract_changes",
    "contract_error",
    "csv_schema",
    "directory_schema",
    "gzipped",
    "jsonl_schema",
    "mlflow_profile",
    "mlflow_schema",
    "parquet_footer_schema",
    "pattern_of",
    "schema_changes",
    "table_format",
]

SCHEMA_VERSION = 2  # of what is computed: a memo of another version is computed again
SAMPLE_ROWS = 10_000  # rows whose values give the columns' types (every row is counted)
CONTRACT_FILE = "reprotrain-schema.yaml"
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def _suffix(path: str) -> str:
    """The table suffix of a file name, its compression included (`.csv.gz`)."""
    stem, suffix = posixpath.splitext(posixpath.basename(path).lower())
    if suffix == ".gz":
        inner = posixpath.splitext(stem)[1]
        return inner + suffix if inner in (".csv", ".tsv", ".jsonl", ".ndjson") else suffix
    return suffix


def table_format(path: str) -> str | None:
    """csv, tsv, parquet or jsonl by the file's suffix (CSV, TSV and JSON Lines also gzipped:
    `.csv.gz`); None for any other file."""
    return _FORMATS.get(_suffix(path).removesuffix(".gz"))


def gzipped(path: str) -> bool:
    return _suffix(path).endswith(".gz")


# --- CSV / TSV and JSON Lines ---------------------------------------------------------------------


# numbers as CSV readers (pandas, pyarrow.csv) take them: ASCII digits, no `1_000`
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_REAL = re.compile(r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)\s*", re.ASCII | re.I)


def _value_type(value: str) -> str | None:
    if value == "":
        return None  # missing: says nothing about the column
    if value.strip().lower() in ("true", "false"):
        return "boolean"
    if _INTEGER.fullmatch(value):
        return "long"
    return "double" if _REAL.fullmatch(value) else "string"


def _merge(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {"long", "double"}:
        return "double"
    return "string"


def csv_schema(rows: Iterable[list[str]], fmt: str = "csv") -> dict[str, Any] | None:
    """The schema of a CSV/TSV file from its parsed rows (the first is the header); None when it
    has no header naming every column."""
    it = iter(rows)
    header = next(it, None)
    if not header or not any(name.strip() for name in header):
        return None
    # an unnamed column (pandas' index, `df.to_csv()`; a trailing comma) is named as pandas reads it
    header = [name if name.strip() else f"Unnamed: {i}" for i, name in enumerate(header)]
    types: list[str | None] = [None] * len(header)
    count = 0
    for row in it:
        if not row:
            continue  # a blank line is no row (csv yields [] for it)
        if count < SAMPLE_ROWS:
            for i, value in enumerate(row[: len(header)]):
                types[i] = _merge(types[i], _value_type(value))
        count += 1
    columns = [{"name": name, "type": kind or "string"} for name, kind in zip(header, types, strict=True)]
    return {"format": fmt, "columns": columns, "rows": count}


def _json_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def jsonl_schema(records: Iterable[Any]) -> dict[str, Any] | None:
    """The schema of a JSON Lines file from its decoded lines (blank ones left out by the caller):
    the keys of its objects in the order they first appear; None when a line is not an object."""
    names: dict[str, str | None] = {}
    count = 0
    for record in records:
        if not isinstance(record, dict):
            return None
        if count < SAMPLE_ROWS:
            for key, value in record.items():
                names[str(key)] = _merge(names.get(str(key)), _json_type(value))
        count += 1
    return {"format": "jsonl", "columns": [{"name": n, "type": t or "string"} for n, t in names.items()], "rows": count}


# --- Parquet: the footer's FileMetaData, Thrift compact protocol --------------------------------


class ParquetError(ValueError):
    """Not a Parquet footer this reader understands."""


class _Compact:
    """Just enough of Thrift's compact protocol to walk a Parquet footer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ParquetError("the footer ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ParquetError("a varint is too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        size = self.varint()
        if self.pos + size > len(self.data):
            raise ParquetError("a string runs past the footer")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def fields(self) -> Iterable[tuple[int, int]]:
        """(field id, type) of each field of the struct at the position, until its end."""
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            yield last, kind

    def value(self, kind: int, element: bool = False) -> Any:
        """Read (or skip: structs and maps are not kept) one value of ``kind`` (``element``: of a
        list, set or map, where a boolean is a byte of its own; a field's is its type)."""
        if kind in (1, 2):
            return self.byte() == 1 if element else kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return None
        if kind == 8:
            return self.binary()
        if kind in (9, 10):
            return [self.value(inner, True) for inner in self.list_header()]
        if kind == 11:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.value(types >> 4, True)
                    self.value(types & 0x0F, True)
            return None
        if kind == 12:
            for _, inner in self.fields():
                self.value(inner)
            return None
        raise ParquetError(f"unknown Thrift type {kind}")

    def list_header(self) -> list[int]:
        head = self.byte()
        size = head >> 4
        if size == 15:
            size = self.varint()
        if size > len(self.data):
            raise ParquetError("a list is longer than the footer")
        return [head & 0x0F] * size


_PHYSICAL = {0: "boolean", 1: "integer", 2: "long", 3: "datetime", 4: "float", 5: "double", 6: "binary", 7: "binary"}
# converted_type (the older annotation): UTF8, MAP, MAP_KEY_VALUE, LIST, ENUM, DECIMAL, DATE, TIME_*, TIMESTAMP_*, ...
_CONVERTED = {0: "string", 1: "map", 2: "map", 3: "list", 4: "string", 6: "date", 7: "time", 8: "time"}
_CONVERTED |= {9: "datetime", 10: "datetime", 19: "string"}
# UINT_8, UINT_16, INT_8, INT_16, INT_32 fit 32 bits; UINT_32 (up to 2**32-1), UINT_64, INT_64 do not
_CONVERTED |= {n: "integer" for n in (11, 12, 15, 16, 17)} | {13: "long", 14: "long", 18: "long"}
# LogicalType union members: STRING, MAP, LIST, ENUM, DECIMAL, DATE, TIME, TIMESTAMP, (9 unused), INTEGER,
# UNKNOWN, JSON, BSON, UUID, FLOAT16
_LOGICAL = {1: "string", 2: "map", 3: "list", 4: "string", 6: "date", 7: "time", 8: "datetime", 11: "null"}
_LOGICAL[12] = "string"
_LOGICAL |= {13: "binary", 14: "string", 15: "float"}


def _element(proto: _Compact) -> dict[str, Any]:
    element: dict[str, Any] = {}
    for fid, kind in proto.fields():
        if fid == 10 and kind == 12:  # logicalType: which member of the union is set
            for member, inner in proto.fields():
                element.setdefault("logical", member)
                if member == 10 and inner == 12:  # INTEGER: bitWidth, isSigned
                    bits, signed = 64, True
                    for ifid, ikind in proto.fields():
                        value = proto.value(ikind)
                        if ifid == 1:
                            bits = int(value)
                        elif ifid == 2:
                            signed = bool(value)
                    element["int_bits"] = bits if signed else bits + 1  # an unsigned one needs a bit more
                else:
                    proto.value(inner)
            continue
        value = proto.value(kind)
        if fid in _ELEMENT_FIELDS:
            element[_ELEMENT_FIELDS[fid]] = value
    return element


# SchemaElement's fields this reader keeps
_ELEMENT_FIELDS = {1: "type", 3: "repetition", 4: "name", 5: "children", 6: "converted", 7: "scale", 8: "precision"}


def _column_type(element: Mapping[str, Any]) -> str:
    if element.get("children"):
        kind = _LOGICAL.get(element.get("logical", -1)) or _CONVERTED.get(element.get("converted", -1))
        return kind if kind in ("list", "map") else "struct"
    if element.get("logical") == 5 or element.get("converted") == 5:
        return f"decimal({element.get('precision', '?')},{element.get('scale', 0)})"
    if element.get("logical") == 10:
        return "long" if element.get("int_bits", 64) > 32 else "integer"
    kind = _LOGICAL.get(element.get("logical", -1)) or _CONVERTED.get(element.get("converted", -1))
    return kind or _PHYSICAL.get(element.get("type", -1), "binary")


def parquet_footer_schema(footer: bytes) -> dict[str, Any]:
    """The schema of a Parquet file from its footer (the FileMetaData before the last 8 bytes):
    its top-level columns (a nested one by its own type: list, map, struct) and its row count."""
    proto = _Compact(footer)
    elements: list[dict[str, Any]] = []
    rows = None
    for fid, kind in proto.fields():
        if fid == 2 and kind == 9:
            for _ in proto.list_header():
                elements.append(_element(proto))
        elif fid == 3 and kind == 6:
            rows = proto.zigzag()
        else:
            proto.value(kind)
    if not elements or rows is None:
        raise ParquetError("the footer has no schema or no row count")
    columns = []
    i = 1
    for _ in range(int(elements[0].get("children") or 0)):  # the root's children: the top-level columns
        if i >= len(elements):
            raise ParquetError("the schema has fewer elements than its root says")
        top = elements[i]
        columns.append({"name": _text(top.get("name")), "type": _column_type(top)})
        skip, i = int(top.get("children") or 0), i + 1
        while skip and i < len(elements):  # the nested column's descendants
            skip += int(elements[i].get("children") or 0) - 1
            i += 1
    return {"format": "parquet", "columns": columns, "rows": rows}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parquet_footer_size(tail: bytes) -> int:
    """The footer's length from a Parquet file's last 8 bytes (length, `PAR1`)."""
    if len(tail) != 8 or tail[4:] != b"PAR1":
        raise ParquetError("not a Parquet file (no PAR1 at its end)")
    return int(struct.unpack("<I", tail[:4])[0])


# --- directories ------------------------------------------------------------------------------------

_PARTITION = re.compile(r"^([^=/]+)=[^/]*$")
_DATED = re.compile(r"^[0-9][0-9._-]*$")  # `2024-06-02`, `20240602`, `0001`: one directory per day or shard


def pattern_of(relpath: str) -> str:
    """The pattern a directory's file belongs to: its directories (a Hive partition `year=2024` as
    `year=*`) and `*.SUFFIX`: `train/a.csv` -> `train/*.csv`, `year=2024/p-0.parquet` -> `year=*/*.parquet`."""
    parent, name = posixpath.split(relpath)
    parts = ["*" if _DATED.match(part) else _PARTITION.sub(r"\1=*", part) for part in parent.split("/") if part]
    return posixpath.join(*parts, f"*{_suffix(name)}")


def _shape(columns: list[dict[str, Any]], fmt: str) -> list[tuple[str, str]]:
    """What makes two tables the same shape: their columns in order (JSON Lines: in any order,
    since an object's keys have none)."""
    shape = [(str(c["name"]), str(c["type"])) for c in columns]
    return sorted(shape) if fmt == "jsonl" else shape


def directory_schema(files: Iterable[tuple[str, dict[str, Any] | None]]) -> dict[str, Any] | None:
    """A directory's tables by pattern (``files``: relative path and schema, None when a table
    could not be read): each pattern's columns (its first file's, by path), the files whose columns
    differ from them, its files and rows. None when the directory holds no table."""
    patterns: dict[str, dict[str, Any]] = {}
    total = 0
    for relpath, schema in sorted(files, key=lambda item: item[0]):
        total += 1
        pattern = patterns.setdefault(pattern_of(relpath), {"files": 0, "rows": 0})
        pattern["files"] += 1
        if schema is None:
            pattern.setdefault("unreadable", []).append(relpath)
            continue
        pattern.setdefault("format", schema["format"])
        pattern["rows"] += int(schema.get("rows") or 0)
        if "columns" not in pattern:
            pattern["columns"] = schema["columns"]
        elif _shape(schema["columns"], schema["format"]) != _shape(pattern["columns"], pattern["format"]):
            pattern.setdefault("differing", []).append(relpath)
    if not total:
        return None
    for pattern in patterns.values():
        for key in ("unreadable", "differing"):
            if key in pattern:
                pattern[key] = pattern[key][:10]
    return {"format": "directory", "files": total, "patterns": dict(sorted(patterns.items()))}


# --- the contract and the changes -------------------------------------------------------------------


def _columns(schema: Mapping[str, Any]) -> dict[str, str]:
    return {str(c["name"]): str(c["type"]) for c in schema.get("columns") or []}


def _table_entry(schema: Mapping[str, Any], kept: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    entry: dict[str, Any] = {"format": schema.get("format"), "columns": _columns(schema)}
    notes: list[str] = []
    rows = int(schema.get("rows") or 0)
    bounds = {k: v for k, v in ((kept or {}).get("rows") or {}).items() if k in ("min", "max")}
    if "min" in bounds and rows < int(bounds["min"]):
        notes.append(f"rows min {bounds['min']} -> {rows}")
        bounds["min"] = rows
    if "max" in bounds and rows > int(bounds["max"]):
        notes.append(f"rows max {bounds['max']} -> {rows}")
        bounds["max"] = rows
    entry["rows"] = {"accepted": rows, **bounds}
    for key in ("files",):
        if key in schema:
            entry[key] = schema[key]
    if schema.get("differing"):  # files of another shape, accepted as they are
        entry["differing"] = list(schema["differing"])
    return entry, notes


def accepted_entry(schema: Mapping[str, Any], kept: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The contract's entry for ``schema``, keeping the row range the user declared in the entry
    it replaces (``kept``), widened to take the accepted count (each widening a note)."""
    if schema.get("format") != "directory":
        return _table_entry(schema, kept)
    patterns: dict[str, Any] = {}
    notes: list[str] = []
    old = (kept or {}).get("patterns") or {}
    for name, pattern in (schema.get("patterns") or {}).items():
        entry, widened = _table_entry(pattern, old.get(name))
        patterns[name] = entry
        notes += [f"{name}: {note}" for note in widened]
    return {"format": "directory", "patterns": patterns}, notes


def _table_changes(prefix: str, entry: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    changes = []
    if entry.get("format") and schema.get("format") and entry["format"] != schema["format"]:
        changes.append(f"{prefix}format {entry['format']} -> {schema['format']}")
    was = {str(k): str(v) for k, v in (entry.get("columns") or {}).items()}
    now = _columns(schema)
    changes += [f"{prefix}column {name!r} added ({kind})" for name, kind in now.items() if name not in was]
    changes += [f"{prefix}column {name!r} removed (was {kind})" for name, kind in was.items() if name not in now]
    changes += [
        f"{prefix}column {name!r} type {kind} -> {now[name]}"
        for name, kind in was.items()
        if name in now and now[name] != kind
    ]
    common = [n for n in was if n in now]
    ordered = schema.get("format") != "jsonl"  # an object's keys have no order
    if not changes and ordered and common != [n for n in now if n in was]:
        changes.append(f"{prefix}columns reordered: {', '.join(now)}")
    rows = int(schema.get("rows") or 0)
    bounds = entry.get("rows") or {}
    low, high = bounds.get("min"), bounds.get("max")
    if (low is not None and rows < int(low)) or (high is not None and rows > int(high)):
        declared = f"{low if low is not None else ''}..{high if high is not None else ''}"
        changes.append(f"{prefix}{rows} rows, outside the declared range {declared}")
    return changes


def _bad_table(entry: Any, where: str) -> str:
    if not isinstance(entry, dict):
        return f"{where} must be a mapping (format, columns, rows)"
    columns = entry.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        return f"{where}: columns must map each column's name to its type (id: long)"
    rows = entry.get("rows", {})
    if not isinstance(rows, dict):
        return f"{where}: rows must be a mapping (accepted, min, max), got {rows!r}"
    for key in ("accepted", "min", "max"):
        value = rows.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{where}: rows.{key} must be a whole number, got {value!r}"
    if "format" in entry and not isinstance(entry["format"], str):
        return f"{where}: format must be a name (csv, tsv, parquet, jsonl, directory)"
    return ""


def contract_error(entries: Mapping[str, Any]) -> str:
    """What is wrong with a contract's entries (a hand edit gone wrong), or ""."""
    for path, entry in entries.items():
        if isinstance(entry, dict) and entry.get("format") == "directory":
            patterns = entry.get("patterns", {})
            if not isinstance(patterns, dict):
                return f"{path}: patterns must map each file pattern to its schema"
            for name, pattern in patterns.items():
                wrong = _bad_table(pattern, f"{path}: {name}")
                if wrong:
                    return wrong
            continue
        wrong = _bad_table(entry, path)
        if wrong:
            return wrong
    return ""


def contract_changes(entry: Mapping[str, Any] | None, schema: Mapping[str, Any] | None) -> list[str]:
    """How an input's ``schema`` differs from its contract ``entry``, one line each: a column
    added, removed, retyped or moved, another format, a row count outside the declared range, a
    directory's pattern added or removed; the input missing from the contract, or no longer a table."""
    if entry is None:
        return ["not in the schema contract"] if schema is not None else []
    if schema is None:
        return ["no longer a table reprotrain can read (the contract has one)"]
    if (entry.get("format") == "directory") != (schema.get("format") == "directory"):
        return [f"format {entry.get('format')} -> {schema.get('format')}"]
    if schema.get("format") != "directory":
        return _table_changes("", entry, schema)
    changes = []
    was, now = entry.get("patterns") or {}, schema.get("patterns") or {}
    for name in sorted(set(was) | set(now)):
        if name not in was:
            changes.append(f"files {name} added ({now[name].get('files', 0)} files)")
        elif name not in now:
            changes.append(f"files {name} removed")
        else:
            changes += _table_changes(f"{name}: ", was[name], now[name])
            other = [f for f in now[name].get("differing") or [] if f not in (was[name].get("differing") or [])]
            if other:
                changes.append(f"{name}: files with other columns: {', '.join(other[:3])}")
    return changes


def schema_changes(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str]:
    """How schema ``b`` differs from schema ``a`` (two runs' inputs at one path), one line each."""
    if a is None:
        return [] if b is None else ["a table now"]
    entry, _ = accepted_entry(a, None)
    for part in [entry, *(entry.get("patterns") or {}).values()]:
        part.get("rows", {}).pop("accepted", None)
    changes = contract_changes(entry, b)
    ra, rb = _row_total(a), _row_total(b)
    if b is not None and ra != rb:
        changes.append(f"rows {ra} -> {rb}")
    return changes


def _row_total(schema: Mapping[str, Any] | None) -> int | None:
    if schema is None:
        return None
    if schema.get("format") == "directory":
        return sum(int(p.get("rows") or 0) for p in (schema.get("patterns") or {}).values())
    return int(schema.get("rows") or 0)


# --- MLflow's dataset panel ----------------------------------------------------------------------------

_MLFLOW_TYPES = {"boolean", "integer", "long", "float", "double", "string", "binary", "datetime"}


def _main_table(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if schema.get("format") != "directory":
        return schema
    readable = [p for p in (schema.get("patterns") or {}).values() if p.get("columns") is not None]
    return max(readable, key=lambda p: int(p.get("files") or 0), default=None)


def mlflow_schema(schema: Mapping[str, Any], name: Any = str) -> str | None:
    """The dataset's schema as MLflow's UI reads it (`mlflow_colspec`; a directory: its pattern of
    the most files); a type MLflow has no name for is a string. ``name`` masks a column's name."""
    import json

    table = _main_table(schema)
    if table is None:
        return None
    columns = [
        {"type": c["type"] if c["type"] in _MLFLOW_TYPES else "string", "name": name(str(c["name"]))}
        for c in table.get("columns") or []
    ]
    return json.dumps({"mlflow_colspec": columns})


def mlflow_profile(schema: Mapping[str, Any]) -> dict[str, Any]:
    """What the dataset panel's profile adds for a table: its rows, columns and format (a
    directory: files and rows per pattern)."""
    if schema.get("format") != "directory":
        return {"format": schema.get("format"), "rows": schema.get("rows"), "columns": len(schema.get("columns") or [])}
    patterns = schema.get("patterns") or {}
    return {
        "format": "directory",
        "rows": _row_total(schema),
        "tables": {name: f"{p.get('files')} files, {p.get('rows')} rows" for name, p in patterns.items()},
    }
