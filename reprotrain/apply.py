"""`reprotrain apply RUN_ID`: bring what a pipeline run made into the working copy, as `dvc exp
apply` does for an experiment: the run's dvc.lock files and params.yaml, the outputs git keeps
(metrics, plots), and every cached output checked out from the DVC cache (fetched from the DVC
remote when the cache lacks it). Refused unless the working copy is at the run's commit with no
change apply would overwrite; if anything fails, the working copy is put back as it was."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from reprotrain.core.record import PINNED_BY_GIT
from reprotrain.core.secrets import MASK
from reprotrain.errors import ReprotrainError, UsageError

__all__ = ["apply_run"]


def apply_run(run_id: str, cwd: Path | None = None) -> tuple[str, list[str]]:
    """Returns the run's ID and the paths written into the working copy (relative to the project)."""
    from reprotrain.adapters import git as git_adapter
    from reprotrain.adapters.tracking import Tracker, quick_failure
    from reprotrain.launch import tracking_uri
    from reprotrain.query import resolve_run_id
    from reprotrain.settings import find_project

    project = find_project(cwd)
    tracker = Tracker(tracking_uri(project), create=False)
    with quick_failure():
        run_id = resolve_run_id(run_id, tracker, cwd)
        record = tracker.read_json_artifact(run_id, "reprotrain/record.json")
    if isinstance(record, dict) and record.get("kind") == "sweep":
        raise UsageError(
            f"run {run_id} is a sweep: apply brings one job's outputs into the working copy",
            hint=f"reprotrain runs --sweep {run_id[:12]}, then reprotrain apply JOB_RUN_ID",
        )
    if not isinstance(record, dict) or not record.get("pipeline"):
        raise UsageError(
            f"run {run_id} did not run a DVC pipeline: it has no dvc.lock to apply",
            hint='apply takes runs of entrypoint = "dvc repro ..."; reprotrain show RUN_ID lists a run\'s outputs',
        )
    sha = str(record.get("git", {}).get("commit", ""))
    git = git_adapter.snapshot(project.root)
    head = git.state.commit if git else None
    if git is None or head != sha:
        raise UsageError(
            f"run {run_id} ran at commit {sha[:12]}, the working copy is at {(head or '(no commit)')[:12]}: "
            "its dvc.lock belongs to that commit's dvc.yaml",
            hint=f"git switch --detach {sha[:12]} (or a branch there: git switch -c from-run {sha[:12]}), then apply",
        )
    rel = project.root.resolve().relative_to(git.root.resolve()).as_posix()
    prefix = "" if rel == "." else rel + "/"
    outputs = list(record.get("outputs", []))
    in_git = [_strip(prefix, str(o["path"])) for o in outputs if _in_git(o)]
    with tempfile.TemporaryDirectory(prefix="reprotrain-apply-") as tmp:
        with quick_failure():
            kept = tracker.download_artifacts(run_id, "reprotrain/pipeline", Path(tmp))
        names = [p.relative_to(kept).as_posix() for p in sorted(kept.rglob("dvc.lock"))]
        names += [str(record["pipeline"].get("params_file", "params.yaml")), *in_git]
        _check_writable(git_adapter.changes(git.root), [prefix + n for n in names])
        _check_kept(kept, names, run_id)
        cached = [_strip(prefix, str(o["path"])) for o in outputs if not _in_git(o)]
        _place(project.root, kept, names)
        try:
            _checkout(project.root, cached)
        except BaseException:
            git_adapter.restore_paths(git.root, [prefix + n for n in names])
            _checkout(project.root, cached, quiet=True)  # the committed versions, from the committed dvc.lock
            raise
    return run_id, names


def _strip(prefix: str, path: str) -> str:
    return path[len(prefix) :] if prefix and path.startswith(prefix) else path


def _in_git(output: dict[str, Any]) -> bool:
    return str(output.get("source", "")).endswith(PINNED_BY_GIT)


def _check_writable(changed: list[str], names: list[str]) -> None:
    """Refuse when a tracked file has changes, or an untracked file is in the way of one apply writes."""
    blocking = [c for c in changed if not c.startswith("??") or any(_covers(c[3:], n) for n in names)]
    if blocking:
        raise UsageError(
            f"the working copy has changes that apply would overwrite: {', '.join(blocking[:5])}",
            hint="commit or stash them first (git stash -u)",
        )


def _covers(changed: str, name: str) -> bool:
    changed = changed.rstrip("/")
    return name == changed or name.startswith(changed + "/") or changed.startswith(name + "/")


def _check_kept(kept: Path, names: list[str], run_id: str) -> None:
    missing = [n for n in names if not (kept / n).exists()]
    if missing:
        raise ReprotrainError(
            f"the run's artifacts lack {', '.join(missing[:5])} (reprotrain/pipeline/): it cannot be applied",
            hint="rerun it (reprotrain rerun RUN_ID) and apply the rerun",
        )
    masked = [n for n in names if (kept / n).is_file() and MASK in (kept / n).read_text(errors="replace")]
    if masked:
        raise UsageError(
            f"run {run_id}'s {', '.join(masked[:3])} hold secret values, which were never stored (masked "
            f"as {MASK}): applying them would write the mask into the workspace",
            hint="rerun it with the secret set (reprotrain rerun RUN_ID) and copy its outputs with dvc checkout, or "
            "keep secrets out of the params the stages declare (read them from the environment in the stage)",
        )


def _place(root: Path, kept: Path, names: list[str]) -> None:
    for name in names:
        source, dest = kept / name, root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(source, dest, symlinks=True)
        else:
            shutil.copyfile(source, dest)


def _checkout(root: Path, targets: list[str], quiet: bool = False) -> None:
    """The cached outputs as the dvc.lock files now pin them, fetching what the cache lacks."""
    if not targets:
        return
    import os

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from reprotrain.adapters.dvc import first_line, quiet_dvc

    quiet_dvc()
    try:
        with Repo(os.fspath(root)) as repo:
            try:
                repo.checkout(targets=targets, force=True)
            except DvcException:
                repo.fetch(targets=targets)
                repo.checkout(targets=targets, force=True)
    except DvcException as exc:
        if quiet:
            return
        raise ReprotrainError(
            f"the run's outputs {', '.join(targets[:5])} are in neither the DVC cache here nor the DVC remote: "
            f"{first_line(exc)}",
            hint="they are in the DVC cache of the machine that ran the run: apply it there, commit, and `dvc push`; "
            "then pull that commit here (git pull && dvc pull)",
        ) from exc
