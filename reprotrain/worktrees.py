"""Worktrees reprotrain checks a commit out in (a rerun's, a pipeline job's): made under the
state dir, locked with the launcher's ID, and removed again; those a killed launcher left behind
are found and removed by the next one."""

from __future__ import annotations

import os
from pathlib import Path

from reprotrain.adapters import git as git_adapter
from reprotrain.progress import progress

__all__ = ["WORKTREE_OWNER", "remove_stale_worktrees"]

WORKTREE_OWNER = "reprotrain rerun "  # the lock reason of a rerun's worktree, before its launcher's ID


def remove_stale_worktrees(root: Path, base: Path) -> None:
    """Remove the worktrees that reruns killed before they could clean up left under ``base``:
    locked by a rerun on this host whose process is gone, or no longer locked (kept, or made by
    an earlier version) and their directory gone. Anything else (the user's worktrees, a live
    rerun's, one kept with --keep, one of another host) is left alone."""
    from reprotrain.query import launcher_alive

    ours = os.path.realpath(base)
    for tree in git_adapter.worktrees(root):
        if os.path.dirname(os.path.realpath(tree.path)) != ours:
            continue
        if tree.locked is None:
            stale = not tree.path.exists()
        else:
            owner = tree.locked[len(WORKTREE_OWNER) :] if tree.locked.startswith(WORKTREE_OWNER) else ""
            stale = bool(owner) and launcher_alive(owner) is False
        if stale:
            progress(f"removing the worktree of a rerun that was killed: {tree.path}")
            git_adapter.remove_worktree(root, tree.path)
