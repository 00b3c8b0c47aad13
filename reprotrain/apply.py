"""`reprotrain apply RUN_ID`: bring what a pipeline run made into the working copy, as `dvc exp
apply` does for an experiment: the run's dvc.lock and params.yaml, the outputs git keeps (metrics,
plots), and every cached output checked out from the DVC cache (fetched from the DVC remote when
the cache lacks it). Refused unless the working copy is clean and at the run's commit; if anything
fails, the working copy is put back as it was."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from reprotrain.core.record import PINNED_BY_GIT
from reprotrain.errors import ReprotrainError, UsageError

__all__ = ["apply_run"]


def apply_run(run_id: str, cwd: Path | None = None) -> tuple[str, list[str]]:
    """Returns the run's ID and the paths written into the working copy."""
    from reprotrain.adapters import git as git_adapter
    from reprotrain.adapters.tracking import Tracker, quick_failure
    from reprotrain.launch import tracking_uri
    from reprotrain.query import last_run_id
    from reprotrain.settings import find_project

    project = find_project(cwd)
    if run_id == "last":
        run_id = last_run_id(cwd)
    tracker = Tracker(tracking_uri(project), create=False)
    with quick_failure():
        record = tracker.read_json_artifact(run_id, "reprotrain/record.json")
    if not isinstance(record, dict) or not record.get("pipeline"):
        raise UsageError(
            f"run {run_id} did not run a DVC pipeline: it has no dvc.lock to apply",
            hint='apply takes runs of entrypoint = "dvc repro ..."; reprotrain show RUN_ID lists a run\'s outputs',
        )
    sha = str(record.get("git", {}).get("commit", ""))
    git = git_adapter.snapshot(project.root)
    head = git.state.commit if git else None
    if head != sha:
        raise UsageError(
            f"run {run_id} ran at commit {sha[:12]}, the working copy is at {(head or '(no commit)')[:12]}: "
            "its dvc.lock belongs to that commit's dvc.yaml",
            hint=f"git switch --detach {sha[:12]} (or a branch there: git switch -c from-run {sha[:12]}), then apply",
        )
    changed = git_adapter.changes(project.root)
    if changed:
        raise UsageError(
            f"the working copy has changes that apply would overwrite: {', '.join(changed[:5])}",
            hint="commit or stash them first (git stash -u)",
        )
    with tempfile.TemporaryDirectory(prefix="reprotrain-apply-") as tmp:
        with quick_failure():
            tracker.download_artifacts(run_id, "reprotrain/pipeline", Path(tmp))
        kept = Path(tmp) / "pipeline"
        written = _place(project.root, kept, record)
        try:
            _checkout(project.root, [o for o in record.get("outputs", []) if not _in_git(o)])
        except BaseException:
            git_adapter.restore_paths(project.root, written)
            raise
    return run_id, written


def _in_git(output: dict[str, Any]) -> bool:
    return str(output.get("source", "")).endswith(PINNED_BY_GIT)


def _place(root: Path, kept: Path, record: dict[str, Any]) -> list[str]:
    names = ["dvc.lock", str(record["pipeline"].get("params_file", "params.yaml"))]
    names += [str(o["path"]) for o in record.get("outputs", []) if _in_git(o)]
    missing = [n for n in names if not (kept / n).is_file()]
    if missing:
        raise ReprotrainError(
            f"the run's artifacts lack {', '.join(missing)} (reprotrain/pipeline/): it cannot be applied",
            hint="rerun it (reprotrain rerun RUN_ID) and apply the rerun",
        )
    for name in names:
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept / name, dest)
    return names


def _checkout(root: Path, outputs: list[dict[str, Any]]) -> None:
    """The run's cached outputs from the DVC cache, fetching what it lacks from the DVC remote."""
    if not outputs:
        return
    import os

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from reprotrain.adapters.dvc import _first_line, _quiet

    _quiet()
    targets = [str(o["path"]) for o in outputs]
    try:
        with Repo(os.fspath(root)) as repo:
            try:
                repo.checkout(targets=targets, force=True)
            except DvcException:
                repo.fetch(targets=targets)
                repo.checkout(targets=targets, force=True)
    except DvcException as exc:
        raise ReprotrainError(
            f"the run's outputs {', '.join(targets[:5])} are in neither the DVC cache here nor the DVC remote: "
            f"{_first_line(exc)}",
            hint="they are in the DVC cache of the machine that ran it: `dvc push` there, then apply again",
        ) from exc
