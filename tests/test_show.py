"""`reprotrain show RUN_ID [--json]`."""

from __future__ import annotations

import json
import types

import pytest
from helpers import CHILD_LOGS, copy_project, embedded_uri, git_status, head_sha, record_of, run_cli, run_ok


@pytest.fixture(scope="module")
def shown(template_project, tmp_path_factory):
    root = copy_project(template_project, tmp_path_factory.mktemp("show") / "demo")
    _, run = run_ok(root, "model.lr=0.3", env=CHILD_LOGS)
    return types.SimpleNamespace(
        root=root,
        run_id=run.info.run_id,
        sha=head_sha(root),
        record=record_of(embedded_uri(root), run.info.run_id),
    )


def test_show_human_summary(shown):
    res = run_cli("show", shown.run_id, cwd=shown.root)
    assert res.code == 0, res.describe()
    assert shown.run_id in res.out
    assert "FINISHED" in res.out
    assert shown.sha[:7] in res.out, "the summary names the commit"


def test_show_json_is_record_plus_status_and_metrics(shown):
    res = run_cli("show", shown.run_id, "--json", cwd=shown.root)
    assert res.code == 0, res.describe()
    data = json.loads(res.out)
    for key, value in shown.record.items():
        assert data.get(key) == value, f"{key}: {data.get(key)!r} != record {value!r}"
    assert data["status"] == "FINISHED"
    assert data["metrics"]["acc"] == 0.9
    assert data["metrics"]["child_metric"] == 1.5


def test_show_from_subdirectory(shown):
    res = run_cli("show", shown.run_id, "--json", cwd=shown.root / "data")
    assert res.code == 0, res.describe()
    assert json.loads(res.out)["run_id"] == shown.run_id


def test_show_unknown_run(shown):
    res = run_cli("show", "0123456789abcdef0123456789abcdef", cwd=shown.root)
    assert res.code == 1, res.describe()
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err


def test_show_without_any_store(project):
    """In a project that never ran anything: exit 1, one line, and nothing created in the tree."""
    res = run_cli("show", "0123456789abcdef0123456789abcdef", cwd=project)
    assert res.code == 1, res.describe()
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert git_status(project) == ""
