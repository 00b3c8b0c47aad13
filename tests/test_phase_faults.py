"""Faults at a named phase of a real `reprotrain run` (tests/fault_inject.py): a launcher killed
while the gate runs or while the store is first created, and the training killed with it."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest
from fault_helpers import kill_pid, setup_fault_project, start_cli, stop, wait_for_file
from fault_inject import at_phase
from helpers import all_runs, embedded_uri, git_status, pid_alive, run_cli, wait_for


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
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


@pytest.mark.parametrize("after", [5, 10, 30, 90])
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
