"""DVC's cache read by hash: the file a run recorded, whatever the workspace and the branch hold
now. An object the local cache lacks is fetched from the DVC remote (DVC's own transfer), and
every object is hashed before it is handed out: DVC trusts any read-only cache file, but a
process running as root writes through a hard-linked one."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO

from reprotrain.errors import ReprotrainError

__all__ = ["cached_file", "directory_files", "open_object"]

_CHUNK = 1 << 20


def cached_file(root: Path, digest: str, member: str | None = None) -> Path:
    """The verified cache file of the file hashed ``digest``, or of ``member`` (a path with `/`
    inside it) of the directory hashed ``digest`` (`<md5>.dir`)."""
    with _repo(root) as repo:
        oid = _member_oid(repo, digest, member) if member is not None else digest
        path, hash_name = _object(repo, oid)
    with open(path, "rb") as fobj:
        _verify(fobj, oid, hash_name, path)
    return path


def open_object(root: Path, digest: str, member: str | None = None) -> BinaryIO:
    """The cache file of :func:`cached_file`, opened for reading, verified through the very file
    object returned (nothing can change it between the check and the read)."""
    with _repo(root) as repo:
        oid = _member_oid(repo, digest, member) if member is not None else digest
        path, hash_name = _object(repo, oid)
    fobj = open(path, "rb")  # noqa: SIM115 - handed to the caller
    try:
        _verify(fobj, oid, hash_name, path)
        fobj.seek(0)
    except BaseException:
        fobj.close()
        raise
    return fobj


def directory_files(root: Path, digest: str) -> list[str]:
    """Every file of the directory hashed ``digest``, as `/`-separated paths inside it, sorted."""
    with _repo(root) as repo:
        return sorted("/".join(key) for key, _ in _manifest(repo, digest))


def _repo(root: Path) -> Any:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from reprotrain.adapters.dvc import quiet_dvc

    quiet_dvc()
    try:
        return Repo(os.fspath(root))
    except DvcException as exc:
        raise ReprotrainError(
            f"cannot open the DVC repository at {root}: {exc}", hint="run it from the project that made the run"
        ) from exc


def _manifest(repo: Any, digest: str) -> list[tuple[tuple[str, ...], str]]:
    """(path parts, md5) of every file in the `.dir` manifest ``digest``, fetched when missing."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    for attempt in range(2):
        for odb, name in ((repo.cache.local, "md5"), (repo.cache.legacy, "md5-dos2unix")):
            path = Path(odb.oid_to_path(digest))
            if not path.is_file():
                continue
            with open(path, "rb") as fobj:  # a `.dir` hash is the md5 of its manifest's bytes
                _verify(fobj, digest.removesuffix(".dir"), "md5", path)
            try:
                tree = Tree.load(odb, HashInfo(name, digest))
            except (FileNotFoundError, ValueError, OSError):
                continue
            return [(key, hi.value) for key, _meta, hi in tree if hi and hi.value]
        if attempt == 0:
            _fetch(repo, digest)
    raise _missing(digest)


def _member_oid(repo: Any, digest: str, member: str) -> str:
    if not digest.endswith(".dir"):
        raise ReprotrainError(f"the output hashed {digest} is a file, it has no {member!r} inside it")
    wanted = tuple(member.split("/"))
    for key, oid in _manifest(repo, digest):
        if key == wanted:
            return oid
    raise ReprotrainError(
        f"no file {member!r} in the directory hashed {digest} as the run recorded it",
        hint="Run.files(path) lists the files the directory held",
    )


def _object(repo: Any, oid: str) -> tuple[Path, str]:
    """The cache file of ``oid`` and the hash DVC gave it, fetched from the remote when missing."""
    for attempt in range(2):
        for odb in (repo.cache.local, repo.cache.legacy):
            path = Path(odb.oid_to_path(oid))
            if path.is_file():
                return path, str(odb.hash_name)
        if attempt == 0:
            _fetch(repo, oid)
    raise _missing(oid)


def _fetch(repo: Any, oid: str) -> None:
    """DVC's transfer of one object (a `.dir`: with its files) from the default remote."""
    from dvc.exceptions import DvcException
    from dvc_data.hashfile.hash_info import HashInfo

    from reprotrain.adapters.dvc import first_line

    try:
        repo.cloud.pull([HashInfo("md5", oid), HashInfo("md5-dos2unix", oid)])
    except DvcException as exc:
        raise ReprotrainError(
            f"the DVC object {oid} is not in the DVC cache and fetching it from the DVC remote failed: "
            f"{first_line(exc)}",
            hint="dvc push from a clone that has it, or check the DVC remote (dvc remote list)",
        ) from exc


def _missing(oid: str) -> ReprotrainError:
    return ReprotrainError(
        f"the DVC object {oid} is in neither the DVC cache nor the DVC remote",
        hint="dvc push from a clone that has it, or point the DVC remote at the right store",
    )


def _verify(fobj: io.BufferedIOBase | BinaryIO, oid: str, hash_name: str, path: Path) -> None:
    from dvc_data.hashfile.hash import fobj_md5

    actual = fobj_md5(fobj, chunk_size=_CHUNK, name=hash_name)  # type: ignore[arg-type]
    if actual != oid:
        raise ReprotrainError(
            f"the DVC cache file {path} is damaged: its content hashes to {actual}, not {oid}",
            hint=f"rm -f {path} && dvc fetch (or dvc push from a clone with the right data)",
        )
