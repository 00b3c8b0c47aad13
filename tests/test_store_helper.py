"""The store helper (reprotrain/adapters/store_helper.py): a background process that serves the
embedded SQLite store, so a launch does not import MLflow. Whatever happens to the helper, runs
must be recorded exactly as without it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fault_inject import stopped
from helpers import (
    REPROTRAIN,
    all_runs,
    artifact_json,
    artifact_paths,
    cli_env,
    commit_all,
    configure,
    embedded_uri,
    pid_alive,
    record_of,
    run_cli,
    start_cli,
    stop,
    store_helpers,
    wait_for,
    wait_for_file,
)

PROBE_PY = '''\
import json
import os
import sys
import time
from pathlib import Path


def main(cfg):
    """Says whether the launch had imported MLflow before calling the code."""
    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    (out / "probe.json").write_text(json.dumps({"mlflow_imported": "mlflow" in sys.modules}))
    if os.environ.get("PROBE_PIDFILE"):
        Path(os.environ["PROBE_PIDFILE"]).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("PROBE_SLEEP", "0")))
    (out / "metrics.json").write_text(json.dumps({"acc": 0.5}))


def with_mlflow(cfg):
    """Code that imports MLflow itself and logs into the run (its first call attaches to it)."""
    import mlflow

    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    mlflow.log_metric("own_metric", 3.0)
    active = mlflow.active_run()
    (out / "probe.json").write_text(json.dumps({"active": active.info.run_id if active else None}))
'''


OFF = {"REPROTRAIN_STORE_HELPER": "0"}


def runtime() -> Path:
    return Path(os.environ["XDG_RUNTIME_DIR"])


def helper_of(project: Path) -> int | None:
    uri = embedded_uri(project)
    return next((pid for pid, served in store_helpers(runtime()).items() if served == uri), None)


def wait_helper(project: Path) -> int:
    assert wait_for(lambda: helper_of(project) is not None, 90), "no store helper started"
    pid = helper_of(project)
    assert pid is not None
    return pid


def launch(project: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    res = run_cli("run", *args, cwd=project, env=env)
    assert res.code == 0, res.describe()
    run = newest_run(project)
    assert run.info.status == "FINISHED", res.describe()
    return {"run": run, "probe": artifact_json(embedded_uri(project), run.info.run_id, "probe.json")}


def newest_run(project: Path):
    return max(all_runs(embedded_uri(project)), key=lambda r: r.info.start_time)


def assert_complete(project: Path, run) -> None:
    """Everything a run records, whoever wrote it."""
    uri = embedded_uri(project)
    assert run.data.metrics["acc"] == 0.5
    assert run.data.params, "no params"
    assert run.data.tags["reprotrain.pinned"] == "true"
    paths = artifact_paths(uri, run.info.run_id)
    assert {"reprotrain/record.json", "reprotrain/config.yaml", "reprotrain/console.log"} <= paths, paths
    assert record_of(uri, run.info.run_id)["run_id"] == run.info.run_id
    assert run.inputs.dataset_inputs, "no DVC dataset inputs"


@pytest.fixture()
def probed(project):
    (project / "probe_train.py").write_text(PROBE_PY)
    commit_all(project, "probe")
    configure(project, entrypoint="probe_train:main")
    first = launch(project, env=OFF)  # creates the store; the tests decide when a helper starts
    assert first["probe"]["mlflow_imported"] is True
    assert helper_of(project) is None
    return project


def test_a_helper_serves_launches_after_the_first(probed):
    second = launch(probed)  # finds the store and no helper: starts one, works without it
    assert second["probe"]["mlflow_imported"] is True
    wait_helper(probed)
    third = launch(probed)
    assert third["probe"]["mlflow_imported"] is False, "a launch served by the helper imported MLflow"
    assert_complete(probed, third["run"])
    assert len(all_runs(embedded_uri(probed))) == 3


def test_code_that_imports_mlflow_logs_into_the_run(probed):
    configure(probed, entrypoint="probe_train:with_mlflow")
    launch_res = run_cli("run", cwd=probed)
    assert launch_res.code == 0, launch_res.describe()
    wait_helper(probed)
    res = run_cli("run", cwd=probed)
    assert res.code == 0, res.describe()
    run = newest_run(probed)
    probe = artifact_json(embedded_uri(probed), run.info.run_id, "probe.json")
    assert probe["active"] == run.info.run_id
    assert run.data.metrics["own_metric"] == 3.0
    assert run.info.status == "FINISHED"


def test_a_killed_helper_is_replaced_and_costs_no_run(probed):
    launch(probed)
    pid = wait_helper(probed)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(pid), 10)
    after = launch(probed)  # its socket is dead: this launch does the store work itself
    assert_complete(probed, after["run"])
    replacement = wait_helper(probed)
    assert replacement != pid


def test_a_stopped_helper_does_not_block_a_launch(probed):
    launch(probed)
    pid = wait_helper(probed)
    try:
        with stopped(pid):  # its socket still accepts connections; it answers nothing
            res = run_cli("run", cwd=probed, timeout=60)  # before: blocked in the handshake for good
        assert res.code == 0, res.describe()
        assert_complete(probed, newest_run(probed))
    finally:
        os.kill(pid, signal.SIGKILL)


def test_helper_dying_during_a_run_costs_nothing(probed, tmp_path):
    launch(probed)
    pid = wait_helper(probed)
    pidfile = tmp_path / "train.pid"
    log = tmp_path / "cli.log"
    proc = start_cli(probed, "run", log=log, env={"PROBE_PIDFILE": str(pidfile), "PROBE_SLEEP": "3"})
    try:
        wait_for_file(pidfile, proc, log)
        os.kill(pid, signal.SIGKILL)  # the run was created through it; the rest must go elsewhere
        code = proc.wait(timeout=120)
    finally:
        stop(proc)
    assert code == 0, log.read_text()[-3000:]
    run = newest_run(probed)
    assert run.info.status == "FINISHED"
    assert_complete(probed, run)


def test_helper_leaves_when_its_store_is_removed(probed):
    launch(probed)
    pid = wait_helper(probed)
    db = probed / ".reprotrain" / "mlflow.db"
    db.rename(db.with_name("moved.db"))
    assert wait_for(lambda: not pid_alive(pid), 20), "the helper outlived its database"


def test_helper_can_be_turned_off(probed):
    for _ in range(2):
        assert launch(probed, env=OFF)["probe"]["mlflow_imported"] is True
    time.sleep(3)
    assert helper_of(probed) is None


def test_sweep_jobs_go_through_the_helper(probed):
    launch(probed)
    wait_helper(probed)
    res = run_cli("run", "-m", "seed=1,2,3", cwd=probed)
    assert res.code == 0, res.describe()
    uri = embedded_uri(probed)
    runs = all_runs(uri)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    parents = {r.data.tags["mlflow.parentRunId"] for r in children}
    assert len(children) == 3 and len(parents) == 1
    parent = next(r for r in runs if r.info.run_id in parents)
    assert parent.info.status == "FINISHED"
    for child in children:
        assert child.info.status == "FINISHED"
        assert artifact_json(uri, child.info.run_id, "probe.json")["mlflow_imported"] is False
    assert parent.data.tags["reprotrain.sweep.jobs"] == "3"


READ_PROBE = """
import sys
from reprotrain.cli import main
code = main(sys.argv[1:])
print("MLFLOW-IMPORTED" if "mlflow" in sys.modules else "MLFLOW-NOT-IMPORTED", file=sys.stderr)
sys.exit(code)
"""


def read(project: Path, *args: str) -> subprocess.CompletedProcess:
    """A read-only command (`runs`, `show`), saying whether its process imported MLflow."""
    python = REPROTRAIN.read_text().splitlines()[0][2:].strip()  # the console script's own (a helper is per Python)
    return subprocess.run(
        [python, "-c", READ_PROBE, *args],
        cwd=project, env=cli_env(project), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_reads_go_through_a_running_helper_and_keep_their_errors(probed):
    first = read(probed, "runs", "--json")
    assert first.returncode == 0 and "MLFLOW-IMPORTED" in first.stderr, first.stderr
    assert helper_of(probed) is None, "a read starts no helper"
    launch(probed)  # finds the store and no helper: starts one
    wait_helper(probed)
    listed = read(probed, "runs", "--json", "--sort", "start_time:asc")
    assert listed.returncode == 0 and "MLFLOW-NOT-IMPORTED" in listed.stderr, listed.stderr
    rows = json.loads(listed.stdout)["runs"]
    assert len(rows) == 2 and rows[0]["start_time"] <= rows[1]["start_time"], rows
    shown = read(probed, "show", rows[0]["run_id"][:10], "--json")
    assert shown.returncode == 0 and "MLFLOW-NOT-IMPORTED" in shown.stderr, shown.stderr
    assert json.loads(shown.stdout)["run_id"] == rows[0]["run_id"]
    bad = read(probed, "runs", "--filter", "metrics.acc <<< 1")
    assert bad.returncode == 2 and "MLflow rejected the search" in bad.stderr, bad.stderr
    missing = read(probed, "show", "deadbeefdeadbeef")
    assert missing.returncode == 1 and "no run ID starts with deadbeefdeadbeef" in missing.stderr, missing.stderr
