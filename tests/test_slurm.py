"""Sweeps on a real single-node Slurm cluster on 127.0.0.1 (`scripts/slurm.sh`: Debian's slurm-wlm,
slurmdbd on MariaDB, munge), through `hydra/launcher=submitit_slurm`: every job runs as a Slurm job
and is a complete child run that names its Slurm job and where it ran; a failing job is a failed
Slurm job too; no store helper is started inside a job.

`.ci/run` installs the Debian packages; without them these tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import cli_env, embedded_uri, git_status, record_of, run_cli, start_cli, stop
from team_services import setup_sweep_project, split_sweep

TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "slurmdbd", "sinfo", "sacct", "mariadbd", "mariadb-install-db")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None and not Path("/usr/sbin", t).exists() for t in TOOLS),
    reason="Slurm is not installed (.ci/run installs slurm-wlm, slurmdbd, munge and mariadb-server)",
)

REPO = Path(__file__).resolve().parent.parent
SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10"]
SLURM += ["hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a cluster brought up for this module, stopped by its PIDs afterwards."""
    where = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin"}
    try:
        started = subprocess.run(
            ["bash", str(REPO / "scripts" / "slurm.sh"), "start", str(where)],
            capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        yield str(where / "slurm.conf")
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "slurm.sh"), "stop", str(where)], timeout=60, env=env)


def sacct(conf: str, job_id: str) -> tuple[str, str]:
    """(State, ExitCode) of a Slurm job once the accounting database has its end (submitit returns
    as soon as the job's result exists, before Slurm has recorded how the job ended)."""
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "State,ExitCode", "-j", job_id],
            capture_output=True, text=True, timeout=60, env={**os.environ, "SLURM_CONF": conf},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        if lines and lines[0].split("|")[0] not in {"PENDING", "RUNNING", "COMPLETING"}:
            state, code = lines[0].split("|")
            return state, code
        assert time.monotonic() < deadline, f"Slurm job {job_id} had not ended in 60 s: {lines}"
        time.sleep(0.5)


def helpers_started_in_jobs() -> list[int]:
    """PIDs of store helpers whose environment says a Slurm job started them."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"reprotrain.adapters.store_helper" in cmdline and b"\0SLURM_JOB_ID=" in b"\0" + environ:
            found.append(int(proc.name))
    return found


def test_every_job_is_a_slurm_job_and_a_complete_run_and_a_failure_fails_both(project, slurm):
    setup_sweep_project(project)
    env = cli_env(project, {"SLURM_CONF": slurm})
    res = run_cli("run", "-m", "seed=1,2", "exit_code=0,3", *SLURM, cwd=project, env=env, timeout=600)
    assert res.code == 3, res.describe()  # the code's exit code of the failed jobs
    warned = [line for line in res.err.splitlines() if "hydra/launcher=submitit_slurm may run the jobs" in line]
    assert len(warned) == 2, res.describe()  # the embedded store, and the state dir on this host's disk
    assert "MLFLOW_TRACKING_URI=http://" in warned[0] and "state directory" in warned[1], warned
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    assert len(children) == 4 and parent.info.status == "FAILED", [c.info.status for c in children]
    for child in children:
        failing = child.data.params["exit_code"] == "3"
        assert child.info.status == ("FAILED" if failing else "FINISHED"), child.data.tags
        assert child.data.metrics["seed"] == float(child.data.params["seed"]), "metrics logged from the Slurm job"
        environment = record_of(uri, child.info.run_id)["environment"]
        job = environment["engine_job"]
        assert job["engine"] == "slurm" and job["partition"] == "debug", job
        assert environment["host"] and environment["packages"], environment.keys()
        assert sacct(slurm, job["job_id"]) == (("FAILED", "3:0") if failing else ("COMPLETED", "0:0"))
    jobs = {c.data.params["exit_code"]: c.info.run_id for c in children}
    shown = run_cli("show", jobs["3"], cwd=project, env=env)
    assert shown.code == 0 and "(slurm job " in shown.out and "partition debug" in shown.out, shown.describe()
    data = json.loads(run_cli("show", jobs["0"], "--json", cwd=project, env=env).out)
    assert data["environment"]["engine_job"]["engine"] == "slurm"
    assert helpers_started_in_jobs() == [], "a Slurm job started a store helper that would outlive it"
    assert git_status(project) == ""


def squeue(conf: str, states: str = "RUNNING") -> list[str]:
    """IDs of the cluster's jobs in `states` (`1_0`); `all` includes the jobs that ended in the last
    MinJobAge (300 s, scripts/slurm.sh)."""
    done = subprocess.run(
        ["squeue", "-h", "-t", states, "-o", "%i"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SLURM_CONF": conf},
    )  # fmt: skip
    return done.stdout.split()


def running_sweep(project: Path, conf: str, seed: int, log: Path, env: dict[str, str] | None = None):
    """A one-job sweep whose job sleeps 12 s, once its Slurm job runs: (the launcher, the job ID)."""
    before = set(squeue(conf))
    extra = {"SLURM_CONF": conf, **(env or {})}
    proc = start_cli(project, "run", "-m", f"seed={seed}", "sleep=12", *SLURM, log=log, env=extra)
    deadline = time.monotonic() + 90
    while not (set(squeue(conf)) - before):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)
    (job,) = set(squeue(conf)) - before
    while not _job_run(project, seed):  # the job's run exists: its code is running
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)
    return proc, job


def _job_run(project: Path, seed: int) -> bool:
    from helpers import all_runs

    return any(_of_job(r, seed) for r in all_runs(embedded_uri(project)))


def _of_job(run, seed: int) -> bool:
    """A job's run of ``seed=N`` (its tags are there from the start; params come at its end)."""
    return bool(run.data.tags.get("mlflow.parentRunId")) and f'"seed={seed}"' in run.data.tags.get(
        "reprotrain.overrides", ""
    )


