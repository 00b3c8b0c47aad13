"""The cluster engine a job runs under (Slurm, Ray), as the job's own process sees it: the
engine's ID of the job, and a failed job's exit code handed to the engine."""

from __future__ import annotations

import atexit
import os
import sys

__all__ = ["current_job", "fail_engine_job"]


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


def fail_engine_job(exit_code: int) -> None:
    """Make the engine see the job fail: under Slurm, this process exits ``exit_code`` once it
    ends (submitit has written the job's result by then, so the launcher still gets it); Slurm
    then records the job FAILED, not COMPLETED. Nothing elsewhere."""
    if not os.environ.get("SLURM_JOB_ID") or not exit_code:
        return

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(exit_code)

    atexit.register(leave)  # registered last, so run first: nothing after it could change the code
