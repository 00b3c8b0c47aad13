"""Files reprotrain writes for itself (job results, the spool, the gate memo, the verified-object
index): written whole or not at all, so a reader or a crash never sees half a file; and the one
walk over a directory reprotrain uploads, which never follows a link out of it."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NEVER_UPLOADED", "Entry", "user_cache", "walk_tree", "write_json"]

# directories never uploaded from an output dir, wherever they are in it: a repository, a DVC
# cache and config, reprotrain's own state
NEVER_UPLOADED = frozenset({".git", ".dvc", ".reprotrain"})


def user_cache(name: str, variable: str | None = None) -> Path:
    """reprotrain's cache directory ``name`` outside any project: ``$variable`` when set, else
    `$XDG_CACHE_HOME/reprotrain/NAME` (default `~/.cache/reprotrain/NAME`)."""
    given = os.environ.get(variable) if variable else None
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reprotrain" / name


def write_json(path: Path, value: Any, mode: int = 0o644, **dumps: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically: to a file of this process beside it (created
    with ``mode``), then renamed over it. ``dumps`` goes to json.dumps (indent, separators)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(value, **dumps))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Entry:
    """One entry of an uploaded tree. ``kind`` is ``file`` (a regular file, or a link to a regular
    file inside the tree: ``source`` is that file, ``inode`` the (device, inode) the walk saw),
    ``link`` (a link out of the tree, to a directory, or dangling: never followed; ``target`` is
    what it points to), ``special`` (a FIFO, socket or device: never opened) or ``unreadable`` (a
    directory or link that could not be read)."""

    rel: str
    kind: str
    source: Path | None = None
    target: str = ""
    inode: tuple[int, int] = (0, 0)


def walk_tree(root: Path, prune: frozenset[str] = frozenset(), pruned: list[str] | None = None) -> Iterator[Entry]:
    """Every entry under ``root``, sorted (directories descended, links to directories not). A
    ``root`` that is itself a link is not walked: it is one ``link`` entry, ``.``. Directories
    named in ``prune`` are neither listed nor descended; their paths are added to ``pruned``."""
    if root.is_symlink():
        return iter([Entry(".", "link", target=_readlink(root))])
    if not root.is_dir():
        return iter([])
    top = os.path.realpath(root)
    found: list[Entry] = []
    pending = [root]
    while pending:  # a stack, not recursion: a tree a thousand directories deep is walked too
        directory = pending.pop()
        try:
            items = list(os.scandir(directory))
        except OSError:
            found.append(Entry(directory.relative_to(root).as_posix(), "unreadable"))
            continue
        for item in items:
            path = Path(item.path)
            rel = path.relative_to(root).as_posix()
            try:
                if item.is_symlink():
                    found.append(_link(path, rel, top, prune))
                elif item.is_dir(follow_symlinks=False):
                    if item.name in prune:
                        if pruned is not None:
                            pruned.append(rel)
                        continue
                    pending.append(path)
                elif item.is_file(follow_symlinks=False):
                    info = item.stat(follow_symlinks=False)
                    found.append(Entry(rel, "file", path, inode=(info.st_dev, info.st_ino)))
                else:
                    found.append(Entry(rel, "special"))
            except OSError:  # removed or changed while walked
                found.append(Entry(rel, "unreadable"))
    return iter(sorted(found, key=lambda e: e.rel))


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _link(path: Path, rel: str, top: str, prune: frozenset[str] = frozenset()) -> Entry:
    target = os.readlink(path)
    real = os.path.realpath(path)
    inside = real.startswith(top + os.sep)
    if inside and prune and prune.intersection(Path(os.path.relpath(real, top)).parts):
        inside = False  # a link into a directory the walk leaves out is not followed either
    try:
        info = os.stat(real, follow_symlinks=False)
    except OSError:
        return Entry(rel, "link", None, target)
    if inside and stat.S_ISREG(info.st_mode):
        return Entry(rel, "file", Path(real), target, (info.st_dev, info.st_ino))
    return Entry(rel, "link", None, target)