def sweep_of(project: Path, seed: int):
    from helpers import all_runs

    runs = all_runs(embedded_uri(project))
    jobs = [r for r in runs if _of_job(r, seed)]
    (job,) = jobs
    (parent,) = [r for r in runs if r.info.run_id == job.data.tags["mlflow.parentRunId"]]
    return parent, job


def job_logs(project: Path, job: str) -> str:
    """The tails of a Slurm job's submitit logs (for an assertion's message)."""
    base = job.split("_")[0]
    found = [p for p in project.rglob("*_log.*") if base in str(p.relative_to(project))]
    tails = [f"== {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(found)]
    return "\n".join(tails) or f"no log of job {job}"


def ended_run(project: Path, seed: int, job: str) -> str:
    """The job's run's status once it is no longer RUNNING (60 s at most), with its logs if it is not FINISHED."""
    from helpers import wait_for

    wait_for(lambda: sweep_of(project, seed)[1].info.status != "RUNNING", 60)
    status = sweep_of(project, seed)[1].info.status
    return status if status == "FINISHED" else f"{status}\n{job_logs(project, job)}"


def test_a_cancelled_job_a_stopped_and_a_killed_launcher_leave_no_run_that_stays_running(project, slurm, tmp_path):
    # scancel of the job: its run is KILLED (the code got SIGTERM), the launcher exits 1, the sweep FAILED
    proc, job = running_sweep(project, slurm, 1, tmp_path / "cancel.log")
    try:
        subprocess.run(["scancel", job], check=True, timeout=60, env={**os.environ, "SLURM_CONF": slurm})
        assert proc.wait(timeout=120) == 1, (tmp_path / "cancel.log").read_text()
    finally:
        stop(proc)
    said = (tmp_path / "cancel.log").read_text()
    failed = [line for line in said.splitlines() if "hydra/launcher=submitit_slurm failed" in line]
    assert len(failed) == 1 and "UncompletedJobError" in failed[0] and "Traceback" not in said, said
    parent, child = sweep_of(project, 1)
    assert child.info.status == "KILLED" and parent.info.status == "FAILED", (child.info.status, parent.info.status)
    assert sacct(slurm, job)[0].startswith("CANCELLED")

    # SIGTERM to the launcher: it exits 143, the sweep is KILLED; the Slurm job runs on and ends its run
    proc, job = running_sweep(project, slurm, 2, tmp_path / "term.log")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, (tmp_path / "term.log").read_text()
    finally:
        stop(proc)
    assert sweep_of(project, 2)[0].info.status == "KILLED"
    assert sacct(slurm, job)[0] == "COMPLETED"
    assert ended_run(project, 2, job) == "FINISHED"

    # SIGKILL to the launcher: the sweep stays RUNNING, and `runs --stale` finds it, `--reap` ends it.
    # The launcher's own process is killed: not a warm launch, whose killed client has its launch
    # stopped by SIGTERM instead (the second case above; tests/test_warm.py)
    proc, job = running_sweep(project, slurm, 3, tmp_path / "kill.log", env={"REPROTRAIN_WARM": "0"})
    try:
        proc.kill()
        proc.wait(timeout=60)
    finally:
        stop(proc)
    parent, _ = sweep_of(project, 3)
    stale = json.loads(run_cli("runs", "--stale", "--json", cwd=project).out)["runs"]
    assert [r["run_id"] for r in stale] == [parent.info.run_id], stale
    reaped = run_cli("runs", "--reap", cwd=project)
    assert reaped.code == 0 and parent.info.run_id in reaped.out, reaped.describe()
    assert sacct(slurm, job)[0] == "COMPLETED"
    assert ended_run(project, 3, job) == "FINISHED"
    assert sweep_of(project, 3)[0].info.status == "KILLED"


def test_rerun_of_a_slurm_sweep_and_of_one_of_its_jobs_runs_on_slurm_again(project, slurm):
    from helpers import all_runs

    setup_sweep_project(project)
    env = cli_env(project, {"SLURM_CONF": slurm})
    res = run_cli("run", "-m", "seed=1,2", *SLURM, cwd=project, env=env, timeout=600)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    first_ids = {record_of(uri, c.info.run_id)["environment"]["engine_job"]["job_id"] for c in children}

    res = run_cli("rerun", parent.info.run_id, "--verify", cwd=project, env=env, timeout=600)
    assert res.code == 0 and "REPRODUCED (2 of 2 jobs reproduced)" in res.out, res.describe()
    reruns = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") in {c.info.run_id for c in children}]
    assert len(reruns) == 2, res.describe()
    for again in reruns:
        record = record_of(uri, again.info.run_id)
        job = record["environment"]["engine_job"]
        assert job["engine"] == "slurm" and job["job_id"] not in first_ids, job  # a new Slurm job ran it
        assert sacct(slurm, job["job_id"]) == ("COMPLETED", "0:0")
        assert record["job"]["launcher"]["name"] == "submitit_slurm"
        assert record["job"]["launcher"]["config"]["partition"] == "debug"

    job_run = children[0].info.run_id
    res = run_cli("rerun", job_run, "--verify", cwd=project, env=env, timeout=600)
    assert res.code == 0 and "REPRODUCED" in res.out, res.describe()
    (alone,) = [
        r for r in all_runs(uri)
        if r.data.tags.get("reprotrain.rerun_of") == job_run and "mlflow.parentRunId" not in r.data.tags
    ]  # fmt: skip
    assert record_of(uri, alone.info.run_id)["environment"]["engine_job"]["engine"] == "slurm"
    assert helpers_started_in_jobs() == []
    assert git_status(project) == ""


def test_rerun_rebuild_env_of_a_slurm_sweep_runs_its_job_in_the_rebuilt_environment(project, slurm, tmp_path):
    """The code's venv (rtpin 1.0) moves to 2.0; `rerun --rebuild-env` of the Slurm sweep builds the
    recorded venv in a cache on the (here: one node's) shared filesystem, and the Slurm job runs
    its `python` from it (sbatch passes the rerun's PATH on)."""
    import sys

    from helpers import all_runs, commit_all, write_pyproject
    from test_rebuild_env import ENVTRAIN_PY, UV, packages_of, uv_install, wheel

    if not os.access(UV, os.X_OK):
        pytest.skip("uv is not installed (scripts/_venv.sh installs it)")
    links = tmp_path / "wheels"
    wheel(links, "rtpin", "1.0")
    wheel(links, "rtpin", "2.0")
    venv = tmp_path / "user-venv"
    offline = {"UV_NO_INDEX": "1", "PIP_NO_INDEX": "1", "UV_FIND_LINKS": str(links)}
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=os.environ | offline)
    uv_install(venv, "rtpin==1.0", env=os.environ | offline)
    (project / "envtrain.py").write_text(ENVTRAIN_PY)
    write_pyproject(project, entrypoint="python envtrain.py")
    commit_all(project, "code that reads rtpin")
    path = os.pathsep.join([str(venv / "bin"), str(Path(UV).parent), os.environ["PATH"]])
    env = offline | {
        "SLURM_CONF": slurm,
        "REPROTRAIN_ENV_CACHE": str(tmp_path / "shared" / "envs"),
        "VIRTUAL_ENV": str(venv),
        "PATH": path,
    }
    res = run_cli("run", "-m", "model.lr=0.1", *SLURM, cwd=project, env=env, timeout=600)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    parent, (child,) = split_sweep(uri)
    assert record_of(uri, child.info.run_id)["environment"]["packages"]["rtpin"] == "1.0"

    uv_install(venv, "rtpin==2.0", env=os.environ | offline)
    res = run_cli("rerun", parent.info.run_id, "--rebuild-env", "--verify", cwd=project, env=env, timeout=600)
    assert res.code == 0 and "REPRODUCED (1 of 1 jobs reproduced)" in res.out, res.describe()
    (again,) = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") == child.info.run_id]
    record = record_of(uri, again.info.run_id)
    assert record["environment"]["engine_job"]["engine"] == "slurm"
    assert record["environment"]["executable"].startswith(str(tmp_path / "shared" / "envs"))
    assert again.data.metrics["rtpin"] == 1.0 and again.data.tags["reprotrain.env.rebuilt"]
    assert packages_of(venv)["rtpin"] == "2.0"
    assert git_status(project) == ""


