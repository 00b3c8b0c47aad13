"""Run status and exit code: success, the code's own failure, exceptions, signals."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import (
    CHILD_LOGS,
    all_runs,
    artifact_paths,
    configure,
    embedded_uri,
    interrupt_when_started,
    pid_alive,
    run_cli,
    single_run,
    wait_for,
)


def failed_run(project, *args, code, env=None):
    res = run_cli("run", *args, cwd=project, env=env)
    assert res.code == code, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FAILED", f"status {run.info.status}, expected FAILED"
    assert run.data.tags.get("reprotrain.exit_code") == str(code)
    return run


def test_success_is_finished_and_exit_0(project):
    res = run_cli("run", cwd=project)
    assert res.code == 0, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FINISHED"
    assert run.data.tags["reprotrain.exit_code"] == "0"


def test_training_exit_code_passes_through_and_run_fails(project):
    """train.py logs through mlflow, whose exit hook marks the run FINISHED: it must still fail."""
    run = failed_run(project, "exit_code=7", code=7, env=CHILD_LOGS)
    paths = artifact_paths(embedded_uri(project), run.info.run_id)
    assert {"reprotrain/record.json", "reprotrain/console.log"} <= paths, paths
    assert run.data.metrics.get("acc") == 0.9, "metrics.json written before the failure is logged"


def test_child_ending_the_run_itself_still_fails(project):
    """train.py opens `with mlflow.start_run():` (attaching to the run), logs, closes it, exits 5."""
    run = failed_run(project, "end_run=true", "exit_code=5", code=5)
    assert run.data.metrics.get("child_metric") == 1.5, "the child's start_run() attached to this run"


def test_callable_sys_exit_code_passes_through(project):
    configure(project, entrypoint="demo_train:exit_with")
    failed_run(project, "exit_code=7", code=7)


def test_callable_raising_fails_with_exit_1(project):
    configure(project, entrypoint="demo_train:boom")
    res = run_cli("run", cwd=project)
    assert res.code == 1, res.describe()
    assert "boom from training code" in res.err, "the user's exception is shown"
    run = single_run(embedded_uri(project))
    assert run.info.status == "FAILED"


def test_callable_ending_the_run_then_raising_fails(project):
    configure(project, entrypoint="demo_train:end_then_boom")
    res = run_cli("run", cwd=project)
    assert res.code == 1, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FAILED"
    assert "reprotrain/record.json" in artifact_paths(embedded_uri(project), run.info.run_id)


def signal_run(project, tmp_path, sig):
    """Start `reprotrain run`, wait until the training wrote its pid, send ``sig`` to reprotrain.

    Returns (exit code, the pid the training wrote, the console output).
    """
    pidfile = tmp_path / "train.pid"
    return interrupt_when_started(
        project, "run", "sleep=60", f"pidfile={pidfile}", pidfile=pidfile, log=tmp_path / "reprotrain.log", sig=sig
    )


SIGNALS = pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])


@SIGNALS
def test_signal_kills_run_and_child(project, tmp_path, sig, code):
    returncode, child_pid, log = signal_run(project, tmp_path, sig)
    try:
        assert returncode == code, f"exit {returncode}, expected {code}:\n{log[-3000:]}"
        assert wait_for(lambda: not pid_alive(child_pid), 3), f"training process {child_pid} still runs"
        runs = all_runs(embedded_uri(project))
        assert len(runs) == 1
        assert runs[0].info.status == "KILLED", f"status {runs[0].info.status}"
    finally:
        if pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


@SIGNALS
def test_signal_during_callable_kills_run(project, tmp_path, sig, code):
    configure(project, entrypoint="demo_train:sleepy")
    returncode, _, log = signal_run(project, tmp_path, sig)
    assert returncode == code, f"exit {returncode}, expected {code}:\n{log[-3000:]}"
    runs = all_runs(embedded_uri(project))
    assert len(runs) == 1
    assert runs[0].info.status == "KILLED", f"status {runs[0].info.status}"
