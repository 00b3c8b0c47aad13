"""Hydra launcher and sweeper plugins under `reprotrain run -m`.

Each launcher (the basic one, joblib, submitit_local) records every job as a complete run with
its own params; eight parallel joblib jobs on a fresh SQLite store lose none; a reused worker
process does not carry state from one job to the next; and an optimizing sweeper (optuna) gets
each job's `objective` metric as the job's value.
"""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import (
    all_runs,
    artifact_json,
    artifact_text,
    embedded_uri,
    git_status,
    head_sha,
    record_of,
    run_cli,
)
from team_services import LEAKY_FILE, LEAKY_MODULE, expected_loss, setup_sweep_project, split_sweep

LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_launcher_records_every_job(project, launcher):
    setup_sweep_project(project)
    sha = head_sha(project)
    res = run_cli("run", "-m", "seed=1,2", "model.lr=0.2,0.4", *LAUNCHERS[launcher], cwd=project, timeout=600)
    assert res.code == 0, res.describe()
    assert "may run the jobs on other hosts" not in res.err, "these launchers run every job on this host"
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    assert parent.info.status == "FINISHED", res.describe()
    assert len(children) == 4, [c.info.run_id for c in children]

    combos = set()
    for child in children:
        cid = child.info.run_id
        assert child.info.status == "FINISHED", (cid, child.data.tags.get("reprotrain.status_reason"))
        seed, lr = int(child.data.params["seed"]), float(child.data.params["model.lr"])
        combos.add((seed, lr))
        assert json.loads(child.data.tags["reprotrain.overrides"]) == [f"seed={seed}", f"model.lr={lr}"]
        assert child.data.tags["reprotrain.git.commit"] == sha
        assert child.data.tags["reprotrain.pinned"] == "true"
        assert child.data.metrics["loss"] == expected_loss(lr, seed)
        record = record_of(uri, cid)
        assert record["run_id"] == cid
        assert record["config"]["overrides"] == [f"seed={seed}", f"model.lr={lr}"]
        assert record["config"]["resolved"]["seed"] == seed
        assert record["config"]["resolved"]["model"]["lr"] == lr
        job = json.loads(artifact_text(uri, cid, "job.json"))
        assert job["run_id"] == cid and job["seed"] == seed and job["lr"] == lr
    assert combos == {(1, 0.2), (1, 0.4), (2, 0.2), (2, 0.4)}, combos
    jobs = artifact_json(uri, parent.info.run_id, "reprotrain/sweep.json")["jobs"]
    assert sorted(j["run_id"] for j in jobs) == sorted(c.info.run_id for c in children)
    assert {j["status"] for j in jobs} == {"FINISHED"}
    assert git_status(project) == ""


def test_eight_parallel_joblib_jobs_on_a_fresh_store(project):
    setup_sweep_project(project)
    store = project / ".reprotrain" / "mlflow.db"
    assert not store.exists(), "the store must not exist before the command"
    seeds = list(range(1, 9))
    res = run_cli(
        "run", "-m", "seed=" + ",".join(map(str, seeds)), "hydra/launcher=joblib", "hydra.launcher.n_jobs=8",
        cwd=project, timeout=900,
    )  # fmt: skip
    uri = embedded_uri(project)
    runs = all_runs(uri)
    summary = "\n".join(
        f"{r.info.run_id} {r.info.status} seed={r.data.params.get('seed')} "
        f"reason={r.data.tags.get('reprotrain.status_reason')}"
        for r in runs
    )
    assert res.code == 0, f"{res.describe()}\n--- runs ---\n{summary}"
    parent, children = split_sweep(uri)
    assert [r.info.run_id for r in runs if r.info.status in ("RUNNING", "SCHEDULED")] == [], summary
    assert len(children) == 8, summary
    assert sorted(int(c.data.params["seed"]) for c in children) == seeds, summary
    assert {c.info.status for c in children} == {"FINISHED"}, summary
    for child in children:
        assert child.data.metrics["seed"] == float(child.data.params["seed"])
    assert parent.info.status == "FINISHED"
    jobs = artifact_json(uri, parent.info.run_id, "reprotrain/sweep.json")["jobs"]
    assert len(jobs) == 8 and {j["status"] for j in jobs} == {"FINISHED"}


