"""DVC, through its Python API: what the `.dvc` files and `dvc.lock` pin, and whether the
workspace holds exactly that (DVC's stored hashes are reused: unchanged data is not re-hashed)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reprotrain.core.pin import Problem, dvc_status_problems
from reprotrain.core.record import DataOutput
from reprotrain.errors import ReprotrainError

__all__ = ["DataSnapshot", "snapshot"]


@dataclass(frozen=True)
class DataSnapshot:
    is_dvc_repo: bool
    outputs: list[DataOutput] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def snapshot(path: Path, relative_to: Path) -> DataSnapshot:
    """Pinned outputs (path relative to ``relative_to``) and their problems; empty outside DVC."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(os.fspath(path))
    except NotDvcRepoError:
        return DataSnapshot(False)
    except DvcException as exc:
        raise ReprotrainError(f"cannot open the DVC repository at {path}: {exc}") from exc
    try:
        with repo:
            outputs = []
            lock_stages = set()
            for out in repo.index.outs:
                if not out.use_cache or out.hash_info is None or not out.hash_info.value:
                    continue
                stage = out.stage
                if stage.is_data_source:
                    source = stage.relpath
                else:
                    source = f"dvc.lock:{stage.name}"
                    lock_stages.add(stage.addressing)
                rel = os.path.relpath(out.fs_path, relative_to)
                outputs.append(DataOutput(rel, out.hash_info.value, out.meta.size, out.meta.nfiles, source))
            status = repo.status()
    except DvcException as exc:
        raise ReprotrainError(f"DVC could not read the pinned data in {path}: {exc}") from exc
    outputs.sort(key=lambda o: o.path)
    return DataSnapshot(True, outputs, dvc_status_problems(status, lock_stages))
