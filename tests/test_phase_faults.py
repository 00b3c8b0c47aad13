"""Faults at a named phase of a real `reprotrain run` (tests/fault_inject.py): a launcher killed
while the gate runs or while the store is first created, and the training killed with it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import pytest
from fault_helpers import assert_one_line_error, kill_pid, setup_fault_project, start_cli, stop, wait_for_file
from fault_inject import at_phase, fill, small_fs
from helpers import all_runs, copy_project, embedded_uri, git_status, pid_alive, run_cli, wait_for


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_launcher_stopped_during_the_gate_leaves_no_process_and_writes_nothing(project, tmp_path, sig):
    setup_fault_project(project)
    marker, log = tmp_path / "gate.pid", tmp_path / "cli.log"
    env = at_phase(tmp_path, "gate", "pause", marker=marker, sleep=300)
    proc = start_cli(project, "run", log=log, env=env)
    gate = None
    try:
        gate = int(wait_for_file(marker, proc, log))
        assert gate != proc.pid, "the gate runs in a fork of its own"
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=60)
        # before: the fork went on with the gate for minutes, an orphan
        assert wait_for(lambda: not pid_alive(gate), 15), f"the gate's fork {gate} outlived reprotrain"
    finally:
        stop(proc)
        if gate is not None:
            kill_pid(gate)
    assert code in (-sig, 128 + sig), f"exit {code}:\n{log.read_text()[-3000:]}"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert not (project / ".reprotrain").exists(), "nothing is written before the gate's verdict"
    assert git_status(project) == ""


@pytest.mark.parametrize("after", [10, 90])
def test_a_launcher_killed_while_creating_the_store_does_not_brick_it(project, tmp_path, after):
    """SIGKILL at the ``after``-th SQL statement of the first launch (mid-migration): the store
    is made aside and moved into place, so the next launch finds none, or a whole one."""
    setup_fault_project(project)
    env = {**at_phase(tmp_path, "store-create", "kill", after=after), "REPROTRAIN_STORE_HELPER": "0"}
    first = run_cli("run", cwd=project, env=env)
    assert first.code in (-9, 137), first.describe()
    db = project / ".reprotrain" / "mlflow.db"
    if db.exists():  # the whole store, migrated, or nothing
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from alembic_version").fetchone()[0] == 1
    second = run_cli("run", cwd=project)  # before: `duplicate column name: step` on every command
    assert second.code == 0, second.describe()
    runs = all_runs(embedded_uri(project))
    assert [r.info.status for r in runs].count("FINISHED") == 1, [(r.info.run_id, r.info.status) for r in runs]
    assert not list((project / ".reprotrain").glob("mlflow.db.*creating*")), "a half-made store is left over"
    shown = run_cli("show", "last", cwd=project)
    assert shown.code == 0, shown.describe()


def _running(project) -> list[str]:
    return [r.info.run_id for r in all_runs(embedded_uri(project)) if r.info.status == "RUNNING"]


def test_a_sigkilled_sweep_leaves_a_parent_that_is_found_stale_and_reaped(project, tmp_path):
    setup_fault_project(project)
    pidfile, log = tmp_path / "train.pid", tmp_path / "cli.log"
    proc = start_cli(project, "run", "-m", "seed=1,2", log=log, env={"FT_MODE": "sleep", "FT_PIDFILE": str(pidfile)})
    child = None
    try:
        child = int(wait_for_file(pidfile, proc, log))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_for(lambda: not pid_alive(child), 15), "the training outlived its SIGKILLed launcher"
    finally:
        stop(proc)
        if child is not None:
            kill_pid(child)
    running = _running(project)
    assert len(running) == 2, running  # the sweep's parent and its first job
    listed = run_cli("runs", "--stale", "--json", cwd=project)
    assert listed.code == 0, listed.describe()
    # before: the parent had no launcher tag, so no command ever found it
    assert sorted(row["run_id"] for row in json.loads(listed.out)["runs"]) == sorted(running), listed.out
    reaped = run_cli("runs", "--reap", cwd=project)
    assert reaped.code == 0, reaped.describe()
    assert _running(project) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_sweep_on_worker_processes_stopped_by_a_signal_closes_its_parent(project, tmp_path, sig):
    setup_fault_project(project)
    pidfile, log = tmp_path / "train.pid", tmp_path / "cli.log"
    args = ["run", "-m", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = start_cli(project, *args, log=log, env={"FT_MODE": "sleep", "FT_PIDFILE": str(pidfile)})
    child = None
    try:
        child = int(wait_for_file(pidfile, proc, log))
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=90)
        assert wait_for(lambda: not pid_alive(child), 20), "a job's training outlived the stopped sweep"
    finally:
        stop(proc)
        if child is not None:
            kill_pid(child)
    output = log.read_text()
    assert code == 128 + sig, f"exit {code}:\n{output[-3000:]}"
    parents = [r for r in all_runs(embedded_uri(project)) if r.data.tags.get("reprotrain.sweep") == "true"]
    assert len(parents) == 1 and parents[0].info.status == "KILLED", [(r.info.run_id, r.info.status) for r in parents]
    assert parents[0].data.tags["reprotrain.exit_code"] == str(128 + sig)
    # jobs whose worker died with the sweep are reaped by the next command
    reaped = run_cli("runs", "--reap", cwd=project)
    assert reaped.code == 0, reaped.describe()
    assert _running(project) == []


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def project_on_small_disk(template_project, tmp_path):
    """The fault project on a 64 MB filesystem of its own, with one run recorded."""
    with small_fs(tmp_path / "disk", "64m") as disk:
        root = copy_project(template_project, disk / "demo")
        setup_fault_project(root)
        first = run_cli("run", cwd=root, env={"REPROTRAIN_STORE_HELPER": "0"})
        assert first.code == 0, first.describe()
        yield root


def test_a_full_disk_at_launch_is_refused_before_anything_is_written(project_on_small_disk, tmp_path):
    root = project_on_small_disk
    fill(root.parent, leave=1 << 20)
    marker = tmp_path / "started"
    res = run_cli("run", cwd=root, env={"FT_MARKER": str(marker), "REPROTRAIN_STORE_HELPER": "0"})
    assert res.code == 1, res.describe()  # before: "Hydra rejected the command line", exit 2
    assert_one_line_error(res, "MB free on the disk of", str(root))
    assert not marker.exists(), "the training must not start"
    assert len(all_runs(embedded_uri(root))) == 1, "no run is created"


def test_a_training_that_fills_the_disk_keeps_its_exit_code_and_says_what_was_lost(project_on_small_disk):
    root = project_on_small_disk
    res = run_cli("run", cwd=root, env={"FT_MODE": "fill_disk", "REPROTRAIN_STORE_HELPER": "0"})
    assert res.code == 0, res.describe()  # the code's own; before: 1, with Hydra's traceback
    assert "FT-DISK-FULL" in res.out, res.describe()
    assert "Traceback" not in res.err, res.describe()
    (line,) = [x for x in res.err.splitlines() if x.startswith("reprotrain: error:")]
    assert "No space left on device" in line and "free space on that disk" in line, line
    (run_id,) = [r.info.run_id for r in all_runs(embedded_uri(root)) if r.info.run_id in line]
    # with room again, nothing is left RUNNING for good
    for filler in root.glob(".reprotrain/outputs/**/fill.bin"):
        filler.unlink()
    reaped = run_cli("runs", "--reap", cwd=root)
    assert reaped.code == 0, reaped.describe()
    statuses = {r.info.run_id: r.info.status for r in all_runs(embedded_uri(root))}
    assert statuses[run_id] in ("FINISHED", "KILLED"), statuses
    assert "RUNNING" not in statuses.values(), statuses


SLEEPY_PY = """\
import os
import time
from pathlib import Path


def main(cfg):
    Path(os.environ["SLEEPY_PIDFILE"]).write_text(str(os.getpid()))
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_a_signal_to_a_sweep_of_function_jobs_kills_the_job_and_stops_the_sweep(project, tmp_path, sig):
    (project / "sleepy.py").write_text(SLEEPY_PY)
    setup_fault_project(project, entrypoint="sleepy.py:main")
    pidfile, log = tmp_path / "job.pid", tmp_path / "cli.log"
    proc = start_cli(project, "run", "-m", "seed=1,2,3", log=log, env={"SLEEPY_PIDFILE": str(pidfile)})
    try:
        wait_for_file(pidfile, proc, log)
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    output = log.read_text()
    assert code == 128 + sig, f"exit {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    runs = all_runs(embedded_uri(project))
    jobs = [r for r in runs if r.data.tags.get("reprotrain.sweep") != "true"]
    parents = [r for r in runs if r.data.tags.get("reprotrain.sweep") == "true"]
    # before (SIGINT): the job was FAILED with a traceback and the next jobs ran
    assert [r.info.status for r in jobs] == ["KILLED"], [(r.info.run_id, r.info.status) for r in jobs]
    assert [r.info.status for r in parents] == ["KILLED"]
