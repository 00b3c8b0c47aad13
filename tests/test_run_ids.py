"""Run IDs as people type them: a unique prefix of 8 or more characters wherever a run ID is taken
(as git does with commits), an ambiguous one refused with the matches listed, and `last` naming the
newest launch: a sweep's parent after `run -m`, the new run after `rerun`."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
from helpers import client_for, embedded_uri, run_cli, sqlite_file
from team_services import setup_sweep_project, split_sweep


@pytest.fixture(scope="module")
def ran(template_project, tmp_path_factory):
    from helpers import copy_project

    root = copy_project(template_project, tmp_path_factory.mktemp("ids") / "demo")
    setup_sweep_project(root)
    first = run_cli("run", "seed=1", cwd=root)
    assert first.code == 0, first.describe()
    first_id = json.loads(run_cli("show", "last", "--json", cwd=root).out)["run_id"]
    second = run_cli("run", "seed=2", cwd=root)
    assert second.code == 0, second.describe()
    return root, first_id


def one_line_error(res) -> str:
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err, res.describe()
    return lines[0]


@pytest.mark.parametrize("length", [8, 12, 31])
def test_show_takes_a_unique_prefix(ran, length):
    root, run_id = ran
    res = run_cli("show", run_id[:length], "--json", cwd=root)
    assert res.code == 0, res.describe()
    assert json.loads(res.out)["run_id"] == run_id
    for typed in (run_id[:12].upper(), run_id.upper(), f" {run_id} "):
        upper = run_cli("show", typed, cwd=root)
        assert upper.code == 0 and run_id in upper.out, upper.describe()


def test_a_prefix_shorter_than_8_is_a_usage_error(ran):
    root, run_id = ran
    res = run_cli("show", run_id[:7], cwd=root)
    assert res.code == 2, res.describe()
    assert "at least 8" in one_line_error(res)


def test_a_prefix_no_run_has_is_not_found(ran):
    root, run_id = ran
    absent = next(p for p in ("00000000", "ffffffff") if not run_id.startswith(p))
    res = run_cli("show", absent, cwd=root)
    assert res.code == 1, res.describe()
    assert f"no run ID starts with {absent}" in one_line_error(res)


def test_diff_and_rerun_take_prefixes(ran):
    root, run_id = ran
    diff = run_cli("diff", run_id[:12], "last", "--json", cwd=root)
    assert diff.code == 0, diff.describe()
    assert json.loads(diff.out)["a"] == run_id
    again = run_cli("rerun", run_id[:12], "--verify", cwd=root, timeout=240)
    assert again.code == 0, again.describe()
    assert "REPRODUCED" in again.out
    # `last` is now the rerun, linked to the run it reran
    shown = json.loads(run_cli("show", "last", "--json", cwd=root).out)
    assert shown["run_id"] != run_id
    new = client_for(embedded_uri(root)).get_run(shown["run_id"])
    assert new.data.tags["reprotrain.rerun_of"] == run_id
    assert shown["rerun_of"] == run_id and shown["verdict"] == "reproduced" and shown["reproduced"] is True
    assert {c["name"] for c in shown["verification"]} >= {"loss", "seed"}, shown["verification"]
    assert all(c["ok"] for c in shown["verification"])
    assert shown["start_time"].endswith("+00:00") and shown["start_time"][:4].isdigit(), shown["start_time"]
    text = run_cli("show", "last", cwd=root).out
    assert f"rerun of   {run_id}" in text, text
    assert f"verified   REPRODUCED against {run_id}" in text, text
    assert "seeds      seed=1" in text, "show names the seeds, as the tutorial says"


def test_a_deleted_run_is_found_by_a_prefix_as_by_its_full_id(ran):
    root, _ = ran
    uri = embedded_uri(root)
    client = client_for(uri)
    res = run_cli("run", "seed=4", cwd=root)
    assert res.code == 0, res.describe()
    gone = json.loads(run_cli("show", "last", "--json", cwd=root).out)["run_id"]
    client.delete_run(gone)
    full, prefix = run_cli("show", gone, "--json", cwd=root), run_cli("show", gone[:10], "--json", cwd=root)
    assert full.code == prefix.code == 0, (full.describe(), prefix.describe())
    assert json.loads(prefix.out)["run_id"] == gone


def test_an_ambiguous_prefix_lists_the_matches(ran):
    root, run_id = ran
    uri = embedded_uri(root)
    client = client_for(uri)
    experiment = client.get_run(run_id).info.experiment_id
    shared = "abcdef01"
    ids = [shared + uuid.uuid4().hex[8:] for _ in range(2)]
    made = [client.create_run(experiment).info.run_id for _ in ids]
    db = sqlite3.connect(sqlite_file(uri))
    with db:  # two runs whose IDs share 8 characters: MLflow never gives one, so the store is edited
        for old, new in zip(made, ids):
            db.execute("UPDATE runs SET run_uuid = ? WHERE run_uuid = ?", (new, old))
    db.close()
    res = run_cli("show", shared, cwd=root)
    assert res.code == 2, res.describe()
    line = one_line_error(res)
    assert "ambiguous" in line and all(i in line for i in ids), line
    unique = run_cli("show", ids[0][:12], cwd=root)
    assert unique.code == 1 and "not launched by reprotrain" in unique.err, unique.describe()


def test_last_after_a_sweep_is_the_sweep_and_runs_takes_its_prefix(sweep_root):
    root = sweep_root
    res = run_cli("run", "-m", "seed=1,2", cwd=root)
    assert res.code == 0, res.describe()
    parent, children = split_sweep(embedded_uri(root))
    shown = json.loads(run_cli("show", "last", "--json", cwd=root).out)
    assert shown["run_id"] == parent.info.run_id
    diffed = run_cli("diff", "last", children[0].info.run_id, cwd=root)
    assert diffed.code == 2 and "is a sweep" in one_line_error(diffed), diffed.describe()
    assert f"reprotrain runs --sweep {parent.info.run_id[:12]}" in diffed.err
    assert [j["run_id"] for j in shown["jobs"]] == [c.info.run_id for c in children]
    listed = run_cli("runs", "--sweep", parent.info.run_id[:10], "--json", cwd=root)
    assert listed.code == 0, listed.describe()
    assert sorted(r["run_id"] for r in json.loads(listed.out)["runs"]) == sorted(c.info.run_id for c in children)
    again = run_cli("rerun", "last", "--verify", cwd=root, timeout=300)
    assert again.code == 0, again.describe()
    newest = json.loads(run_cli("show", "last", "--json", cwd=root).out)
    assert newest["run_id"] not in {parent.info.run_id, *(c.info.run_id for c in children)}
    assert len(newest["jobs"]) == 2, newest


@pytest.fixture
def sweep_root(project):
    setup_sweep_project(project)
    return project
