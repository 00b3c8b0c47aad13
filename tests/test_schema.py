"""Schemas of DVC-tracked tables and the schema contract (issue 20, points 1-2), through the console
script: every table input (CSV, Parquet, JSON Lines, a directory of partitioned files) gets its
columns, types and row count in the record and in MLflow's dataset input; with
`reprotrain-schema.yaml` committed, `run` and `check` refuse (exit 3, nothing written) an input that
differs from it, each change on a line with its fix; `--accept-schema-change` runs and records it,
and a rerun of that run honours it; `schema accept` rewrites the contract; each version is read
once (remembered by its hash); `diff` shows the change between two runs."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import (
    TRACKED_DATA_DIR,
    all_runs,
    client_for,
    commit_all,
    dvc,
    embedded_uri,
    git_status,
    record_of,
    run_cli,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SAMPLES = "id,score,label\n1,0.5,cat\n2,1.5,dog\n3,,cat\n"


def add_tables(root: Path) -> None:
    """A CSV, a Parquet file, a JSON Lines file and a Hive-partitioned directory, DVC-tracked."""
    data = root / "data"
    (data / "samples.csv").write_text(SAMPLES)
    pq.write_table(pa.table({"user": pa.array([1, 2], pa.int64()), "name": ["a", "b"]}), data / "users.parquet")
    (data / "events.jsonl").write_text('{"t": 1, "kind": "click", "tags": ["x"]}\n{"t": 2, "kind": "view"}\n')
    (data / "export.tsv.gz").write_bytes(gzip.compress(b"day\tclicks\n2024-01-01\t3\n"))  # a gzipped export
    for year, rows in (("2023", "1,2\n3,4\n"), ("2024", "5,6\n")):
        part = data / "parts" / f"year={year}"
        part.mkdir(parents=True)
        (part / "p-0.csv").write_text("a,b\n" + rows)
    dvc(root, "add", "-q", "data/samples.csv", "data/users.parquet", "data/events.jsonl", "data/parts")
    dvc(root, "add", "-q", "data/export.tsv.gz")
    commit_all(root, "tables")


def cli(root: Path, *args: str):
    return run_cli(*args, cwd=root)


def new_version(root: Path, path: str, text: str) -> None:
    """An upstream dataset's new version, committed as users do (dvc add, git commit)."""
    (root / path).write_text(text)
    dvc(root, "add", "-q", path)
    commit_all(root, f"new version of {path}")


def the_run(uri: str, before: set[str]):
    (run,) = [r for r in all_runs(uri) if r.info.run_id not in before]
    return run


@pytest.fixture
def tables(project, tmp_path, monkeypatch):
    """The project with its tables; a schema memo of this test's own (one test edits its memo)."""
    monkeypatch.setenv("REPROTRAIN_SCHEMA_CACHE", str(tmp_path / "schema-memo"))
    add_tables(project)
    return project


def test_every_table_input_is_recorded_with_its_schema_and_in_mlflow(tables):
    res = cli(tables, "run")
    assert res.code == 0, res.describe()
    uri = embedded_uri(tables)
    (run,) = all_runs(uri)
    schemas = record_of(uri, run.info.run_id)["schemas"]
    assert schemas["data/samples.csv"] == {
        "format": "csv",
        "columns": [
            {"name": "id", "type": "long"},
            {"name": "score", "type": "double"},
            {"name": "label", "type": "string"},
        ],
        "rows": 3,
    }
    assert schemas["data/users.parquet"]["columns"] == [
        {"name": "user", "type": "long"},
        {"name": "name", "type": "string"},
    ]
    assert schemas["data/users.parquet"]["rows"] == 2
    assert [c["type"] for c in schemas["data/events.jsonl"]["columns"]] == ["long", "string", "array"]
    assert schemas["data/export.tsv.gz"] == {
        "format": "tsv",
        "columns": [{"name": "day", "type": "string"}, {"name": "clicks", "type": "long"}],
        "rows": 1,
    }
    parts = schemas["data/parts"]
    assert parts["format"] == "directory" and parts["files"] == 2
    assert parts["patterns"]["year=*/*.csv"]["rows"] == 3 and parts["patterns"]["year=*/*.csv"]["files"] == 2
    assert TRACKED_DATA_DIR not in schemas, "a directory without tables has no schema"

    inputs = {d.dataset.name: d.dataset for d in client_for(uri).get_run(run.info.run_id).inputs.dataset_inputs}
    colspec = json.loads(inputs["data/samples.csv"].schema)["mlflow_colspec"]
    assert [(c["name"], c["type"]) for c in colspec] == [("id", "long"), ("score", "double"), ("label", "string")]
    profile = json.loads(inputs["data/samples.csv"].profile)
    assert profile["rows"] == 3 and profile["columns"] == 3 and profile["format"] == "csv"
    assert json.loads(inputs["data/parts"].profile)["tables"] == {"year=*/*.csv": "2 files, 3 rows"}

    show = cli(tables, "show", run.info.run_id)
    assert "schema  csv, 3 rows: id long, score double, label string" in show.out, show.describe()


