"""Sweeps: `reprotrain run -m ...` records one parent run per sweep and one child run per job.

The parent carries `reprotrain.sweep=true` and `reprotrain/sweep.json` (its jobs), and closes
FINISHED when every job succeeded, FAILED otherwise. Each child is a complete run (tags,
record.json, params with the job's own override) tagged `mlflow.parentRunId`. The pin gate runs
once, before any job: an unpinned tree, or a sweep Hydra rejects, leaves no run at all.
`reprotrain rerun SWEEP --verify` reruns every job under a new parent.
"""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import (
    all_runs,
    artifact_json,
    artifact_paths,
    artifact_text,
    embedded_uri,
    git,
    git_status,
    head_sha,
    record_of,
    run_cli,
)
from team_services import expected_loss, setup_sweep_project, split_sweep

DATA_PATHS = {"data/train.csv", "data/images"}


@pytest.fixture
def sweep_project(project):
    setup_sweep_project(project)
    return project


def test_sweep_records_a_parent_and_one_complete_child_per_job(sweep_project):
    root = sweep_project
    sha = head_sha(root)
    res = run_cli("run", "-m", "seed=1,2,3", cwd=root)
    assert res.code == 0, res.describe()
    uri = embedded_uri(root)
    parent, children = split_sweep(uri)
    pid = parent.info.run_id

    # the parent
    assert parent.info.status == "FINISHED", res.describe()
    ptags = parent.data.tags
    assert ptags["reprotrain.sweep"] == "true"
    assert json.loads(ptags["reprotrain.overrides"]) == ["seed=1,2,3"]
    assert ptags["reprotrain.git.commit"] == sha
    assert ptags["mlflow.source.git.commit"] == sha
    assert ptags["reprotrain.pinned"] == "true"
    assert "mlflow.parentRunId" not in ptags
    assert pid in res.err, "the sweep's run ID is printed"
    sweep = artifact_json(uri, pid, "reprotrain/sweep.json")
    jobs = sweep["jobs"]
    assert [j["run_id"] for j in jobs] == [c.info.run_id for c in children], sweep
    assert [j["status"] for j in jobs] == ["FINISHED"] * 3, sweep
    assert [j["exit_code"] for j in jobs] == [0, 0, 0], sweep

    # one complete child per job, in job order
    assert len(children) == 3, [c.info.run_id for c in children]
    assert len({c.info.run_id for c in children}) == 3
    digests = set()
    for num, (child, seed) in enumerate(zip(children, (1, 2, 3))):
        cid = child.info.run_id
        tags = child.data.tags
        assert child.info.status == "FINISHED"
        assert child.info.experiment_id == parent.info.experiment_id
        assert tags["mlflow.parentRunId"] == pid
        assert tags["reprotrain.job.num"] == str(num)
        assert "reprotrain.sweep" not in tags, "a job is not itself a sweep"
        assert tags["mlflow.source.git.commit"] == sha
        assert tags["reprotrain.git.commit"] == sha
        assert tags["reprotrain.git.branch"] == "main"
        assert tags["reprotrain.pinned"] == "true"
        assert tags["reprotrain.data.digest"] == ptags["reprotrain.data.digest"]
        assert tags["reprotrain.config.digest"]
        digests.add(tags["reprotrain.config.digest"])
        assert json.loads(tags["reprotrain.overrides"]) == [f"seed={seed}"], "the job's own override only"
        assert tags["reprotrain.exit_code"] == "0"

        params = child.data.params
        assert params["seed"] == str(seed)
        assert params["model.lr"] == "0.1"
        assert params["model.layers"] == "2"
        assert child.data.metrics["loss"] == expected_loss(0.1, seed)
        assert child.data.metrics["seed"] == seed

        record = record_of(uri, cid)
        assert record["run_id"] == cid
        assert record["schema"]
        assert record["pinned"] is True and not record["problems"]
        assert record["git"]["commit"] == sha and record["git"]["branch"] == "main"
        assert {d["path"] for d in record["data"]} == DATA_PATHS
        assert all(d["hash"] for d in record["data"])
        assert record["config"]["overrides"] == [f"seed={seed}"]
        assert record["config"]["resolved"]["seed"] == seed
        assert record["config"]["resolved"]["model"] == {"lr": 0.1, "layers": 2}
        assert record["config"]["name"] == "config"
        assert record["command"], record
        assert record["environment"]["python"] and record["environment"]["packages"]
        assert record["reprotrain_version"]

        paths = artifact_paths(uri, cid)
        for expected in (
            "reprotrain/record.json",
            "reprotrain/config.yaml",
            "reprotrain/console.log",
            ".hydra/config.yaml",
            ".hydra/overrides.yaml",
            "metrics.json",
            "model.txt",
        ):
            assert expected in paths, f"{expected} missing from job {num}: {sorted(paths)}"
        assert yaml.safe_load(artifact_text(uri, cid, ".hydra/overrides.yaml")) == [f"seed={seed}"]
        assert yaml.safe_load(artifact_text(uri, cid, "reprotrain/config.yaml"))["seed"] == seed
        job = json.loads(artifact_text(uri, cid, "job.json"))
        assert job["run_id"] == cid, "the training code ran inside its own job's run"
        datasets = {d.dataset.name for d in child.inputs.dataset_inputs}
        assert datasets == DATA_PATHS
    assert len(digests) == 3, "each job's resolved config (its seed) has its own digest"
    assert git_status(root) == ""