def test_a_smoke_run_here_comes_before_the_sweep_on_slurm(project, slurm):
    """`run --smoke` of a Slurm sweep: the smoke job runs here (no Slurm job), then every job of the
    sweep on Slurm; a failing smoke run submits nothing."""
    from helpers import all_runs, commit_all, write_pyproject

    write_pyproject(project, entrypoint="python train.py", smoke_overrides=["sleep=0"])
    commit_all(project, "smoke overrides")
    env = cli_env(project, {"SLURM_CONF": slurm})
    res = run_cli("run", "--smoke", "-m", "model.lr=0.1,0.2", *SLURM, cwd=project, env=env, timeout=600)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    (smoke,) = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.smoke") == "true"]
    assert "engine_job" not in record_of(uri, smoke.info.run_id)["environment"], "the smoke job ran here"
    jobs = [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId")]
    assert len(jobs) == 2 and all(
        record_of(uri, j.info.run_id)["environment"]["engine_job"]["engine"] == "slurm" for j in jobs
    )

    before = set(squeue(slurm, "all"))  # the sweep's jobs may still be RUNNING as their results are read
    failed = run_cli(
        "run", "--smoke", "-m", "model.lr=0.1,0.2", "exit_code=5", *SLURM, cwd=project, env=env, timeout=600
    )
    assert failed.code == 5 and "nothing else was launched" in failed.err, failed.describe()
    assert len([r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId")]) == 2, "no new Slurm job"
    assert set(squeue(slurm, "all")) - before == set(), "no job was submitted"
    assert git_status(project) == ""
