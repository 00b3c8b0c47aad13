"""Sweeps on a local Ray cluster through `hydra/launcher=ray` (hydra-ray-launcher): every job runs
as a Ray task and is a complete child run that names its Ray job; a rerun goes back through Ray;
the launcher's errors are one line, exit 1; SIGTERM to the launcher leaves no run RUNNING that
`runs --stale`/`--reap` cannot find; the launch's variables reach the Ray workers, and no worker
starts a store helper.

Ray listens on every interface whatever it is told, so it runs only inside a loopback-only network
namespace: `scripts/test.sh --ray` installs the `ray` extra and runs this module in one
(`unshare -n`). Anywhere else it is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import all_runs, artifact_json, embedded_uri, git_status, record_of, run_cli, start_cli, stop, wait_for
from team_services import setup_sweep_project, split_sweep


def _loopback_only() -> bool:
    # the interfaces of this process's network namespace (/sys/class/net may be the host's)
    return [name for _, name in socket.if_nameindex()] == ["lo"]


pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None or importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
        reason="Ray is not installed (scripts/test.sh --ray installs the ray extra)",
    ),
    pytest.mark.skipif(
        not _loopback_only(), reason="Ray runs only in a loopback-only network namespace: scripts/test.sh --ray"
    ),
]

ADDRESS = "127.0.0.1:6379"
RAY = ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={ADDRESS}"]
RAY += ["+hydra.launcher.ray.init.object_store_memory=null"]  # the plugin's default, refused by a running cluster
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _ray_processes(temp: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and temp.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head on 127.0.0.1 for this module (`ray start --block`, its own process group), stopped by
    its process group afterwards."""
    temp = tempfile.mkdtemp(prefix="rt-ray-", dir="/tmp")  # Ray's socket paths must stay short
    log = open(Path(temp) / "ray-start.log", "w")  # noqa: SIM115 - open for the cluster's lifetime
    ray = str(Path(sys.executable).parent / "ray")
    proc = subprocess.Popen(
        [ray, "start", "--head", "--block", "--port=6379", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        env={**os.environ, **RAY_ENV}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (Path(temp) / "ray-start.log").read_text()
            assert time.monotonic() < deadline, "Ray did not start in 120 s"
            try:
                socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(2)  # the raylet registers after the GCS listens
        yield temp
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        for pid in _ray_processes(temp):  # a Ray process that left the group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        assert wait_for(lambda: not _ray_processes(temp), 20), f"Ray processes left: {_ray_processes(temp)}"


def _helpers() -> set[int]:
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"reprotrain.adapters.store_helper" in (proc / "cmdline").read_bytes():
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def test_a_ray_sweep_records_every_job_where_it_ran_and_reruns_on_ray(project, ray_cluster):
    setup_sweep_project(project)
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("dump_env: false", "dump_env: true"))
    subprocess.run(["git", "commit", "-qam", "dump the environment"], cwd=project, check=True)
    env = {**RAY_ENV, "REPROTRAIN_STORE_HELPER": "0", "REPROTRAIN_TEST_MARK": "set-for-the-launch"}
    before = _helpers()
    res = run_cli("run", "-m", "seed=1,2", "exit_code=0,3", *RAY, cwd=project, env=env, timeout=600)
    assert res.code == 3, res.describe()  # the failed jobs' own exit code
    warned = [line for line in res.err.splitlines() if "hydra/launcher=ray may run the jobs" in line]
    assert len(warned) == 2, res.describe()  # the embedded store, the state dir on this host's disk
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    assert len(children) == 4 and parent.info.status == "FAILED", [c.info.status for c in children]
    for child in children:
        failing = child.data.params["exit_code"] == "3"
        assert child.info.status == ("FAILED" if failing else "FINISHED"), child.data.tags
        record = record_of(uri, child.info.run_id)
        job = record["environment"]["engine_job"]
        assert job["engine"] == "ray" and job["job_id"] and job["node_id"], job
        assert record["environment"]["host"] and record["job"]["launcher"]["name"] == "ray"
        seen = artifact_json(uri, child.info.run_id, "env-dump.json")
        assert seen.get("REPROTRAIN_TEST_MARK") == "set-for-the-launch", "the launch's variables reach Ray workers"
        assert seen.get("REPROTRAIN_STORE_HELPER") == "0"
    assert _helpers() <= before, "a Ray worker started a store helper"

    # the rerun of the sweep goes back through Ray: new Ray tasks, the same results
    res = run_cli("run", "-m", "seed=5,6", *RAY, cwd=project, env=env, timeout=600)
    assert res.code == 0, res.describe()
    sweep = next(
        r
        for r in all_runs(uri)
        if r.data.tags.get("reprotrain.sweep") == "true" and "seed=5" in r.data.tags.get("reprotrain.overrides", "")
    )
    res = run_cli("rerun", sweep.info.run_id, "--verify", cwd=project, env=env, timeout=600)
    assert res.code == 0 and "REPRODUCED (2 of 2 jobs reproduced)" in res.out, res.describe()
    originals = {r.info.run_id for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id}
    reruns = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") in originals]
    assert len(reruns) == 2
    for again in reruns:
        assert record_of(uri, again.info.run_id)["environment"]["engine_job"]["engine"] == "ray"
    assert git_status(project) == ""


def test_the_ray_launchers_error_is_one_line_and_sigterm_leaves_nothing_running(project, ray_cluster, tmp_path):
    setup_sweep_project(project)
    env = {**RAY_ENV, "REPROTRAIN_STORE_HELPER": "0"}
    # the plugin's defaults against a running cluster: Ray's refusal, in one line, exit 1, no run
    res = run_cli("run", "-m", "seed=1,2", *RAY[:2], cwd=project, env=env, timeout=300)
    assert res.code == 1, res.describe()
    failed = [line for line in res.err.splitlines() if line.startswith("reprotrain: error:")]
    assert len(failed) == 1 and "hydra/launcher=ray failed" in failed[0], res.describe()
    assert "object_store_memory" in failed[0] and "+hydra.launcher.ray.init.object_store_memory=null" in failed[0]
    assert "Traceback" not in res.err and all_runs(embedded_uri(project)) == []

    # SIGTERM to the launcher while its Ray task runs: exit 143, the sweep KILLED; a job that Ray
    # stops with its driver is found by `runs --stale` and ended by `--reap`
    log = tmp_path / "term.log"
    proc = start_cli(project, "run", "-m", "seed=3", "sleep=20", *RAY, log=log, env=env)
    try:
        uri = embedded_uri(project)
        assert wait_for(lambda: any(r.data.tags.get("mlflow.parentRunId") for r in all_runs(uri)), 120), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, log.read_text()
    finally:
        stop(proc)
    parent, (child,) = split_sweep(uri)
    assert parent.info.status == "KILLED", parent.info.status

    def settled() -> bool:
        running = [r.info.run_id for r in all_runs(uri) if r.info.status == "RUNNING"]
        stale = json.loads(run_cli("runs", "--stale", "--json", cwd=project, env=env).out)["runs"]
        return set(running) <= {r["run_id"] for r in stale}

    assert wait_for(settled, 60), [(r.info.run_id, r.info.status) for r in all_runs(uri)]
    reaped = run_cli("runs", "--reap", cwd=project, env=env)
    assert reaped.code == 0, reaped.describe()
    assert all(r.info.status != "RUNNING" for r in all_runs(uri))
    assert git_status(project) == ""
