"""The memo of the last DVC check that passed, so an unchanged workspace is not checked again.

git keeps file stats in its index and DVC keeps them in its state database, so that a file whose
inode, size, mtime and ctime are unchanged is not hashed again. This memo goes one step further
for the gate: after DVC's status and the cache check found nothing wrong, it records the stats
of every file DVC read (outputs, stage dependencies, DVC's config files) and the path of every
pinned cache object. The next gate at the same commit, with a clean git tree, compares those
stats (and that every cache object is still there) without importing DVC at all; any difference
sends it through DVC's full check again.

ctime cannot be set back from user space, so a write since the memo always shows. Stats are
taken before DVC's check starts, and a file changed within ``SETTLE_NS`` of that start is not
memoised (a second write within the file system's timestamp granularity could hide).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reprotrain import __version__
from reprotrain.core.record import DataOutput
from reprotrain.fileio import write_json

__all__ = ["Watch", "forget", "load", "save", "stamp"]

VERSION = 3  # 3: the outputs DVC does not cache (a pipeline's metrics files) are remembered too
SETTLE_NS = 2_000_000_000
Signature = list[Any]  # [relative path, inode, size, mtime_ns, ctime_ns], or [path, None] if absent


def stamp(st: os.stat_result) -> list[int]:
    """What changes when a file's content can have changed: inode, size, mtime and ctime (ctime
    cannot be set back from user space)."""
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _stat(path: str) -> Signature:
    try:
        return [path, *stamp(os.stat(path))]
    except OSError:
        return [path, None]


def _walk(top: str) -> list[Signature]:
    """Stats of ``top`` (a file) or of every file below it (a directory), in a fixed order."""
    if not os.path.isdir(top):
        return [_stat(top)]
    found: list[Signature] = [[top, "dir"]]
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            return [[top, None]]
        for entry in entries:
            if entry.is_dir():
                found.append([entry.path, "dir"])
                stack.append(entry.path)
            else:
                try:
                    found.append([entry.path, *stamp(entry.stat())])
                except OSError:
                    found.append([entry.path, None])
    return found


def _key(commit: str, root: Path, relative_to: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k.startswith("DVC_") and k != "DVC_NO_ANALYTICS"}
    return {
        "version": VERSION,
        "reprotrain": __version__,
        "commit": commit,
        "root": os.fspath(root),
        "relative_to": os.fspath(relative_to),
        "env": env,
    }


class Watch:
    """What DVC is about to read, statted before its check starts."""

    def __init__(self, watched: list[str], configs: list[str]) -> None:
        self.started_ns = time.time_ns()
        self.watched = sorted(set(watched))
        self.configs = sorted(set(configs))
        self.cache_dir = ""  # DVC's local cache (the `files/md5` level) and the objects it must hold
        self.oids: list[str] = []
        self.signatures = [sig for path in self.watched for sig in _walk(path)]
        self.config_signatures = [_stat(p) for p in self.configs]

    def settled(self) -> bool:
        limit = self.started_ns - SETTLE_NS
        return all(sig[1] == "dir" or sig[1] is None or sig[4] < limit for sig in self.signatures) and all(
            sig[1] is None or sig[4] < limit for sig in self.config_signatures
        )


def save(
    memo: Path,
    commit: str,
    root: Path,
    relative_to: Path,
    watch: Watch,
    outputs: list[DataOutput],
    uncached: list[DataOutput],
) -> None:
    """Write the memo (atomically) if every watched file had settled before the check started.
    ``uncached``: the stages' outputs DVC keeps no cache of (`cache: false`): git pins them, and
    the gate asks git about them after the memo as after DVC's check."""
    if not commit or not watch.cache_dir or not memo.parent.is_dir() or not watch.settled():
        return  # (the state directory, which git ignores, is made by `run`, not here)
    oids = sorted(set(watch.oids))
    dirs = _object_dirs(watch.cache_dir, oids, watch.started_ns)
    if dirs is not None and not all(os.path.isfile(_object(watch.cache_dir, oid)) for oid in oids):
        return  # an object went since DVC's check (after its directory was statted)
    data = {
        "key": _key(commit, root, relative_to),
        "watched": watch.watched,
        "signatures": watch.signatures,
        "configs": watch.configs,
        "config_signatures": watch.config_signatures,
        "cache_dir": watch.cache_dir,
        "oids": oids,
        "object_dirs": dirs,
        "outputs": [asdict(o) for o in outputs],
        "uncached": [asdict(o) for o in uncached],
    }
    try:
        write_json(memo, data, separators=(",", ":"))
    except OSError:
        pass  # only an optimisation: the next gate runs DVC's check again


def _object(files: str, oid: str) -> str:
    return os.path.join(files, oid[:2], oid[2:])


def _dir_stat(files: str, prefix: str) -> list[Any]:
    try:
        st = os.stat(os.path.join(files, prefix))
    except OSError:
        return [prefix, None]
    return [prefix, st.st_ino, st.st_mtime_ns]


def _object_dirs(files: str, oids: list[str], started_ns: int) -> list[list[Any]] | None:
    """The stats of the cache directories holding ``oids``; None if one changed too recently to
    be trusted (then each object is checked on load)."""
    dirs = [_dir_stat(files, prefix) for prefix in sorted({oid[:2] for oid in oids})]
    if any(d[1] is None or d[2] >= started_ns - SETTLE_NS for d in dirs):
        return None
    return dirs


def forget(memo: Path) -> None:
    try:
        memo.unlink()
    except OSError:
        pass


def load(memo: Path, commit: str, root: Path, relative_to: Path) -> tuple[list[DataOutput], list[DataOutput]] | None:
    """The pinned and the uncached outputs if nothing DVC read has changed since the memo; None
    to check afresh."""
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        if not commit or data["key"] != _key(commit, root, relative_to):
            return None
        if [_stat(p) for p in data["configs"]] != data["config_signatures"]:
            return None
        if [sig for path in data["watched"] for sig in _walk(path)] != data["signatures"]:
            return None
        files = data["cache_dir"]
        dirs = data.get("object_dirs")
        if dirs is not None:
            # an object added or removed changes its directory's mtime: unchanged directories
            # vouch for every pinned object in them (a few hundred stats, not one per object)
            if [_dir_stat(files, prefix) for prefix, *_ in dirs] != dirs:
                return None
        elif not all(os.path.isfile(_object(files, oid)) for oid in data["oids"]):
            return None
        return [DataOutput(**o) for o in data["outputs"]], [DataOutput(**o) for o in data["uncached"]]
    except (KeyError, TypeError, ValueError):
        return None
