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

__all__ = ["Entry", "walk_tree", "write_json"]


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
    file inside the tree: ``source`` is that file), ``link`` (a link out of the tree, to a
    directory, or dangling: never followed; ``target`` is what it points to) or ``special`` (a FIFO,
    socket or device: never opened)."""

    rel: str
    kind: str
    source: Path | None = None
    target: str = ""


def walk_tree(root: Path) -> Iterator[Entry]:
    """Every entry under ``root``, sorted (directories descended, links to directories not)."""
    found: list[Entry] = []
    if root.is_dir():
        _walk(root, root, os.path.realpath(root), found)
    return iter(sorted(found, key=lambda e: e.rel))


def _walk(directory: Path, root: Path, top: str, found: list[Entry]) -> None:
    try:
        items = list(os.scandir(directory))
    except OSError:
        return
    for item in items:
        path = Path(item.path)
        rel = path.relative_to(root).as_posix()
        if item.is_symlink():
            found.append(_link(path, rel, top))
        elif item.is_dir(follow_symlinks=False):
            _walk(path, root, top, found)
        elif item.is_file(follow_symlinks=False):
            found.append(Entry(rel, "file", path))
        else:
            found.append(Entry(rel, "special"))


def _link(path: Path, rel: str, top: str) -> Entry:
    target = os.readlink(path)
    real = os.path.realpath(path)
    inside = real.startswith(top + os.sep)
    try:
        regular = stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        regular = False
    if inside and regular:
        return Entry(rel, "file", Path(real), target)
    return Entry(rel, "link", None, target)