LEAK_CASES = {
    # basic launcher: every job runs in the reprotrain process itself
    "basic-file": ([], f"{LEAKY_FILE}:train"),
    # joblib with 2 workers for 4 jobs: workers are reused
    "joblib-file": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], f"{LEAKY_FILE}:train"),
    "joblib-module": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], f"{LEAKY_MODULE}:train"),
}


@pytest.mark.parametrize("case", list(LEAK_CASES))
def test_process_state_does_not_leak_between_jobs_in_a_reused_process(project, case):
    launcher, entrypoint = LEAK_CASES[case]
    setup_sweep_project(project, entrypoint=entrypoint)
    res = run_cli("run", "-m", "seed=1,2,3,4", *launcher, cwd=project, timeout=600)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}, res.describe()

    facts = {c.info.run_id: json.loads(artifact_text(uri, c.info.run_id, "leak.json")) for c in children}
    pids = [f["pid"] for f in facts.values()]
    assert len(set(pids)) < len(pids), f"no process ran two jobs, the test proves nothing: {pids}"
    problems = []
    for child in sorted(children, key=lambda c: int(c.data.params["seed"])):
        f = facts[child.info.run_id]
        job = f"job seed={child.data.params['seed']} (pid {f['pid']})"
        assert f["run_id"] == child.info.run_id and f["active_run_id"] == child.info.run_id
        if child.data.metrics.get("module_len") != 1:
            problems.append(f"{job} saw the module state of earlier jobs: SEEN={f['seen']}")
        if f["leaked"] is not None:
            problems.append(f"{job} saw REPROTRAIN_TEST_LEAK={f['leaked']!r}, set by an earlier job in that process")
        if not f["started_in_root"]:
            problems.append(f"{job} started in {f['started_in']}, where an earlier job moved, not the project root")
    assert not problems, "process state leaked between jobs:\n" + "\n".join(problems)
    assert git_status(project) == ""


def test_optuna_sweeper_gets_the_objective_metric(project):
    setup_sweep_project(project, objective="loss")
    res = run_cli(
        "run", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=7",
        "model.lr=interval(0.0,1.0)",
        cwd=project, timeout=600,
    )  # fmt: skip
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    assert parent.info.status == "FINISHED"
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    losses = {}
    for child in children:
        lr = float(child.data.params["model.lr"])
        assert child.data.metrics["loss"] == expected_loss(lr, 0)
        losses[child.info.run_id] = (child.data.metrics["loss"], lr)

    # Hydra writes the sweep's result into the sweep dir, under .reprotrain/multirun by default
    found = sorted((project / ".reprotrain" / "multirun").glob("*/*/optimization_results.yaml"))
    assert len(found) == 1, found
    results = yaml.safe_load(found[0].read_text())
    best_loss, best_lr = min(losses.values())
    assert results["best_value"] == best_loss, (results, losses)
    assert results["best_params"]["model.lr"] == pytest.approx(best_lr), (results, losses)
    assert git_status(project) == ""


def test_optuna_sweeper_without_objective_is_a_clear_error(project):
    """Without `objective` a job has no value to return: optuna cannot use it. The user must be
    told which setting to add, not shown a traceback."""
    setup_sweep_project(project)
    res = run_cli(
        "run", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "model.lr=interval(0.0,1.0)",
        cwd=project, timeout=600,
    )  # fmt: skip
    assert res.code != 0, res.describe()
    assert "objective" in res.err, res.describe()
    assert [r.info.run_id for r in all_runs(embedded_uri(project)) if r.info.status == "RUNNING"] == []


