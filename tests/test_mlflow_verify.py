"""`rerun --verify` compares the metrics of the runs the code created itself, paired by role; a
verification with nothing to compare is its own verdict (exit 5), never NOT REPRODUCED (issue 13)."""

from __future__ import annotations

import json

import pytest
from helpers import artifact_json, commit_all, embedded_uri, git_status, run_cli
from mlflow_code import runs_by_id, setup_mlcode


def rerun_verify(root, *args: str):
    """Run once with ``args``, then `rerun last --verify`."""
    first = run_cli("run", *args, cwd=root)
    assert first.code == 0, first.describe()
    return run_cli("rerun", "last", "--verify", cwd=root, timeout=240)


def _new_runs(root, verdict: str) -> list:
    return [r for r in runs_by_id(embedded_uri(root)).values() if r.data.tags.get("reprotrain.verdict") == verdict]


@pytest.mark.parametrize("kind", ["command", "callable"])
def test_a_framework_loggers_run_is_compared_by_role(project, kind):
    """Before: the logger's run was linked but ignored, and a perfect rerun was NOT REPRODUCED."""
    setup_mlcode(project, kind)
    res = rerun_verify(project, "pattern=logger")
    assert res.code == 0, res.describe()
    assert "[lightning_logs#1] score" in res.out and "REPRODUCED" in res.out, res.out
    (rerun,) = _new_runs(project, "reproduced")
    assert rerun.data.tags["reprotrain.reproduced"] == "true"
    payload = artifact_json(embedded_uri(project), rerun.info.run_id, "reprotrain/verification.json")
    assert payload["verdict"] == "reproduced"
    assert [c["name"] for c in payload["checks"]] == ["[lightning_logs#1] score"]
    # the rerun's own logger run is linked to the rerun, under the same role
    logged = [r for r in runs_by_id(embedded_uri(project)).values() if r.data.tags.get("source") == "framework"]
    assert len(logged) == 2 and {r.data.tags["reprotrain.role"] for r in logged} == {"lightning_logs#1"}
    assert rerun.info.run_id in {r.data.tags["reprotrain.opened_during"] for r in logged}


def test_a_linked_run_that_differs_is_not_reproduced(project):
    setup_mlcode(project, "command")
    res = rerun_verify(project, "pattern=logger", "noise=true")
    assert res.code == 4, res.describe()
    assert "NOT REPRODUCED (1 difference(s))" in res.out and "DIFFERS" in res.out, res.out
    (rerun,) = _new_runs(project, "not-reproduced")
    assert rerun.data.tags["reprotrain.reproduced"] == "false"


def test_a_run_in_another_store_is_compared(project, tmp_path):
    setup_mlcode(project, "callable")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    res = rerun_verify(project, "pattern=tracking_uri", f"tracking_uri='{other}'")
    assert res.code == 0, res.describe()
    assert f"[Default in {other}#1] score" in res.out, res.out
    assert len(runs_by_id(other)) == 2, "the rerun's code made its run in that store again"


def test_nothing_to_compare_is_its_own_verdict(project):
    setup_mlcode(project, "command")
    res = rerun_verify(project, "pattern=none")
    assert res.code == 5, res.describe()
    assert "NOT REPRODUCED" not in res.out
    (line,) = [line for line in res.out.splitlines() if line.startswith("NOTHING TO COMPARE")]
    assert "metrics.json" in line and "verify_files" in line and "mlflow.log_metric" in line, line
    (rerun,) = _new_runs(project, "nothing-to-compare")
    assert "reprotrain.reproduced" not in rerun.data.tags, "neither reproduced nor not"
    shown = json.loads(run_cli("show", rerun.info.run_id, "--json", cwd=project).out)
    assert shown["status"] == "FINISHED"
    rows = {r["run_id"]: r for r in json.loads(run_cli("runs", "--json", cwd=project).out)["runs"]}
    assert rows[rerun.info.run_id]["verdict"] == "nothing-to-compare"
    table = run_cli("runs", cwd=project).out
    assert any(line.startswith(rerun.info.run_id[:12]) and " none " in line for line in table.splitlines()), table


def test_a_sweep_with_nothing_to_compare(project):
    setup_mlcode(project, "command")
    first = run_cli("run", "-m", "pattern=none", "alpha=1,2", cwd=project)
    assert first.code == 0, first.describe()
    parent = next(
        r.info.run_id for r in runs_by_id(embedded_uri(project)).values() if r.data.tags.get("reprotrain.sweep")
    )
    res = run_cli("rerun", parent, "--verify", cwd=project, timeout=300)
    assert res.code == 5, res.describe()
    assert "NOTHING TO COMPARE (0 of 2 jobs reproduced)" in res.out, res.out


def test_a_pool_of_workers_is_verified_as_one_group(project):
    setup_mlcode(project, "callable")
    res = rerun_verify(project, "pattern=pool")
    assert res.code == 0, res.describe()
    assert "[demo#1-2 1/2] score" in res.out and "[demo#1-2 2/2] score" in res.out, res.out


def test_a_store_inside_the_project_is_the_same_store_in_the_rerun(project):
    """`set_tracking_uri("sqlite:///code-store.db")` (a path relative to the project, ignored by
    git): the rerun's code writes into its worktree's copy, which counts as the same store."""
    setup_mlcode(project, "command")
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + "code-store.db\n")
    commit_all(project, "ignore the code's own store")
    res = rerun_verify(project, "pattern=tracking_uri", "tracking_uri='sqlite:///code-store.db'")
    assert res.code == 0, res.describe()
    assert "[Default in sqlite:///<project>/code-store.db#1] score" in res.out, res.out
    assert "inside the rerun's worktree" in res.err, res.describe()
    assert git_status(project) == ""


def test_the_codes_own_exit_code_passes_through_a_rerun(project):
    """A code that exits 5 or 4 in the rerun is a failed rerun with that code, never a verdict."""
    setup_mlcode(project, "command")
    first = run_cli("run", "write_metrics=true", cwd=project)
    assert first.code == 0, first.describe()
    plain = run_cli("rerun", "last", cwd=project, env={"MLCODE_EXIT": "5"}, timeout=240)
    assert plain.code == 5 and "FAILED (exit code 5)" in plain.err, plain.describe()
    verified = run_cli("rerun", "last", "--verify", cwd=project, env={"MLCODE_EXIT": "4"}, timeout=240)
    assert verified.code == 4 and "FAILED (exit code 4)" in verified.err, verified.describe()
    assert "REPRODUCED" not in verified.out and "NOTHING TO COMPARE" not in verified.out, verified.out
