"""`rerun --verify` compares the metrics of the runs the code created itself, paired by role; a
verification with nothing to compare is its own verdict (exit 5), never NOT REPRODUCED (issue 13)."""

from __future__ import annotations

import json

import pytest
from helpers import artifact_json, embedded_uri, run_cli
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
