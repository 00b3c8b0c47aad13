"""git, through GitPython: one `git status` call answers commit, branch and every dirty path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reprotrain.core.pin import GitState, parse_porcelain_v2
from reprotrain.core.record import strip_credentials
from reprotrain.errors import ReprotrainError

__all__ = ["GitSnapshot", "snapshot"]


@dataclass(frozen=True)
class GitSnapshot:
    root: Path
    state: GitState
    remote: str  # credentials already removed


def snapshot(path: Path) -> GitSnapshot | None:
    """The repository containing ``path`` as `git status` sees it now; None outside git."""
    import git

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        with repo:
            if repo.bare or repo.working_tree_dir is None:
                return None
            out = repo.git.status(
                "--porcelain=v2", "--branch", "-z", "--untracked-files=normal", "--ignore-submodules=none"
            )
            remote = _remote_url(repo)
            return GitSnapshot(Path(repo.working_tree_dir), parse_porcelain_v2(out), remote)
    except git.GitCommandError as exc:
        raise ReprotrainError(f"git status failed in {path}: {exc.stderr.strip() or exc}") from exc


def _remote_url(repo: object) -> str:
    remotes = {r.name: r for r in repo.remotes}  # type: ignore[attr-defined]
    remote = remotes.get("origin") or next(iter(remotes.values()), None)
    if remote is None:
        return ""
    try:
        urls = list(remote.urls)
    except Exception:  # a remote without url: nothing to record
        return ""
    return strip_credentials(urls[0]) if urls else ""
