"""Orchestration of `reprotrain rerun`: rebuild a recorded run's code, data and config in a
separate git worktree, run it again as a new linked run, and optionally verify the result."""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.adapters import dvc as dvc_adapter
from reprotrain.adapters import git as git_adapter
from reprotrain.adapters.tracking import Tracker
from reprotrain.core.verify import Verdict, compare, env_drift
from reprotrain.errors import ReprotrainError
from reprotrain.launch import Lineage, RunOptions, ensure_state_dir, environment, launch, tracking_uri
from reprotrain.render import drift_text, verdict_text
from reprotrain.settings import find_project

__all__ = ["RerunOptions", "UnpinnedRunError", "rerun"]


class UnpinnedRunError(ReprotrainError):
    """The run was launched with --allow-unpinned: its code or data cannot be rebuilt exactly."""

    exit_code = 3


@dataclass(frozen=True)
class RerunOptions:
    verify: bool = False
    rtol: float = 0.0
    atol: float = 0.0
    strict_env: bool = False
    force: bool = False
    keep: bool = False
    timeout: float | None = None


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"reprotrain: {message}", file=sys.stderr, flush=True)


def rerun(run_id: str, overrides: list[str], options: RerunOptions, cwd: Path | None = None) -> int:
    """`reprotrain rerun`: returns the exit code (0, 4 when --verify finds a difference, ...)."""
    from reprotrain.query import last_run_id

    project = find_project(cwd)
    if run_id == "last":
        run_id = last_run_id(cwd)
    uri = tracking_uri(project)
    tracker = Tracker(uri)
    original = tracker.get_run(run_id)
    if "reprotrain.config.digest" not in original.tags:
        raise ReprotrainError(f"run {run_id} in {uri} was not launched by reprotrain: nothing to rebuild it from")
    record: dict[str, Any] = tracker.read_json_artifact(run_id, "reprotrain/record.json")
    if not record.get("pinned") and not options.force:
        raise UnpinnedRunError(
            f"run {run_id} was launched unpinned ({len(record.get('problems', []))} problems recorded): "
            "its code or data cannot be rebuilt exactly",
            hint=f"reprotrain rerun {run_id} --force to rerun it from its commit anyway",
        )
    drift = env_drift(record.get("environment", {}), environment())
    if drift:
        print(drift_text(drift), file=sys.stderr)
        if options.strict_env:
            raise ReprotrainError(
                f"the environment differs from run {run_id}'s in {len(drift)} place(s) and --strict-env is set",
                hint="install the recorded versions (see above), or rerun without --strict-env",
            )

    git = git_adapter.snapshot(project.root)
    if git is None:
        raise ReprotrainError(f"{project.root} is not inside a git repository: cannot check out the run's commit")
    sha = record["git"]["commit"]
    if not git_adapter.has_commit(git.root, sha):
        _progress(f"commit {sha[:12]} is not here: fetching from the configured git remotes")
        tried = git_adapter.fetch_commit(git.root, sha)
        if not git_adapter.has_commit(git.root, sha):
            raise ReprotrainError(
                f"commit {sha} of run {run_id} is not in this repository"
                + (f" nor on its remotes ({', '.join(tried)})" if tried else " and it has no git remote"),
                hint="git fetch <remote> from a remote that has it, then rerun",
            )

    derived = bool(overrides)
    state = ensure_state_dir(project)
    worktree = state / "worktrees" / uuid.uuid4().hex[:12]
    worktree.parent.mkdir(parents=True, exist_ok=True)
    _progress(f"checking out {sha[:12]} in {worktree}")
    git_adapter.add_worktree(git.root, worktree, sha)
    try:
        if record.get("data"):
            _progress(f"restoring {len(record['data'])} DVC output(s) from the cache")
            fetched = dvc_adapter.restore(
                worktree, dvc_adapter.cache_dir(project.root), project.root / ".dvc" / "config.local"
            )
            if fetched:
                _progress(f"pulled from the DVC remote: {', '.join(fetched)}")
        rel = project.root.relative_to(git.root)
        target = find_project(worktree / rel)
        config = record["config"]
        tokens = [f"--config-name={config['name']}", *config.get("hydra_overrides", []), *config["overrides"]]
        tokens += overrides
        tag = "reprotrain.derived_from" if derived else "reprotrain.rerun_of"
        lineage = Lineage(
            tags={tag: run_id, "reprotrain.env_drift": str(len(drift))},
            expected=None if derived else config["resolved"],
            expected_volatile=tuple(config.get("volatile", [])),
        )
        result = launch(
            target,
            tokens,
            RunOptions(timeout=options.timeout),
            uri=uri,
            experiment_id=original.experiment_id,
            lineage=lineage,
            argv0=("reprotrain", "rerun", run_id),
        )
        if not result.run_ids:
            return result.exit_code or 1
        new_id = result.run_ids[0]
        _log_drift(tracker, new_id, drift)
        if not derived:
            _check_identity(tracker, original.tags, new_id)
        if result.exit_code != 0:
            return result.exit_code
        if options.verify and not derived:
            verdict = _verify(tracker, run_id, new_id, target.settings.verify_files, options)
            print(verdict_text(verdict, run_id, new_id))
            return 0 if verdict.reproduced else 4
        return 0
    finally:
        if options.keep:
            print(f"reprotrain: kept the worktree at {worktree}", file=sys.stderr)
        else:
            git_adapter.remove_worktree(git.root, worktree)


def _log_drift(tracker: Tracker, run_id: str, drift: list[tuple[str, str | None, str | None]]) -> None:
    if not drift:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [{"name": n, "recorded": a, "current": b} for n, a, b in drift]
        (Path(tmp) / "env-drift.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        tracker.log_artifacts(run_id, Path(tmp), "reprotrain")


def _check_identity(tracker: Tracker, original_tags: dict[str, str], new_id: str) -> None:
    """A rerun carries the original's commit, data digest and config digest, by construction."""
    new_tags = tracker.get_run(new_id).tags
    for key in ("reprotrain.git.commit", "reprotrain.data.digest", "reprotrain.config.digest"):
        if original_tags.get(key) != new_tags.get(key):
            raise ReprotrainError(
                f"rerun {new_id} differs from the original in {key}: {original_tags.get(key)} != {new_tags.get(key)}"
            )


def _verify(tracker: Tracker, run_id: str, new_id: str, patterns: tuple[str, ...], options: RerunOptions) -> Verdict:
    original = tracker.get_run(run_id)
    new = tracker.get_run(new_id)
    files = [_outputs(tracker, rid) for rid in (run_id, new_id)]
    verdict = compare(original.metrics, new.metrics, files[0], files[1], patterns, options.rtol, options.atol)
    tracker.set_tags(new_id, {"reprotrain.reproduced": "true" if verdict.reproduced else "false"})
    with tempfile.TemporaryDirectory() as tmp:
        payload = {
            "original": run_id,
            "rerun": new_id,
            "rtol": options.rtol,
            "atol": options.atol,
            "reproduced": verdict.reproduced,
            "checks": [c.to_dict() for c in verdict.checks],
        }
        (Path(tmp) / "verification.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tracker.log_artifacts(new_id, Path(tmp), "reprotrain")
    return verdict


def _outputs(tracker: Tracker, run_id: str) -> dict[str, str]:
    try:
        data = tracker.read_json_artifact(run_id, "reprotrain/outputs.json")
    except ReprotrainError:
        return {}
    return data if isinstance(data, dict) else {}
