"""The cluster engine a job runs under (Slurm, Ray), as the job's own process sees it: the
engine's ID of the job, and a failed job's exit code handed to the engine."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

__all__ = ["current_job", "fail_engine_job", "filesystem_type"]


def current_job() -> dict[str, str]:
    """The engine and its IDs of the job this process runs in; {} when it runs under none."""
    env = os.environ
    if env.get("SLURM_JOB_ID"):
        found = {"engine": "slurm", "job_id": env["SLURM_JOB_ID"]}
        if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):  # as sacct and scancel name it
            found["job_id"] = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
        for key, name in (
            ("SLURM_JOB_NODELIST", "nodes"),
            ("SLURM_JOB_PARTITION", "partition"),
        ):
            if env.get(key):
                found[name] = env[key]
        return found
    ray = sys.modules.get("ray")  # a Ray worker has it imported; nothing else imports it for us
    if ray is not None:
        try:
            if ray.is_initialized():
                context = ray.get_runtime_context()
                found = {"engine": "ray", "job_id": str(context.get_job_id()), "node_id": str(context.get_node_id())}
                task = context.get_task_id()
                if task:
                    found["task_id"] = str(task)
                return found
        except Exception:  # an old or half-started Ray: no IDs, the run is still recorded
            return {"engine": "ray"}
    return {}


_failed: list[int] = []  # the exit code a failed job hands to Slurm, once per process


def fail_engine_job(exit_code: int) -> None:
    """Make the engine see the job fail: in a Slurm job that submitit runs (not a launch that merely
    runs inside an allocation), this process exits ``exit_code`` once it ends, after its other exit
    handlers (submitit has written the job's result by then, so the launcher still gets it); Slurm
    then records the job FAILED, not COMPLETED. Nothing elsewhere."""
    if not exit_code or not os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return
    code = exit_code if 0 < exit_code < 256 else 1  # 256 would exit 0
    if _failed:
        _failed[0] = code
        return
    _failed.append(code)

    def leave() -> None:
        atexit.unregister(leave)
        try:
            atexit._run_exitfuncs()  # the others first (logging, multiprocessing, MLflow's flush)
        except Exception:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(_failed[0])

    atexit.register(leave)  # registered late, so run early: it runs the rest itself, then exits


def filesystem_type(path: str) -> str:
    """The type of the filesystem ``path`` is on (`nfs4`, `ext4`), or "" where Linux's mount table
    is not readable."""
    from reprotrain.core.cluster import filesystem_of

    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return filesystem_of(os.path.realpath(path), mountinfo)
