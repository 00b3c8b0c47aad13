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
import subprocess
import time
from pathlib import Path

import pytest
from helpers import cli_env, embedded_uri, git_status, record_of, run_cli
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
