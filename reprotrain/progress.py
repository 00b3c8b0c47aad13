"""Progress lines for long steps: shown on a terminal, silent when stderr is a pipe or a file."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["progress", "tree_size", "wants_color"]


def progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"reprotrain: {message}", file=sys.stderr, flush=True)


def wants_color() -> bool:
    """Colour on standard output when it is a terminal, unless NO_COLOR is set (no-color.org) or TERM is dumb."""
    import os

    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def tree_size(*directories: Path) -> tuple[int, int]:
    """(files, bytes) that an upload of the directories sends (links out of them and special
    files are not sent)."""
    from reprotrain.fileio import walk_tree

    files = size = 0
    for directory in directories:
        for entry in walk_tree(directory):
            if entry.source is not None:
                try:
                    size += entry.source.stat().st_size
                except OSError:
                    continue
                files += 1
    return files, size
