"""Progress lines for long steps: shown on a terminal, silent when stderr is a pipe or a file."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["progress", "tree_size"]


def progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"reprotrain: {message}", file=sys.stderr, flush=True)


def tree_size(*directories: Path) -> tuple[int, int]:
    """(files, bytes) under the directories."""
    files = size = 0
    for directory in directories:
        if directory.is_dir():
            for path in directory.rglob("*"):
                if path.is_file():
                    files += 1
                    size += path.stat().st_size
    return files, size