def test_a_failing_job_fails_the_sweep_and_the_other_jobs_still_run(sweep_project):
    root = sweep_project
    res = run_cli("run", "-m", "exit_code=5,0", cwd=root)
    assert res.code == 5, res.describe()
    uri = embedded_uri(root)
    parent, children = split_sweep(uri)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["reprotrain.sweep"] == "true"
    assert [c.info.status for c in children] == ["FAILED", "FINISHED"]
    assert [c.data.params["exit_code"] for c in children] == ["5", "0"]
    assert [c.data.tags["reprotrain.exit_code"] for c in children] == ["5", "0"]
    jobs = artifact_json(uri, parent.info.run_id, "reprotrain/sweep.json")["jobs"]
    assert [(j["run_id"], j["status"], j["exit_code"]) for j in jobs] == [
        (children[0].info.run_id, "FAILED", 5),
        (children[1].info.run_id, "FINISHED", 0),
    ]
    assert [r.info.status for r in all_runs(uri) if r.info.status in ("RUNNING", "SCHEDULED")] == []


def test_job_records_name_the_sweep_dir(sweep_project):
    """Each job's record says where Hydra put the sweep (the path, not a masked one), so a user
    can find `multirun.yaml` and the sweeper's results from the run."""
    root = sweep_project
    res = run_cli("run", "-m", "seed=1,2", cwd=root)
    assert res.code == 0, res.describe()
    (multirun_yaml,) = (root / ".reprotrain" / "multirun").glob("*/*/multirun.yaml")
    sweep_dir = multirun_yaml.parent
    uri = embedded_uri(root)
    _, children = split_sweep(uri)
    jobs = [record_of(uri, c.info.run_id)["job"] for c in children]
    assert [j["num"] for j in jobs] == [0, 1], jobs
    assert [j["sweep_dir"] for j in jobs] == [str(sweep_dir)] * 2, jobs


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
def test_unpinned_sweep_is_refused_before_any_job(sweep_project, launcher):
    root = sweep_project
    (root / "strain.py").write_text((root / "strain.py").read_text() + "# edited\n")
    (root / "notes.txt").write_text("scratch\n")
    res = run_cli("run", "-m", "seed=1,2,3", *launcher, cwd=root)
    assert res.code == 3, res.describe()
    assert "strain.py" in res.err and "notes.txt" in res.err, res.describe()
    assert res.err.count("refusing to run") == 1, "the gate runs once for the whole sweep"
    assert "Launching" not in res.out + res.err, "Hydra launched no job"
    assert all_runs(embedded_uri(root)) == [], "no run at all, not even a sweep parent"
    assert not (root / ".reprotrain" / "multirun").exists(), "no job output directory"


@pytest.mark.parametrize(
    "overrides, culprit",
    [
        (["seed=1,2", "nosuchkey=1"], "nosuchkey"),
        (["+experiment=fast,nosuch"], "nosuch"),
        (["seed=1,2", "+experiment=nosuch"], "nosuch"),
        (["seed=1,2", "model.lr=choice(0.1"], "choice(0.1"),
        (["seed=1,2", "hydra/launcher=nosuch"], "nosuch"),
    ],
    ids=["unknown-key", "unknown-option-in-second-job", "unknown-option", "syntax", "unknown-launcher"],
)
def test_bad_sweep_override_is_a_usage_error_and_creates_no_run(sweep_project, overrides, culprit):
    root = sweep_project
    res = run_cli("run", "-m", *overrides, cwd=root)
    assert res.code == 2, res.describe()
    assert culprit in res.err, res.describe()
    assert "Traceback" not in res.err, res.describe()
    assert all_runs(embedded_uri(root)) == [], "no run at all, not even a sweep parent"
    assert git_status(root) == ""