def test_the_contract_refuses_a_changed_upstream_schema_until_accepted(tables):
    uri = embedded_uri(tables)
    shown = cli(tables, "schema", "show")
    assert shown.code == 0 and "no schema contract: nothing is enforced" in shown.out, shown.describe()
    accepted = cli(tables, "schema", "accept")
    assert accepted.code == 0 and "git add reprotrain-schema.yaml" in accepted.out, accepted.describe()
    contract = yaml.safe_load((tables / "reprotrain-schema.yaml").read_text())
    assert contract["data/samples.csv"]["columns"] == {"id": "long", "score": "double", "label": "string"}
    tables_in = {"data/train.csv", "data/samples.csv", "data/users.parquet", "data/events.jsonl", "data/parts"}
    tables_in.add("data/export.tsv.gz")
    assert set(contract) == tables_in
    contract["data/samples.csv"]["rows"]["min"] = 2  # the user bounds the row count
    (tables / "reprotrain-schema.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    commit_all(tables, "schema contract")
    assert cli(tables, "check").code == 0
    first = cli(tables, "run")
    assert first.code == 0, first.describe()

    # upstream: a column retyped, one added, one row left
    new_version(tables, "data/samples.csv", "id,score,label,extra\nx1,0.5,cat,7\n")
    before = {r.info.run_id for r in all_runs(uri)}
    refused = cli(tables, "run")
    assert refused.code == 3, refused.describe()
    assert "1 input differs from the schema contract" in refused.err
    for change in (
        "column 'extra' added (long)",
        "column 'id' type long -> string",
        "1 rows, outside the declared range 2..",
    ):
        assert change in refused.err, refused.describe()
    assert "reprotrain schema accept data/samples.csv && git commit" in refused.err
    assert "--accept-schema-change" in refused.err
    assert {r.info.run_id for r in all_runs(uri)} == before, "nothing is written"
    assert git_status(tables) == ""
    check = cli(tables, "check", "--json")
    assert check.code == 3 and json.loads(check.out)["problems"][0]["kind"] == "schema-change", check.describe()

    forced = cli(tables, "run", "--accept-schema-change")
    assert forced.code == 0, forced.describe()
    run = the_run(uri, before)
    record = record_of(uri, run.info.run_id)
    assert record["pinned"] is True and record["schema_changes"][0]["path"] == "data/samples.csv"
    assert "column 'extra' added" in record["schema_changes"][0]["message"]
    assert run.data.tags["reprotrain.schema.accepted_changes"] == "data/samples.csv"

    again = cli(tables, "rerun", run.info.run_id, "--verify")  # the same commit and data: accepted again
    assert again.code == 0 and "REPRODUCED" in again.out, again.describe()

    diff = cli(tables, "diff", first_run_id(uri, before), run.info.run_id)
    assert diff.code == 0, diff.describe()
    assert "data/samples.csv: column 'extra' added (long)" in diff.out and "rows 3 -> 1" in diff.out, diff.out

    accept = cli(tables, "schema", "accept", "data/samples.csv")
    assert accept.code == 0 and "widened the declared range: rows min 2 -> 1" in accept.out, accept.describe()
    assert "accepted: column 'extra' added (long)" in accept.out
    contract = yaml.safe_load((tables / "reprotrain-schema.yaml").read_text())
    assert contract["data/samples.csv"]["rows"] == {"accepted": 1, "min": 1}
    assert contract["data/users.parquet"]["columns"] == {"user": "long", "name": "string"}, "others kept"
    commit_all(tables, "accept the new schema")
    assert cli(tables, "run").code == 0


def first_run_id(uri: str, before: set[str]) -> str:
    return min((r for r in all_runs(uri) if r.info.run_id in before), key=lambda r: r.info.start_time).info.run_id


def test_a_directorys_new_partition_and_a_new_input_are_named(tables):
    cli(tables, "schema", "accept")
    commit_all(tables, "schema contract")
    part = tables / "data" / "parts" / "year=2025"
    part.mkdir()
    (part / "p-0.csv").write_text("a,b,c\n7,8,9\n")  # a new year with another column
    (tables / "data" / "parts" / "README.md").write_text("not a table")
    (tables / "data" / "more.csv").write_text("q\n1\n")
    dvc(tables, "add", "-q", "data/parts", "data/more.csv")
    commit_all(tables, "a new partition and a new input")
    refused = cli(tables, "check")
    assert refused.code == 3, refused.describe()
    assert (
        "data/parts: differs from reprotrain-schema.yaml: year=*/*.csv: files with other columns: year=2025/p-0.csv"
        in (refused.err)
    ), refused.describe()
    assert "data/more.csv: differs from reprotrain-schema.yaml: not in the schema contract" in refused.err


def test_each_version_is_read_once(tables):
    """The schema of a content hash is remembered: a second gate reads the memo, not the file (the
    test writes a different schema into the memo and sees it reported)."""
    first = cli(tables, "schema", "show", "data/samples.csv")
    assert "id long" in first.out, first.describe()
    cache = Path(os.environ["REPROTRAIN_SCHEMA_CACHE"])
    out = yaml.safe_load((tables / "data" / "samples.csv.dvc").read_text())["outs"][0]
    (memo,) = cache.glob(f"v*/*/{out['md5']}.json")
    saved = json.loads(memo.read_text())
    saved["schema"]["columns"][0]["name"] = "remembered"
    memo.write_text(json.dumps(saved))
    second = cli(tables, "schema", "show", "data/samples.csv")
    assert "remembered long" in second.out, second.describe()
    new_version(tables, "data/samples.csv", "id,score,label\n9,9.5,bird\n")  # another hash: read again
    third = cli(tables, "schema", "show", "data/samples.csv")
    assert "csv, 1 rows: id long" in third.out, third.describe()


def test_bad_contracts_and_paths_are_named(tables):
    wrong = cli(tables, "schema", "accept", "data/nope.csv")
    assert wrong.code == 2 and "not a DVC-tracked input: data/nope.csv" in wrong.err, wrong.describe()
    images = cli(tables, "schema", "accept", TRACKED_DATA_DIR)
    assert images.code == 2 and f"no table among {TRACKED_DATA_DIR}" in images.err, images.describe()
    assert not (tables / "reprotrain-schema.yaml").exists()
    (tables / "reprotrain-schema.yaml").write_text("data/samples.csv: [not, a, mapping\n")
    commit_all(tables, "a broken contract")
    res = cli(tables, "check")
    assert res.code == 3 and "the schema contract is not valid YAML" in res.err, res.describe()
    broken = cli(tables, "schema", "accept")
    assert broken.code == 2 and "reprotrain-schema.yaml is not valid YAML" in broken.err, broken.describe()


def test_schemas_false_reads_no_table_and_enforces_nothing(tables):
    from helpers import write_pyproject

    cli(tables, "schema", "accept")
    new_version(tables, "data/samples.csv", "other\n1\n")  # would be refused
    write_pyproject(tables, entrypoint="python train.py", schemas=False)
    commit_all(tables, "schemas off")
    res = cli(tables, "run")
    assert res.code == 0, res.describe()
    (run,) = all_runs(embedded_uri(tables))
    assert "schemas" not in record_of(embedded_uri(tables), run.info.run_id)


def test_hand_edits_stale_entries_and_a_shared_symlink_cache(tables, tmp_path):
    """A contract entry edited into a wrong shape is named (exit 3, no traceback); an input no
    longer tracked is listed by `schema show` and dropped by `schema accept`; tables checked out
    as symlinks into a DVC cache outside the repository are read."""
    cli(tables, "schema", "accept")
    contract = yaml.safe_load((tables / "reprotrain-schema.yaml").read_text())
    contract["data/samples.csv"]["rows"] = 1000
    (tables / "reprotrain-schema.yaml").write_text(yaml.safe_dump(contract))
    commit_all(tables, "a hand edit")
    res = cli(tables, "check")
    assert res.code == 3 and "data/samples.csv: rows must be a mapping (accepted, min, max), got 1000" in res.err, (
        res.describe()
    )
    assert "Traceback" not in res.err
    broken = cli(tables, "schema", "accept")
    assert broken.code == 2 and "rows must be a mapping" in broken.err, broken.describe()
    (tables / "reprotrain-schema.yaml").unlink()  # as the hint says: fix it, or remove it
    assert cli(tables, "schema", "accept").code == 0
    dvc(tables, "remove", "-q", "data/events.jsonl.dvc")
    commit_all(tables, "events no longer tracked")
    shown = cli(tables, "schema", "show")
    assert "data/events.jsonl  in reprotrain-schema.yaml, no longer a DVC-tracked input" in shown.out, shown.describe()
    dropped = cli(tables, "schema", "accept")
    assert "data/events.jsonl  dropped from the contract" in dropped.out, dropped.describe()
    assert "data/events.jsonl" not in yaml.safe_load((tables / "reprotrain-schema.yaml").read_text())
    commit_all(tables, "contract without events")

    shared = tmp_path / "shared-cache"
    dvc(tables, "cache", "dir", str(shared))
    dvc(tables, "config", "cache.type", "symlink")
    import shutil

    shutil.copytree(tables / ".dvc" / "cache", shared, dirs_exist_ok=True)
    dvc(tables, "checkout", "-q", "--relink")
    commit_all(tables, "a shared cache")
    assert (tables / "data" / "samples.csv").is_symlink()
    shutil.rmtree(os.environ["REPROTRAIN_SCHEMA_CACHE"], ignore_errors=True)  # read afresh, through the links
    res = cli(tables, "check")
    assert res.code == 0, res.describe()
    shown = cli(tables, "schema", "show", "data/samples.csv")
    assert "csv, 3 rows: id long, score double, label string" in shown.out, shown.describe()
