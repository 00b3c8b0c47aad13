"""Unit tests of reprotrain.core.schema: CSV/TSV and JSON Lines typing, the hand-written Parquet
footer reader (checked against pyarrow's own view of real files), directories grouped by pattern,
the schema contract's changes and MLflow's schema and profile. No network, no git, no DVC."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from reprotrain.core import schema as sch
from reprotrain.core.schema import (
    ParquetError,
    accepted_entry,
    contract_changes,
    csv_schema,
    directory_schema,
    jsonl_schema,
    mlflow_profile,
    mlflow_schema,
    parquet_footer_schema,
    parquet_footer_size,
    pattern_of,
    schema_changes,
    table_format,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


# --- helpers ---------------------------------------------------------------------------------------


def parquet_bytes(table: Any, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def footer_of(data: bytes) -> bytes:
    length = parquet_footer_size(data[-8:])
    return data[-8 - length : -8]


def read_parquet(data: bytes) -> dict[str, Any]:
    return parquet_footer_schema(footer_of(data))


def read_parquet_file(path: Path) -> dict[str, Any]:
    """As the adapter reads a file: its last 8 bytes, then the footer before them."""
    size = path.stat().st_size
    with open(path, "rb") as raw:
        raw.seek(size - 8)
        length = parquet_footer_size(raw.read(8))
        raw.seek(size - 8 - length)
        return parquet_footer_schema(raw.read(length))


def assert_matches_pyarrow(ours: dict[str, Any], data_or_path: bytes | Path) -> None:
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    meta = pq.ParquetFile(source).metadata
    arrow = meta.schema.to_arrow_schema()
    assert ours["format"] == "parquet"
    assert [c["name"] for c in ours["columns"]] == arrow.names
    assert ours["rows"] == meta.num_rows


def types_of(result: dict[str, Any] | None) -> list[tuple[str, str]]:
    assert result is not None
    return [(c["name"], c["type"]) for c in result["columns"]]


def csv_rows(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


# Thrift compact protocol, written by hand, for footers pyarrow would never write.
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zz(n: int) -> bytes:
    return varint((n << 1) ^ (n >> 63))


def string(s: str) -> bytes:
    raw = s.encode()
    return varint(len(raw)) + raw


def field(delta: int, kind: int) -> bytes:
    assert 0 < delta < 16
    return bytes([(delta << 4) | kind])


def long_field(fid: int, kind: int) -> bytes:
    return bytes([kind]) + zz(fid)


def element(name: str, physical: int | None = None, children: int | None = None) -> bytes:
    out = b""
    last = 0
    if physical is not None:
        out += field(1, 5) + zz(physical)
        last = 1
    out += field(4 - last, 8) + string(name)
    if children is not None:
        out += field(1, 5) + zz(children)
    return out + b"\x00"


def file_metadata(elements: list[bytes], rows: int | None, extra: bytes = b"") -> bytes:
    out = field(1, 5) + zz(2)  # version
    out += field(1, 9) + bytes([(len(elements) << 4) | 12]) + b"".join(elements)  # schema (< 15 elements)
    if rows is not None:
        out += field(1, 6) + zz(rows)
    return out + extra + b"\x00"


# --- table_format ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("a.csv", "csv"),
        ("dir/b.TSV", "tsv"),
        ("x.parquet", "parquet"),
        ("x.PQ", "parquet"),
        ("y.jsonl", "jsonl"),
        ("y.ndjson", "jsonl"),
        ("z.json", None),
        ("README", None),
        ("data.csv.gz", "csv"),  # gzipped CSV, TSV and JSON Lines are read too
        ("d/e.JSONL.GZ", "jsonl"),
        ("archive.tar.gz", None),
        ("x.parquet.gz", None),
    ],
)
def test_table_format_by_suffix(path, fmt):
    assert table_format(path) == fmt


# --- CSV / TSV ------------------------------------------------------------------------------------


def test_csv_header_only_has_zero_rows_and_string_columns():
    assert csv_schema(csv_rows("id,name\n")) == {
        "format": "csv",
        "columns": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}],
        "rows": 0,
    }


def test_csv_types_of_columns():
    text = "i,f,mixnum,b,s,mixed\n1,1.5,1,true,abc,1\n-2,2e3,2.5,FALSE,def,x\n30,nan, 3 , True ,g,true\n"
    result = csv_schema(csv_rows(text))
    assert types_of(result) == [
        ("i", "long"),
        ("f", "double"),
        ("mixnum", "double"),  # long then double: double
        ("b", "boolean"),
        ("s", "string"),
        ("mixed", "string"),  # long, string, boolean: string
    ]
    assert result["rows"] == 3


def test_csv_boolean_and_number_mixed_is_string():
    assert types_of(csv_schema(csv_rows("a\ntrue\n1\n"))) == [("a", "string")]
    assert types_of(csv_schema(csv_rows("a\n1.5\nfalse\n"))) == [("a", "string")]


def test_csv_blank_lines_are_not_rows():
    result = csv_schema(csv_rows("a,b\n\n1,2\n\n\n3,4\n\n"))
    assert result["rows"] == 2
    assert types_of(result) == [("a", "long"), ("b", "long")]


def test_csv_missing_values_do_not_type_a_column():
    result = csv_schema(csv_rows("a,b,c\n,1,\n2,,\n,3.5,\n"))
    assert types_of(result) == [("a", "long"), ("b", "double"), ("c", "string")]  # c: only missing
    assert result["rows"] == 3


def test_tsv_format_is_kept():
    result = csv_schema(csv_rows("a\tb\n1\tx\n", delimiter="\t"), "tsv")
    assert result == {
        "format": "tsv",
        "columns": [{"name": "a", "type": "long"}, {"name": "b", "type": "string"}],
        "rows": 1,
    }


def test_csv_rows_longer_or_shorter_than_the_header():
    rows = [["a", "b"], ["1"], ["2", "x", "9.5", "junk"], ["3", "y"]]
    result = csv_schema(rows)
    # extra values are ignored, a short row's missing values are missing; every row counts
    assert types_of(result) == [("a", "long"), ("b", "string")]
    assert result["rows"] == 3


def test_csv_extra_values_do_not_retype_the_last_column():
    assert types_of(csv_schema([["a"], ["1", "text"], ["2", "more"]])) == [("a", "long")]


@pytest.mark.parametrize("header", [[], [""], ["", "  "]])
def test_csv_header_without_any_name_is_none(header):
    assert csv_schema([header, ["1", "2"]]) is None


@pytest.mark.parametrize(
    ("header", "names"),
    [(["a", ""], ["a", "Unnamed: 1"]), (["", "b"], ["Unnamed: 0", "b"]), (["a", "   "], ["a", "Unnamed: 1"])],
)
def test_csv_unnamed_columns_are_named_as_pandas_reads_them(header, names):
    assert [c["name"] for c in (csv_schema([header, ["1", "2"]]) or {})["columns"]] == names


def test_csv_no_rows_at_all_is_none():
    assert csv_schema([]) is None
    assert csv_schema(iter([])) is None


def test_csv_types_come_from_the_sample_but_every_row_is_counted(monkeypatch):
    monkeypatch.setattr(sch, "SAMPLE_ROWS", 3)
    rows = [["n", "s"]] + [[str(i), "x"] for i in range(3)] + [["oops", "1"]] * 5
    result = csv_schema(iter(rows))
    assert types_of(result) == [("n", "long"), ("s", "string")]
    assert result["rows"] == 8


def test_csv_sample_boundary(monkeypatch):
    monkeypatch.setattr(sch, "SAMPLE_ROWS", 3)
    # the third row is still in the sample: it makes the column a string
    rows = [["n"], ["1"], ["2"], ["three"], ["4"]]
    result = csv_schema(rows)
    assert types_of(result) == [("n", "string")]
    assert result["rows"] == 4


def test_csv_blank_lines_do_not_use_up_the_sample(monkeypatch):
    monkeypatch.setattr(sch, "SAMPLE_ROWS", 2)
    rows = [["n"], [], [], [], ["1"], ["x"]]
    result = csv_schema(rows)
    assert types_of(result) == [("n", "string")]
    assert result["rows"] == 2


def test_csv_default_sample_is_large():
    assert sch.SAMPLE_ROWS >= 1000
    rows = [["n"]] + [[str(i)] for i in range(1500)]
    result = csv_schema(rows)
    assert result["rows"] == 1500
    assert types_of(result) == [("n", "long")]


def test_csv_underscored_or_non_ascii_digits_are_strings():
    assert types_of(csv_schema([["a", "b"], ["1_000", "1_0.5"]])) == [("a", "string"), ("b", "string")]


# --- JSON Lines -----------------------------------------------------------------------------------


def test_jsonl_keys_in_order_of_first_appearance_and_types():
    records = [
        {"b": 1, "a": "x"},
        {"a": "y", "c": 1.5, "b": 2},
        {"d": None, "b": 3.25, "e": [1, 2], "f": {"k": 1}, "g": True},
        {"d": False},
    ]
    result = jsonl_schema(records)
    assert types_of(result) == [
        ("b", "double"),  # long then double
        ("a", "string"),
        ("c", "double"),
        ("d", "boolean"),  # null ignored, then boolean
        ("e", "array"),
        ("f", "object"),
        ("g", "boolean"),
    ]
    assert result == {"format": "jsonl", "columns": result["columns"], "rows": 4}


def test_jsonl_only_nulls_is_string_and_bool_is_not_long():
    result = jsonl_schema([{"n": None, "b": True}, {"n": None, "b": 1}])
    assert types_of(result) == [("n", "string"), ("b", "string")]  # boolean and long: string


def test_jsonl_nested_mixed_with_scalars_is_string():
    assert types_of(jsonl_schema([{"x": [1]}, {"x": {"a": 1}}])) == [("x", "string")]
    assert types_of(jsonl_schema([{"x": [1]}, {"x": 2}])) == [("x", "string")]


@pytest.mark.parametrize("bad", [[1, 2], "text", 3, None, True])
def test_jsonl_a_line_that_is_no_object_is_none(bad):
    assert jsonl_schema([{"a": 1}, bad, {"a": 2}]) is None


def test_jsonl_empty():
    assert jsonl_schema([]) == {"format": "jsonl", "columns": [], "rows": 0}
    assert jsonl_schema([{}, {}]) == {"format": "jsonl", "columns": [], "rows": 2}


def test_jsonl_sample_rows(monkeypatch):
    monkeypatch.setattr(sch, "SAMPLE_ROWS", 2)
    result = jsonl_schema([{"a": 1}, {"a": 2}, {"a": "x", "late": 1}, {"a": 4}])
    assert types_of(result) == [("a", "long")]  # "late" only after the sample
    assert result["rows"] == 4


def test_jsonl_non_object_after_the_sample_is_still_none(monkeypatch):
    monkeypatch.setattr(sch, "SAMPLE_ROWS", 1)
    assert jsonl_schema([{"a": 1}, {"a": 2}, [3]]) is None


# --- Parquet: the footer's size -------------------------------------------------------------------


def test_parquet_footer_size_reads_little_endian_length():
    assert parquet_footer_size(b"\x10\x02\x00\x00PAR1") == 0x210
    assert parquet_footer_size(b"\x00\x00\x00\x00PAR1") == 0


@pytest.mark.parametrize(
    "tail",
    [b"", b"PAR1", b"\x10\x00\x00PAR1", b"\x10\x00\x00\x00PAR1x", b"\x10\x00\x00\x00PARE", b"12345678"],
)
def test_parquet_footer_size_rejects_a_tail_without_par1(tail):
    with pytest.raises(ParquetError):
        parquet_footer_size(tail)


def test_parquet_error_is_a_value_error():
    assert issubclass(ParquetError, ValueError)


def test_not_a_parquet_file_tail(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(ValueError):
        read_parquet_file(path)


# --- Parquet: real files --------------------------------------------------------------------------

# arrow type -> the reader's type (the same for every format version, except where noted)
TYPES: dict[str, tuple[Any, str]] = {
    "i8": (pa.int8(), "integer"),
    "i16": (pa.int16(), "integer"),
    "i32": (pa.int32(), "integer"),
    "i64": (pa.int64(), "long"),
    "u8": (pa.uint8(), "integer"),
    "u16": (pa.uint16(), "integer"),
    "u64": (pa.uint64(), "long"),
    "f32": (pa.float32(), "float"),
    "f64": (pa.float64(), "double"),
    "flag": (pa.bool_(), "boolean"),
    "s": (pa.string(), "string"),
    "ls": (pa.large_string(), "string"),
    "bin": (pa.binary(), "binary"),
    "lbin": (pa.large_binary(), "binary"),
    "fbin": (pa.binary(4), "binary"),
    "day": (pa.date32(), "date"),
    "ts_ms": (pa.timestamp("ms"), "datetime"),
    "ts_us": (pa.timestamp("us"), "datetime"),
    "ts_ns": (pa.timestamp("ns"), "datetime"),
    "ts_ms_tz": (pa.timestamp("ms", tz="UTC"), "datetime"),
    "ts_us_tz": (pa.timestamp("us", tz="America/New_York"), "datetime"),
    "ts_ns_tz": (pa.timestamp("ns", tz="Europe/Paris"), "datetime"),
    "t_ms": (pa.time32("ms"), "time"),
    "t_us": (pa.time64("us"), "time"),
    "t_ns": (pa.time64("ns"), "time"),
    "dec": (pa.decimal128(10, 2), "decimal(10,2)"),
    "dec_big": (pa.decimal128(38, 9), "decimal(38,9)"),
    "dec_int": (pa.decimal128(5, 0), "decimal(5,0)"),
    "lst": (pa.list_(pa.int32()), "list"),
    "llst": (pa.large_list(pa.string()), "list"),
    "lst_of_struct": (pa.list_(pa.struct([("x", pa.int64()), ("y", pa.list_(pa.string()))])), "list"),
    "st": (pa.struct([("a", pa.int32()), ("inner", pa.struct([("c", pa.string()), ("d", pa.float64())]))]), "struct"),
    "mp": (pa.map_(pa.string(), pa.int64()), "map"),
    "mp_nested": (pa.map_(pa.string(), pa.list_(pa.int32())), "map"),
    "cat": (pa.dictionary(pa.int32(), pa.string()), "string"),
    "after_nested": (pa.int64(), "long"),  # a plain column after the nested ones: their descendants skipped
}


def sample_values(kind: Any) -> list[Any]:
    if pa.types.is_dictionary(kind):
        return ["red", None, "red"]
    if pa.types.is_boolean(kind):
        return [True, None, False]
    if pa.types.is_integer(kind):
        return [1, None, 2]
    if pa.types.is_floating(kind):
        return [1.5, None, 2.5]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ["a", None, "é"]
    if pa.types.is_fixed_size_binary(kind):
        return [b"abcd", None, b"wxyz"]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [b"\x00\x01", None, b""]
    if pa.types.is_date32(kind):
        return [datetime.date(2024, 1, 2), None, datetime.date(1970, 1, 1)]
    if pa.types.is_timestamp(kind):
        return [datetime.datetime(2024, 1, 2, 3, 4, 5), None, datetime.datetime(2000, 1, 1)]
    if pa.types.is_time(kind):
        return [datetime.time(1, 2, 3), None, datetime.time(23, 59, 59)]
    if pa.types.is_decimal(kind):
        return [decimal.Decimal(1).scaleb(-kind.scale), None, decimal.Decimal(0)]
    if pa.types.is_map(kind):
        value = [1, 2] if pa.types.is_list(kind.item_type) else 1
        return [[("k", value)], None, []]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if pa.types.is_struct(kind.value_type):
            return [[{"x": 1, "y": ["a"]}], None, []]
        return [[1, 2] if pa.types.is_integer(kind.value_type) else ["a"], None, []]
    if pa.types.is_struct(kind):
        return [{"a": 1, "inner": {"c": "z", "d": 0.5}}, None, {"a": None, "inner": None}]
    raise AssertionError(kind)


def typed_table(types: dict[str, tuple[Any, str]] = TYPES) -> Any:
    return pa.table({name: pa.array(sample_values(kind), type=kind) for name, (kind, _) in types.items()})


@pytest.mark.parametrize("version", ["1.0", "2.4", "2.6"])
def test_parquet_types_match_pyarrow_columns(version):
    data = parquet_bytes(typed_table(), version=version)
    ours = read_parquet(data)
    assert_matches_pyarrow(ours, data)
    assert ours["rows"] == 3
    assert types_of(ours) == [(name, expected) for name, (_, expected) in TYPES.items()]


def test_parquet_uint32_in_format_1_0_is_long():
    # version 1.0 has no unsigned 32-bit annotation: pyarrow stores uint32 as INT64
    data = parquet_bytes(pa.table({"u": pa.array([0, 4_294_967_295], pa.uint32())}), version="1.0")
    assert types_of(read_parquet(data)) == [("u", "long")]


@pytest.mark.parametrize("version", ["2.4", "2.6"])
def test_parquet_uint32_is_long_whatever_the_format_version(version):
    data = parquet_bytes(pa.table({"u": pa.array([0, 4_294_967_295], pa.uint32())}), version=version)
    assert types_of(read_parquet(data)) == [("u", "long")]


def test_parquet_int96_timestamps_are_datetime():
    table = pa.table({"ts": pa.array([datetime.datetime(2024, 1, 1)], pa.timestamp("ns"))})
    data = parquet_bytes(table, use_deprecated_int96_timestamps=True)
    assert "int96" in str(pq.ParquetFile(io.BytesIO(data)).schema).lower()
    assert types_of(read_parquet(data)) == [("ts", "datetime")]


def test_parquet_decimal_stored_as_integer():
    table = pa.table({"d4": pa.array([decimal.Decimal("1.25")], pa.decimal128(4, 2))})
    table = table.append_column("d12", pa.array([decimal.Decimal("12.5")], pa.decimal128(12, 1)))
    data = parquet_bytes(table, store_decimal_as_integer=True)
    assert types_of(read_parquet(data)) == [("d4", "decimal(4,2)"), ("d12", "decimal(12,1)")]


@pytest.mark.parametrize("compression", ["none", "snappy", "zstd", "gzip"])
@pytest.mark.parametrize("version", ["1.0", "2.6"])
def test_parquet_compression_and_version(tmp_path, compression, version):
    path = tmp_path / f"t-{compression}-{version}.parquet"
    table = pa.table({"id": list(range(50)), "name": [f"n{i}" for i in range(50)], "x": [i / 3 for i in range(50)]})
    pq.write_table(table, path, compression=compression, version=version)
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    assert ours == {
        "format": "parquet",
        "columns": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "x", "type": "double"},
        ],
        "rows": 50,
    }


@pytest.mark.parametrize("row_group_size", [1, 7, 100])
def test_parquet_many_row_groups_count_every_row(tmp_path, row_group_size):
    path = tmp_path / "groups.parquet"
    n = 250
    table = pa.table({"a": list(range(n)), "b": [str(i) for i in range(n)], "s": [{"x": i} for i in range(n)]})
    pq.write_table(table, path, row_group_size=row_group_size)
    meta = pq.read_metadata(path)
    assert meta.num_row_groups == -(-n // row_group_size)
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    assert ours["rows"] == n
    assert types_of(ours) == [("a", "long"), ("b", "string"), ("s", "struct")]


def test_parquet_with_statistics_page_index_sorting_columns(tmp_path):
    path = tmp_path / "extras.parquet"
    table = pa.table({"k": [3, 1, 2] * 10, "v": ["a", "b", None] * 10, "f": [True, False, None] * 10})
    pq.write_table(
        table,
        path,
        row_group_size=4,
        write_statistics=True,
        write_page_index=True,
        sorting_columns=[pq.SortingColumn(0, descending=True, nulls_first=True)],
        data_page_version="2.0",
    )
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    assert types_of(ours) == [("k", "long"), ("v", "string"), ("f", "boolean")]
    assert ours["rows"] == 30


def test_parquet_empty_table(tmp_path):
    path = tmp_path / "empty.parquet"
    table = pa.table(
        {"a": pa.array([], pa.int32()), "b": pa.array([], pa.string()), "c": pa.array([], pa.list_(pa.float64()))}
    )
    pq.write_table(table, path)
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    assert ours == {
        "format": "parquet",
        "columns": [{"name": "a", "type": "integer"}, {"name": "b", "type": "string"}, {"name": "c", "type": "list"}],
        "rows": 0,
    }


@pytest.mark.parametrize("count", [14, 15, 16, 200])
def test_parquet_wide_tables_use_the_long_list_header(tmp_path, count):
    # the schema list holds count + 1 elements: from 15 its size is a varint after the header
    path = tmp_path / "wide.parquet"
    names = [f"c{i:03d}" for i in range(count)]
    arrays = {
        0: lambda i: pa.array([i, None]),
        1: lambda i: pa.array([str(i), None]),
        2: lambda i: pa.array([i, None], pa.float32()),
    }
    columns = {name: arrays[i % 3](i) for i, name in enumerate(names)}
    pq.write_table(pa.table(columns), path)
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    expected = {0: "long", 1: "string", 2: "float"}
    assert types_of(ours) == [(name, expected[i % 3]) for i, name in enumerate(names)]
    assert ours["rows"] == 2


def test_parquet_key_value_metadata_and_odd_names(tmp_path):
    path = tmp_path / "meta.parquet"
    table = pa.table({"température": [1.0], "with space": ["x"], "": [1]})
    table = table.replace_schema_metadata({"owner": "team", "big": "x" * 5000, "ünïcode": "ÿ"})
    pq.write_table(table, path)
    assert pq.read_metadata(path).metadata[b"owner"] == b"team"
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    assert types_of(ours) == [("température", "double"), ("with space", "string"), ("", "long")]


def test_parquet_without_arrow_schema_metadata(tmp_path):
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), path, store_schema=False)
    assert b"ARROW:schema" not in (pq.read_metadata(path).metadata or {})
    ours = read_parquet_file(path)
    assert_matches_pyarrow(ours, path)
    assert types_of(ours) == [("a", "long"), ("b", "string")]


def test_parquet_dictionary_encoded_and_plain_strings_agree():
    strings = ["a", "b", "a", None] * 50
    plain = read_parquet(parquet_bytes(pa.table({"s": strings}), use_dictionary=False))
    encoded = read_parquet(parquet_bytes(pa.table({"s": pa.array(strings).dictionary_encode()})))
    assert plain == encoded == {"format": "parquet", "columns": [{"name": "s", "type": "string"}], "rows": 200}


def test_parquet_deeply_nested_struct_then_plain_column():
    deep = pa.struct([("l1", pa.struct([("l2", pa.struct([("l3", pa.list_(pa.map_(pa.string(), pa.int8())))]))]))])
    table = pa.table(
        {
            "first": pa.array([1], pa.int16()),
            "deep": pa.array([{"l1": {"l2": {"l3": [[("k", 1)]]}}}], deep),
            "last": pa.array(["z"]),
        }
    )
    data = parquet_bytes(table)
    ours = read_parquet(data)
    assert_matches_pyarrow(ours, data)
    assert types_of(ours) == [("first", "integer"), ("deep", "struct"), ("last", "string")]


# --- Parquet: bad footers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_footer() -> bytes:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [[1], [2], []]})
    return footer_of(parquet_bytes(table))


@pytest.mark.parametrize("keep", [0, 1, 2, 5, 10, 0.25, 0.5, 0.9, -1])
def test_truncated_footer_is_a_parquet_error(good_footer, keep):
    end = int(len(good_footer) * keep) if isinstance(keep, float) else keep
    with pytest.raises(ParquetError):
        parquet_footer_schema(good_footer[:end])


def test_every_truncation_of_a_footer_is_a_parquet_error(good_footer):
    for end in range(len(good_footer)):
        with pytest.raises(ParquetError):
            parquet_footer_schema(good_footer[:end])


def test_a_truncated_file_fails_at_the_tail(tmp_path):
    data = parquet_bytes(pa.table({"a": [1]}))
    with pytest.raises(ParquetError):
        parquet_footer_size(data[:-1][-8:])


def test_the_untouched_footer_reads(good_footer):
    assert types_of(parquet_footer_schema(good_footer)) == [("a", "long"), ("b", "string"), ("c", "list")]


def test_empty_struct_footer_has_no_schema():
    with pytest.raises(ParquetError, match="no schema"):
        parquet_footer_schema(b"\x00")


def test_footer_without_row_count():
    footer = file_metadata([element("schema", children=1), element("x", physical=1)], rows=None)
    with pytest.raises(ParquetError):
        parquet_footer_schema(footer)


def test_footer_whose_root_claims_more_children_than_elements():
    footer = file_metadata([element("schema", children=3), element("x", physical=1)], rows=1)
    with pytest.raises(ParquetError, match="fewer elements"):
        parquet_footer_schema(footer)


SKIPPED_FIELDS = (
    long_field(40, 1)  # a boolean field (true), its id in the long form
    + field(1, 2)  # false
    + field(1, 9)
    + bytes([0x31])
    + b"\x01\x02\x01"  # list<bool> of 3: a boolean element is a byte of its own
    + field(1, 7)
    + struct.pack("<d", 1.5)  # a double: 8 bytes
    + field(1, 11)
    + varint(2)
    + bytes([0x85])
    + string("k1")
    + zz(7)
    + string("k2")
    + zz(-7)  # map<binary, i32>
    + field(1, 11)
    + varint(0)  # an empty map: no types byte
    + field(1, 12)
    + field(1, 8)
    + string("nested")
    + field(2, 3)
    + b"\xff"
    + b"\x00"  # a struct
    + field(1, 10)
    + bytes([0x06])  # an empty set<i64>
    + long_field(100, 4)
    + zz(-5)  # an i16
)


def test_hand_written_footer_with_fields_the_reader_skips():
    # the skipped fields come before the row count, itself in the long form (id 3): a byte
    # misread among them, or a long-form id read as a plain varint, loses the row count
    elements = [element("schema", children=2), element("x", physical=1), element("y", physical=6)]
    footer = file_metadata(elements, rows=None, extra=SKIPPED_FIELDS + long_field(3, 6) + zz(12))
    assert parquet_footer_schema(footer) == {
        "format": "parquet",
        "columns": [{"name": "x", "type": "integer"}, {"name": "y", "type": "binary"}],
        "rows": 12,
    }


def test_hand_written_footer_with_a_long_form_row_count_alone():
    footer = file_metadata(
        [element("schema", children=1), element("x", physical=2)], rows=None, extra=long_field(3, 6) + zz(7)
    )
    assert parquet_footer_schema(footer)["rows"] == 7
    assert parquet_footer_schema(footer)["columns"] == [{"name": "x", "type": "long"}]


@pytest.mark.parametrize("kind", [0, 13, 14, 15])
def test_unknown_thrift_type_is_a_parquet_error(kind):
    footer = file_metadata([element("schema", children=0)], rows=0, extra=field(5, kind) + b"\x00" * 4)
    with pytest.raises(ParquetError):
        parquet_footer_schema(footer)


def test_overlong_varint_is_a_parquet_error():
    with pytest.raises(ParquetError, match="varint"):
        parquet_footer_schema(field(3, 6) + b"\xff" * 20)


def test_string_past_the_footer_is_a_parquet_error():
    with pytest.raises(ParquetError, match="past the footer"):
        parquet_footer_schema(field(6, 8) + varint(1000) + b"abc")


def test_list_longer_than_the_footer_is_a_parquet_error():
    with pytest.raises(ParquetError, match="longer than the footer"):
        parquet_footer_schema(field(2, 9) + bytes([0xFC]) + varint(10**6))


# --- directories ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "pattern"),
    [
        ("a.csv", "*.csv"),
        ("A.CSV", "*.csv"),
        ("train/a.csv", "train/*.csv"),
        ("year=2024/month=1/x.parquet", "year=*/month=*/*.parquet"),
        ("year=2024/p-0.parquet", "year=*/*.parquet"),
        ("data/split=train/part.jsonl", "data/split=*/*.jsonl"),
        ("k=/x.csv", "k=*/*.csv"),  # an empty partition value
        ("a=b=c/x.csv", "a=*/*.csv"),
        ("noext", "*"),
        ("d/archive.tar.gz", "d/*.gz"),
    ],
)
def test_pattern_of(relpath, pattern):
    assert pattern_of(relpath) == pattern


def table(cols: list[tuple[str, str]], rows: int, fmt: str = "parquet") -> dict[str, Any]:
    return {"format": fmt, "columns": [{"name": n, "type": t} for n, t in cols], "rows": rows}


A = [("id", "long"), ("x", "double")]
B = [("id", "long"), ("x", "string")]


def test_directory_schema_groups_by_pattern():
    files = [
        ("year=2024/month=2/b.parquet", table(A, 5)),
        ("year=2023/month=1/a.parquet", table(A, 10)),
        ("top.csv", table([("k", "string")], 3, "csv")),
        ("year=2024/month=3/c.parquet", table(A, 0)),
    ]
    assert directory_schema(files) == {
        "format": "directory",
        "files": 4,
        "patterns": {
            "*.csv": {"files": 1, "rows": 3, "format": "csv", "columns": [{"name": "k", "type": "string"}]},
            "year=*/month=*/*.parquet": {
                "files": 3,
                "rows": 15,
                "format": "parquet",
                "columns": table(A, 0)["columns"],
            },
        },
    }


def test_directory_schema_lists_differing_and_unreadable_files():
    files = [
        ("p/c.parquet", table(B, 1)),
        ("p/a.parquet", table(A, 2)),  # first by path: the pattern's columns
        ("p/b.parquet", None),
        ("p/d.parquet", table([("id", "long")], 4)),
        ("p/e.parquet", table(A, 8)),
    ]
    result = directory_schema(files)
    pattern = result["patterns"]["p/*.parquet"]
    assert pattern["columns"] == table(A, 0)["columns"]
    assert pattern["differing"] == ["p/c.parquet", "p/d.parquet"]
    assert pattern["unreadable"] == ["p/b.parquet"]
    assert pattern["files"] == 5
    assert pattern["rows"] == 1 + 2 + 4 + 8
    assert result["files"] == 5


def test_directory_schema_first_readable_file_gives_the_columns():
    result = directory_schema([("a.csv", None), ("b.csv", table(A, 2, "csv")), ("c.csv", table(B, 1, "csv"))])
    pattern = result["patterns"]["*.csv"]
    assert pattern["columns"] == table(A, 0)["columns"]
    assert pattern["unreadable"] == ["a.csv"]
    assert pattern["differing"] == ["c.csv"]


def test_directory_schema_only_unreadable_files():
    result = directory_schema([("x/a.parquet", None), ("x/b.parquet", None)])
    assert result == {
        "format": "directory",
        "files": 2,
        "patterns": {"x/*.parquet": {"files": 2, "rows": 0, "unreadable": ["x/a.parquet", "x/b.parquet"]}},
    }


def test_directory_schema_keeps_ten_names_of_each_list():
    files = [(f"d/{i:02d}.csv", None) for i in range(15)] + [(f"d/{i:02d}x.csv", table(B, 1, "csv")) for i in range(15)]
    files.append(("d/00.csv", None))
    files[0] = ("d/000.csv", table(A, 1, "csv"))
    pattern = directory_schema(files)["patterns"]["d/*.csv"]
    assert len(pattern["unreadable"]) == 10
    assert len(pattern["differing"]) == 10
    assert pattern["files"] == 31


def test_directory_schema_of_nothing_is_none():
    assert directory_schema([]) is None
    assert directory_schema(iter([])) is None


def test_directory_schema_with_real_parquet_files(tmp_path):
    root = tmp_path / "ds"
    for year, month, n in [(2023, 12, 3), (2024, 1, 2), (2024, 2, 5)]:
        part = root / f"year={year}" / f"month={month}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"v": list(range(n)), "s": ["x"] * n}), part / "part-0.parquet")
    (root / "year=2024" / "month=2" / "broken.parquet").write_bytes(b"not parquet at all")

    def read(path: Path) -> dict[str, Any] | None:
        try:
            return read_parquet_file(path)
        except ValueError:
            return None

    files = [(p.relative_to(root).as_posix(), read(p)) for p in root.rglob("*.parquet")]
    result = directory_schema(files)
    assert list(result["patterns"]) == ["year=*/month=*/*.parquet"]
    pattern = result["patterns"]["year=*/month=*/*.parquet"]
    assert pattern["rows"] == 10
    assert pattern["files"] == 4
    assert pattern["unreadable"] == ["year=2024/month=2/broken.parquet"]
    assert pattern["columns"] == [{"name": "v", "type": "long"}, {"name": "s", "type": "string"}]
    assert "differing" not in pattern


# --- the contract ---------------------------------------------------------------------------------


def test_accepted_entry_of_a_table():
    entry, notes = accepted_entry(table(A, 10, "csv"), None)
    assert entry == {"format": "csv", "columns": {"id": "long", "x": "double"}, "rows": {"accepted": 10}}
    assert list(entry["columns"]) == ["id", "x"]
    assert notes == []


def test_accepted_entry_keeps_the_users_range():
    kept = {"format": "csv", "columns": {}, "rows": {"accepted": 3, "min": 5, "max": 100, "other": 1}}
    entry, notes = accepted_entry(table(A, 10, "csv"), kept)
    assert entry["rows"] == {"accepted": 10, "min": 5, "max": 100}
    assert notes == []


def test_accepted_entry_widens_the_range_with_a_note():
    entry, notes = accepted_entry(table(A, 2), {"rows": {"min": 5, "max": 100}})
    assert entry["rows"] == {"accepted": 2, "min": 2, "max": 100}
    assert notes == ["rows min 5 -> 2"]
    entry, notes = accepted_entry(table(A, 200), {"rows": {"min": 5, "max": 100}})
    assert entry["rows"] == {"accepted": 200, "min": 5, "max": 200}
    assert notes == ["rows max 100 -> 200"]
    entry, notes = accepted_entry(table(A, 200), {"rows": {"max": 100}})
    assert entry["rows"] == {"accepted": 200, "max": 200}
    assert notes == ["rows max 100 -> 200"]


def test_accepted_entry_range_at_its_bounds_is_not_widened():
    entry, notes = accepted_entry(table(A, 5), {"rows": {"min": 5, "max": 5}})
    assert entry["rows"] == {"accepted": 5, "min": 5, "max": 5}
    assert notes == []


def directory(patterns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"format": "directory", "files": sum(p.get("files", 0) for p in patterns.values()), "patterns": patterns}


def pattern(cols: list[tuple[str, str]], rows: int, files: int, fmt: str = "parquet", **extra: Any) -> dict[str, Any]:
    return {"files": files, "rows": rows, "format": fmt, "columns": table(cols, 0)["columns"], **extra}


def test_accepted_entry_of_a_directory_keeps_each_patterns_range():
    schema = directory({"a/*.csv": pattern(A, 7, 2, "csv"), "b/*.parquet": pattern(B, 50, 3)})
    kept = {"format": "directory", "patterns": {"a/*.csv": {"rows": {"min": 10}}, "b/*.parquet": {"rows": {"max": 60}}}}
    entry, notes = accepted_entry(schema, kept)
    assert entry == {
        "format": "directory",
        "patterns": {
            "a/*.csv": {
                "format": "csv",
                "columns": {"id": "long", "x": "double"},
                "rows": {"accepted": 7, "min": 7},
                "files": 2,
            },
            "b/*.parquet": {
                "format": "parquet",
                "columns": {"id": "long", "x": "string"},
                "rows": {"accepted": 50, "max": 60},
                "files": 3,
            },
        },
    }
    assert notes == ["a/*.csv: rows min 10 -> 7"]


def test_contract_unchanged_table_has_no_changes():
    schema = table(A, 10)
    entry, _ = accepted_entry(schema, None)
    assert contract_changes(entry, schema) == []
    assert contract_changes(entry, table(A, 999)) == []  # no declared range: any count


def test_contract_column_added_removed_retyped():
    entry, _ = accepted_entry(table([("id", "long"), ("x", "double"), ("gone", "string")], 1), None)
    now = table([("id", "string"), ("x", "double"), ("new", "boolean")], 1)
    assert contract_changes(entry, now) == [
        "column 'new' added (boolean)",
        "column 'gone' removed (was string)",
        "column 'id' type long -> string",
    ]


def test_contract_columns_reordered():
    entry, _ = accepted_entry(table([("a", "long"), ("b", "string"), ("c", "double")], 1), None)
    assert contract_changes(entry, table([("c", "double"), ("a", "long"), ("b", "string")], 1)) == [
        "columns reordered: c, a, b"
    ]


def test_contract_reorder_is_not_reported_with_other_column_changes():
    entry, _ = accepted_entry(table([("a", "long"), ("b", "string")], 1), None)
    assert contract_changes(entry, table([("b", "string"), ("a", "long"), ("c", "long")], 1)) == [
        "column 'c' added (long)"
    ]


def test_contract_format_change():
    entry, _ = accepted_entry(table(A, 1, "csv"), None)
    assert contract_changes(entry, table(A, 1, "parquet")) == ["format csv -> parquet"]


def test_contract_format_missing_in_entry_is_no_change():
    assert contract_changes({"columns": {"id": "long", "x": "double"}}, table(A, 1)) == []


def test_contract_row_range_declared_and_violated():
    entry = {"format": "csv", "columns": {"id": "long", "x": "double"}, "rows": {"accepted": 10, "min": 5, "max": 20}}
    assert contract_changes(entry, table(A, 5, "csv")) == []
    assert contract_changes(entry, table(A, 20, "csv")) == []
    assert contract_changes(entry, table(A, 4, "csv")) == ["4 rows, outside the declared range 5..20"]
    assert contract_changes(entry, table(A, 21, "csv")) == ["21 rows, outside the declared range 5..20"]
    only_min = {**entry, "rows": {"min": 1}}
    assert contract_changes(only_min, table(A, 0, "csv")) == ["0 rows, outside the declared range 1.."]
    only_max = {**entry, "rows": {"max": 0}}
    assert contract_changes(only_max, table(A, 3, "csv")) == ["3 rows, outside the declared range ..0"]
    assert contract_changes(only_max, table(A, 0, "csv")) == []


def test_contract_changes_of_inputs_in_and_out_of_the_contract():
    assert contract_changes(None, table(A, 1)) == ["not in the schema contract"]
    assert contract_changes(None, None) == []
    entry, _ = accepted_entry(table(A, 1), None)
    assert contract_changes(entry, None) == ["no longer a table reprotrain can read (the contract has one)"]


def test_contract_table_became_directory_and_back():
    entry, _ = accepted_entry(table(A, 1), None)
    now = directory({"*.parquet": pattern(A, 1, 1)})
    assert contract_changes(entry, now) == ["format parquet -> directory"]
    dir_entry, _ = accepted_entry(now, None)
    assert contract_changes(dir_entry, table(A, 1)) == ["format directory -> parquet"]


def test_contract_directory_patterns_added_removed_changed():
    before = directory({"a/*.csv": pattern(A, 5, 1, "csv"), "old/*.csv": pattern(A, 1, 1, "csv")})
    entry, _ = accepted_entry(before, None)
    assert contract_changes(entry, before) == []
    after = directory(
        {
            "a/*.csv": pattern(B, 5, 2, "csv", differing=["a/2.csv", "a/3.csv", "a/4.csv", "a/5.csv"]),
            "new/*.parquet": pattern(A, 9, 4),
        }
    )
    assert contract_changes(entry, after) == [
        "a/*.csv: column 'x' type double -> string",
        "a/*.csv: files with other columns: a/2.csv, a/3.csv, a/4.csv",
        "files new/*.parquet added (4 files)",
        "files old/*.csv removed",
    ]


def test_contract_directory_pattern_row_range():
    entry = {
        "format": "directory",
        "patterns": {"*.csv": {"format": "csv", "columns": {"id": "long", "x": "double"}, "rows": {"min": 10}}},
    }
    assert contract_changes(entry, directory({"*.csv": pattern(A, 3, 1, "csv")})) == [
        "*.csv: 3 rows, outside the declared range 10.."
    ]


def test_schema_changes_between_runs():
    assert schema_changes(None, None) == []
    assert schema_changes(None, table(A, 1)) == ["a table now"]
    assert schema_changes(table(A, 1), table(A, 1)) == []
    assert schema_changes(table(A, 1), table(A, 3)) == ["rows 1 -> 3"]
    assert schema_changes(table(A, 1), table(B, 1)) == ["column 'x' type double -> string"]
    assert schema_changes(table(A, 1), None) == ["no longer a table reprotrain can read (the contract has one)"]


def test_schema_changes_ignores_any_row_range_and_does_not_mutate_its_input():
    a = table(A, 1)
    snapshot = json.dumps(a)
    assert schema_changes(a, table(A, 1000)) == ["rows 1 -> 1000"]
    assert json.dumps(a) == snapshot


def test_schema_changes_of_directories():
    a = directory({"x/*.csv": pattern(A, 4, 2, "csv"), "y/*.csv": pattern(A, 1, 1, "csv")})
    b = directory({"x/*.csv": pattern(A, 6, 3, "csv"), "z/*.csv": pattern(A, 1, 1, "csv")})
    assert schema_changes(a, b) == ["files y/*.csv removed", "files z/*.csv added (1 files)", "rows 5 -> 7"]
    assert schema_changes(a, a) == []
    assert schema_changes(a, table(A, 5)) == ["format directory -> parquet"]


# --- MLflow ---------------------------------------------------------------------------------------


def colspec(text: str | None) -> list[dict[str, str]]:
    assert text is not None
    return json.loads(text)["mlflow_colspec"]


def test_mlflow_schema_maps_unknown_types_to_string():
    schema = table(
        [
            ("b", "boolean"),
            ("i", "integer"),
            ("l", "long"),
            ("f", "float"),
            ("d", "double"),
            ("s", "string"),
            ("bin", "binary"),
            ("ts", "datetime"),
            ("day", "date"),
            ("t", "time"),
            ("dec", "decimal(10,2)"),
            ("lst", "list"),
            ("st", "struct"),
            ("m", "map"),
            ("arr", "array"),
            ("obj", "object"),
        ],
        1,
    )
    spec = colspec(mlflow_schema(schema))
    assert [(c["name"], c["type"]) for c in spec] == [
        ("b", "boolean"),
        ("i", "integer"),
        ("l", "long"),
        ("f", "float"),
        ("d", "double"),
        ("s", "string"),
        ("bin", "binary"),
        ("ts", "datetime"),
        ("day", "string"),
        ("t", "string"),
        ("dec", "string"),
        ("lst", "string"),
        ("st", "string"),
        ("m", "string"),
        ("arr", "string"),
        ("obj", "string"),
    ]


def test_mlflow_schema_of_a_real_parquet_file_is_valid_for_mlflow():
    data = parquet_bytes(typed_table())
    spec = colspec(mlflow_schema(read_parquet(data)))
    assert {c["type"] for c in spec} <= {
        "boolean",
        "integer",
        "long",
        "float",
        "double",
        "string",
        "binary",
        "datetime",
    }
    assert [c["name"] for c in spec] == list(TYPES)


def test_mlflow_schema_masks_names():
    spec = colspec(mlflow_schema(table(A, 1), name=lambda n: f"<{n.upper()}>"))
    assert spec == [{"type": "long", "name": "<ID>"}, {"type": "double", "name": "<X>"}]


def test_mlflow_schema_of_a_directory_uses_its_pattern_with_most_files():
    schema = directory(
        {
            "a/*.csv": pattern([("small", "long")], 100, 1, "csv"),
            "b/*.parquet": pattern([("big", "double"), ("when", "date")], 5, 7),
            "c/*.parquet": {"files": 50, "rows": 0, "unreadable": ["c/x.parquet"]},  # no columns: not chosen
        }
    )
    assert colspec(mlflow_schema(schema)) == [{"type": "double", "name": "big"}, {"type": "string", "name": "when"}]


def test_mlflow_schema_of_a_directory_with_no_readable_pattern_is_none():
    assert mlflow_schema(directory({"*.csv": {"files": 2, "rows": 0, "unreadable": ["a.csv", "b.csv"]}})) is None
    assert mlflow_schema({"format": "directory", "files": 0, "patterns": {}}) is None


def test_mlflow_profile_of_a_table_and_a_directory():
    assert mlflow_profile(table(A, 12, "csv")) == {"format": "csv", "rows": 12, "columns": 2}
    schema = directory({"a/*.csv": pattern(A, 4, 2, "csv"), "b/*.parquet": pattern(B, 6, 3)})
    assert mlflow_profile(schema) == {
        "format": "directory",
        "rows": 10,
        "tables": {"a/*.csv": "2 files, 4 rows", "b/*.parquet": "3 files, 6 rows"},
    }


def test_review_cases_unnamed_columns_dated_directories_and_accepted_odd_files():
    from reprotrain.core.schema import accepted_entry, contract_changes, csv_schema, directory_schema, pattern_of

    pandas_index = csv_schema([["", "a", "b"], ["0", "1", "x"]])  # df.to_csv() with its index
    assert pandas_index is not None and [c["name"] for c in pandas_index["columns"]] == ["Unnamed: 0", "a", "b"]
    assert csv_schema([["", ""], ["1", "2"]]) is None
    assert (
        pattern_of("raw/2024-06-02/part.csv") == "raw/*/*.csv"
        and pattern_of("shards/0001/x.parquet") == "shards/*/*.parquet"
    )
    one = {"format": "jsonl", "columns": [{"name": "a", "type": "long"}, {"name": "b", "type": "string"}], "rows": 1}
    keys_moved = {
        "format": "jsonl",
        "columns": [{"name": "b", "type": "string"}, {"name": "a", "type": "long"}],
        "rows": 1,
    }
    lacks_b = {"format": "jsonl", "columns": [{"name": "a", "type": "long"}], "rows": 1}
    folder = directory_schema([("x/1.jsonl", one), ("x/2.jsonl", keys_moved), ("x/3.jsonl", lacks_b)])
    assert folder is not None and folder["patterns"]["x/*.jsonl"]["differing"] == ["x/3.jsonl"], "key order is no shape"
    entry, _ = accepted_entry(folder, None)
    assert contract_changes(entry, folder) == [], "files of another shape, once accepted, are no change"
    more = directory_schema([("x/1.jsonl", one), ("x/3.jsonl", lacks_b), ("x/4.jsonl", lacks_b)])
    assert contract_changes(entry, more) == ["x/*.jsonl: files with other columns: x/4.jsonl"]
