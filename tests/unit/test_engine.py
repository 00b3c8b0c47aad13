"""The engine a job runs under, as its environment names it (adapters/engine.py)."""

from __future__ import annotations

import atexit

from reprotrain.adapters import engine


def test_a_slurm_array_task_is_named_as_sacct_and_scancel_take_it(monkeypatch):
    for key, value in {
        "SLURM_JOB_ID": "9",
        "SLURM_ARRAY_JOB_ID": "4",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_JOB_PARTITION": "debug",
        "SLURM_JOB_NODELIST": "node[1-2]",
    }.items():
        monkeypatch.setenv(key, value)
    assert engine.current_job() == {"engine": "slurm", "job_id": "4_3", "partition": "debug", "nodes": "node[1-2]"}
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    assert engine.current_job()["job_id"] == "9"


def test_no_engine_outside_one(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    assert engine.current_job() == {}


def test_a_failure_is_handed_to_slurm_only_in_a_submitit_slurm_job(monkeypatch):
    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(engine, "_failed", [])
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    engine.fail_engine_job(3)
    assert registered == []
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.delenv("SUBMITIT_EXECUTOR")
    engine.fail_engine_job(3)
    assert registered == [], "a launch inside an allocation (sbatch, salloc) keeps its own exit code"
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    engine.fail_engine_job(0)
    assert registered == [], "a job that succeeded exits as it would"
    engine.fail_engine_job(256)
    engine.fail_engine_job(3)
    assert len(registered) == 1 and engine._failed == [3], "registered once; the last failure's code"
    engine.fail_engine_job(256)
    assert engine._failed == [1], "256 would exit 0: a failure stays a failure"