def _reruns_of(uri: str, run_id: str) -> list:
    return [r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") == run_id]


def _pid(run) -> str:
    return run.data.tags["reprotrain.launcher"].rsplit(":", 2)[1]


def test_rerun_goes_back_through_the_launcher_the_jobs_ran_on_or_the_one_given(project):
    setup_sweep_project(project)
    res = run_cli("run", "-m", "seed=1,2", *LAUNCHERS["submitit_local"], cwd=project, timeout=600)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    launcher = record_of(uri, children[0].info.run_id)["job"]["launcher"]
    assert launcher["name"] == "submitit_local" and launcher["config"]["timeout_min"] == 10, launcher

    # the sweep: one multirun of the recorded jobs through submitit_local, each job in a worker process
    res = run_cli("rerun", parent.info.run_id, "--verify", cwd=project, timeout=600)
    assert res.code == 0 and "REPRODUCED (2 of 2 jobs reproduced)" in res.out, res.describe()
    assert "Submitit 'local' sweep output dir" in res.out, res.describe()  # Hydra's launcher says so
    (new_parent,) = _reruns_of(uri, parent.info.run_id)
    for child in children:
        (again,) = _reruns_of(uri, child.info.run_id)
        assert again.data.tags["mlflow.parentRunId"] == new_parent.info.run_id
        assert again.data.params["seed"] == child.data.params["seed"]
        assert again.data.tags["reprotrain.verdict"] == "reproduced"
        assert again.data.tags["reprotrain.git.branch"] == child.data.tags["reprotrain.git.branch"] != ""
        assert record_of(uri, again.info.run_id)["job"]["launcher"]["name"] == "submitit_local"
        assert _pid(again) != _pid(new_parent), "a submitit worker ran the job, not the rerun's own process"
    assert new_parent.info.status == "FINISHED"

    # one job of the sweep: through the launcher too, with no parent of its own
    job = children[1].info.run_id
    res = run_cli("rerun", job, "--verify", cwd=project, timeout=600)
    assert res.code == 0, res.describe()
    again = [r for r in _reruns_of(uri, job) if "mlflow.parentRunId" not in r.data.tags]
    assert len(again) == 1 and again[0].data.tags["reprotrain.verdict"] == "reproduced", res.describe()
    record = record_of(uri, again[0].info.run_id)
    assert record["job"]["launcher"]["name"] == "submitit_local" and record["job"]["sweep_dir"], record["job"]
    # a derived job whose override cannot compose is refused before any job is launched
    before = len(all_runs(uri))
    res = run_cli("rerun", job, "nosuchkey=1", cwd=project, timeout=600)
    assert res.code == 2 and "Hydra rejected" in res.err and "Traceback" not in res.err, res.describe()
    assert len(all_runs(uri)) == before

    # the launcher given on the command line instead: Hydra's basic one runs the jobs in the rerun's process
    res = run_cli("rerun", parent.info.run_id, "--verify", "hydra/launcher=basic", cwd=project, timeout=600)
    assert res.code == 0 and "REPRODUCED (2 of 2 jobs reproduced)" in res.out, res.describe()
    third = [r for r in _reruns_of(uri, parent.info.run_id) if r.info.run_id != new_parent.info.run_id]
    (third_parent,) = third
    jobs = [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId") == third_parent.info.run_id]
    assert len(jobs) == 2 and {_pid(j) for j in jobs} == {_pid(third_parent)}, "the basic launcher: in-process"
    assert {record_of(uri, j.info.run_id)["job"]["launcher"]["name"] for j in jobs} == {"basic"}
    assert not any(
        "hydra.launcher.timeout_min" in o
        for j in jobs
        for o in record_of(uri, j.info.run_id)["config"]["hydra_overrides"]
    )

    # a run of its own, sent through a launcher given on the command line; a derived run likewise
    single = run_cli("run", "seed=7", cwd=project, timeout=300)
    assert single.code == 0, single.describe()
    (alone,) = [
        r for r in all_runs(uri) if r.data.params.get("seed") == "7" and "reprotrain.rerun_of" not in r.data.tags
    ]
    res = run_cli("rerun", alone.info.run_id, "seed=8", *LAUNCHERS["submitit_local"], cwd=project, timeout=600)
    assert res.code == 0, res.describe()
    (derived,) = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.derived_from") == alone.info.run_id]
    assert derived.data.params["seed"] == "8" and "mlflow.parentRunId" not in derived.data.tags
    job = record_of(uri, derived.info.run_id)["job"]
    assert job["launcher"]["name"] == "submitit_local" and job["sweep_dir"], job  # a multirun job: the launcher ran it
    assert "launcher" not in record_of(uri, alone.info.run_id)["job"], "a single run: no launcher ran it"

    # a Hydra setting that changes what the code sees makes a derived run, as a config override does
    res = run_cli("rerun", alone.info.run_id, "+hydra.job.env_set.EXTRA=1", cwd=project, timeout=600)
    assert res.code == 0, res.describe()
    derived = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.derived_from") == alone.info.run_id]
    assert len(derived) == 2, "hydra.job.env_set is not where the job runs: a derived run"
    assert git_status(project) == ""