def _rerun_children(uri, new_parent_id):
    return [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId") == new_parent_id]


def test_rerun_of_a_sweep_reruns_every_job_under_a_new_parent(sweep_project):
    root = sweep_project
    res = run_cli("run", "-m", "seed=1,2", "model.lr=0.2", cwd=root)
    assert res.code == 0, res.describe()
    uri = embedded_uri(root)
    parent, children = split_sweep(uri)
    originals = {c.info.run_id: c for c in children}
    sweep_id = parent.info.run_id

    res = run_cli("rerun", sweep_id, "--verify", cwd=root, timeout=300)
    assert res.code == 0, res.describe()

    new_parents = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") == sweep_id]
    assert len(new_parents) == 1, [r.info.run_id for r in new_parents]
    new_parent = new_parents[0]
    npid = new_parent.info.run_id
    assert npid != sweep_id
    assert new_parent.data.tags["reprotrain.sweep"] == "true"
    assert new_parent.data.tags.get("reprotrain.reproduced") == "true"
    assert new_parent.info.status == "FINISHED"
    assert new_parent.info.experiment_id == parent.info.experiment_id

    reruns = _rerun_children(uri, npid)
    assert len(reruns) == 2, [r.info.run_id for r in reruns]
    assert sorted(r.data.tags["reprotrain.rerun_of"] for r in reruns) == sorted(originals)
    for new in reruns:
        original = originals[new.data.tags["reprotrain.rerun_of"]]
        assert new.info.run_id not in originals
        assert new.info.status == "FINISHED"
        assert new.data.tags["mlflow.parentRunId"] == npid
        assert new.data.tags["reprotrain.reproduced"] == "true"
        assert new.data.params["seed"] == original.data.params["seed"]
        assert new.data.params["model.lr"] == "0.2"
        assert new.data.metrics == original.data.metrics
        for key in ("reprotrain.git.commit", "reprotrain.data.digest", "reprotrain.config.digest"):
            assert new.data.tags[key] == original.data.tags[key], key
        # a verdict per job
        assert f"verify: rerun {new.info.run_id} against original {original.info.run_id}" in res.out, res.describe()

    lines = res.out.splitlines()
    assert lines.count("REPRODUCED") == 2, res.describe()
    sweep_lines = [line for line in lines if line.startswith(f"sweep {sweep_id}")]
    assert len(sweep_lines) == 1, res.describe()
    assert npid in sweep_lines[0] and "REPRODUCED" in sweep_lines[0] and "NOT" not in sweep_lines[0]

    # the original sweep is untouched
    parent_after, children_after = split_sweep_of(uri, sweep_id)
    assert parent_after.info.status == "FINISHED"
    assert [c.info.run_id for c in children_after] == [c.info.run_id for c in children]
    assert git_status(root) == ""
    assert git(root, "worktree", "list").count("\n") == 1, "the rerun's worktree is gone"


def test_rerun_of_a_sweep_with_one_nondeterministic_job_is_not_reproduced(sweep_project):
    root = sweep_project
    res = run_cli("run", "-m", "noise=false,true", cwd=root)
    assert res.code == 0, res.describe()
    uri = embedded_uri(root)
    parent, children = split_sweep(uri)
    sweep_id = parent.info.run_id

    res = run_cli("rerun", sweep_id, "--verify", cwd=root, timeout=300)
    assert res.code == 4, res.describe()
    new_parent = next(r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") == sweep_id)
    assert new_parent.data.tags.get("reprotrain.reproduced") == "false"
    verdicts = {
        r.data.params["noise"]: r.data.tags.get("reprotrain.reproduced")
        for r in _rerun_children(uri, new_parent.info.run_id)
    }
    assert verdicts == {"false": "true", "true": "false"}, verdicts
    lines = res.out.splitlines()
    assert lines.count("REPRODUCED") == 1, res.describe()
    assert sum(line.startswith("NOT REPRODUCED") for line in lines) == 1, res.describe()
    sweep_lines = [line for line in lines if line.startswith(f"sweep {sweep_id}")]
    assert len(sweep_lines) == 1 and "NOT REPRODUCED" in sweep_lines[0], res.describe()


def split_sweep_of(uri, sweep_id):
    runs = all_runs(uri)
    parent = next(r for r in runs if r.info.run_id == sweep_id)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweep_id]
    children.sort(key=lambda r: int(r.data.tags.get("reprotrain.job.num", "-1")))
    return parent, children
