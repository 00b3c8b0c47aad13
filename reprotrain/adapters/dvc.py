"""DVC, through its Python API: what the `.dvc` files and `dvc.lock` pin, whether the workspace
holds exactly that, and whether every pinned object is in the cache (and, if asked, the remote).
DVC's stored hashes are reused, so unchanged data is not re-hashed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprotrain.core.pin import Problem, dvc_status_problems, missing_object_problems
from reprotrain.core.record import DataOutput
from reprotrain.errors import ReprotrainError

__all__ = ["DataSnapshot", "snapshot"]


@dataclass(frozen=True)
class DataSnapshot:
    is_dvc_repo: bool
    outputs: list[DataOutput] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def snapshot(path: Path, relative_to: Path, check_remote: bool = False) -> DataSnapshot:
    """Pinned outputs (paths relative to ``relative_to``) and every problem with them."""
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
            pinned: list[tuple[DataOutput, Any]] = []
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
                pinned.append((DataOutput(rel, out.hash_info.value, out.meta.size, out.meta.nfiles, source), out))
            problems = dvc_status_problems(repo.status(), lock_stages)
            sources = {o.path: o.source for o, _ in pinned}
            oids, missing_dirs = _object_ids(repo, pinned)
            cache_missing = _count_missing(repo.cache.local, oids)
            for p in missing_dirs:
                cache_missing[p] = cache_missing.get(p, 0) + 1
            problems.extend(missing_object_problems(cache_missing, sources, "cache"))
            if check_remote and pinned:
                problems.extend(_remote_problems(repo, oids, sources))
    except DvcException as exc:
        raise ReprotrainError(f"DVC could not read the pinned data in {path}: {exc}") from exc
    outputs = sorted((o for o, _ in pinned), key=lambda o: o.path)
    return DataSnapshot(True, outputs, problems)


def _object_ids(repo: Any, pinned: list[tuple[DataOutput, Any]]) -> tuple[dict[str, list[str]], list[str]]:
    """Every object id behind each output: the file's, or a directory's manifest and entries."""
    from dvc_data.hashfile.tree import Tree

    oids: dict[str, list[str]] = {}
    missing_manifest = []
    for data, out in pinned:
        ids = [out.hash_info.value]
        if out.hash_info.isdir:
            try:
                tree = Tree.load(repo.cache.local, out.hash_info)
            except (FileNotFoundError, ValueError, OSError):
                missing_manifest.append(data.path)  # its entries are unknown: counted as one
                oids[data.path] = []
                continue
            ids.extend(entry.value for _key, (_meta, entry) in tree.iteritems() if entry and entry.value)
        oids[data.path] = ids
    return oids, missing_manifest


def _count_missing(odb: Any, oids: dict[str, list[str]]) -> dict[str, int]:
    """Ask the object database once for every id; count what is absent, per output."""
    wanted = {oid for ids in oids.values() for oid in ids}
    present = set(odb.oids_exist(list(wanted))) if wanted else set()
    counts = {}
    for path, ids in oids.items():
        absent = sum(1 for oid in set(ids) if oid not in present)
        if absent:
            counts[path] = absent
    return counts


def _remote_problems(repo: Any, oids: dict[str, list[str]], sources: dict[str, str]) -> list[Problem]:
    """Check each object id on the default remote (DVC's own cloud status misses deleted ones)."""
    from dvc.exceptions import DvcException

    try:
        remote = repo.cloud.get_remote_odb(None, "reprotrain check")
    except DvcException as exc:
        return [
            Problem(
                "no-dvc-remote",
                "",
                f"cannot check the DVC remote: {exc}",
                "dvc remote add -d <name> <url> && git commit .dvc/config",
            )
        ]
    try:
        missing = _count_missing(remote, oids)
    except Exception as exc:  # network and credential errors come from many fsspec backends
        return [Problem("dvc-remote-unreachable", "", f"the DVC remote cannot be read: {exc}", "check the remote")]
    return missing_object_problems(missing, sources, "remote")


def cache_dir(path: Path) -> Path:
    """The local DVC cache directory of the repository at ``path`` (the one holding `files/`)."""
    from dvc.repo import Repo

    with Repo(os.fspath(path)) as repo:
        return Path(repo.cache.local.path).parents[1]


def restore(worktree: Path, shared_cache: Path, local_config: Path | None) -> list[str]:
    """Check out every DVC output of ``worktree`` from the shared cache, pulling from the DVC remote
    only what the cache lacks, then verify the hash of every restored file. Returns what was
    fetched from the remote."""
    from dvc.exceptions import CheckoutError, DvcException
    from dvc.repo import Repo

    dvc_dir = worktree / ".dvc"
    if local_config is not None and local_config.is_file():  # remotes' credentials live here
        (dvc_dir / "config.local").write_bytes(local_config.read_bytes())
    try:
        with Repo(os.fspath(worktree)) as repo, repo.config.edit("local") as conf:
            conf["cache"]["dir"] = os.fspath(shared_cache)
    except DvcException as exc:
        raise ReprotrainError(f"cannot configure DVC in the worktree {worktree}: {exc}") from exc
    fetched: list[str] = []
    with Repo(os.fspath(worktree)) as repo:
        try:
            repo.checkout(force=True)
        except CheckoutError as exc:
            missing = sorted(os.path.relpath(p, worktree) for p in exc.target_infos) or ["(some outputs)"]
            try:
                repo.fetch()
                repo.checkout(force=True)
            except DvcException as fetch_exc:
                raise ReprotrainError(
                    f"the data {', '.join(missing)} is in neither the DVC cache nor the DVC remote: {fetch_exc}",
                    hint="dvc push from a clone that has it, or point the DVC remote at the right store",
                ) from fetch_exc
            fetched = missing
        except DvcException as exc:
            raise ReprotrainError(f"restoring the data in {worktree} failed: {exc}") from exc
        _verify_restored(repo, worktree)
    return fetched


def _verify_restored(repo: Any, worktree: Path) -> None:
    """Hash every restored file ourselves: a corrupted cache object (possible with link cache
    types) would otherwise pass, since DVC records the expected hash for what it checks out."""
    from dvc_data.hashfile.tree import Tree

    bad = []
    for out in repo.index.outs:
        if not out.use_cache or out.hash_info is None or not out.hash_info.value:
            continue
        base = Path(out.fs_path)
        if out.hash_info.isdir:
            tree = Tree.load(repo.cache.local, out.hash_info)
            entries = [(base.joinpath(*key), hi.value) for key, (_meta, hi) in tree.iteritems() if hi]
        else:
            entries = [(base, out.hash_info.value)]
        for file, expected in entries:
            if not file.is_file() or _md5(file) != expected:
                bad.append(os.path.relpath(file, worktree))
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ReprotrainError(
            f"restored data does not match its pinned hash (corrupted DVC cache object?): {shown}",
            hint="dvc cache dir; remove the bad objects from the cache and dvc pull them again",
        )


def _md5(path: Path) -> str:
    import hashlib

    digest = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dir_manifests(path: Path, hashes: list[str]) -> dict[str, dict[str, str] | None]:
    """Entries (relative path -> md5) of each `.dir` hash found in the local cache; None if absent."""
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    found: dict[str, dict[str, str] | None] = {}
    try:
        repo = Repo(os.fspath(path))
    except Exception:  # not a DVC repo here: nothing to list
        return dict.fromkeys(hashes)
    with repo:
        for value in hashes:
            try:
                tree = Tree.load(repo.cache.local, HashInfo("md5", value))
            except (FileNotFoundError, ValueError, OSError):
                found[value] = None
                continue
            found[value] = {"/".join(key): hi.value for key, (_meta, hi) in tree.iteritems() if hi}
    return found
