"""reprotrain's exceptions: one root, one class per exit code.

    ReprotrainError            exit 1: the tool could not do its job (store unreachable, run not found)
    ├── UsageError             exit 2: bad command line, bad settings, bad config or override
    ├── NotPinnedError         exit 3: code or data not pinned; carries every problem found
    └── NotReproducedError     exit 4: `rerun --verify` found a difference

Every message names what is wrong, the value at fault, and, where one exists, the command that
fixes it (``hint``). Adapters translate third-party exceptions into these with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reprotrain.core.pin import Problem

__all__ = ["NotPinnedError", "NotReproducedError", "ReprotrainError", "UsageError"]


class ReprotrainError(Exception):
    """Root of every error reprotrain raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (fix: {self.hint})"
        return self.message


class UsageError(ReprotrainError):
    """The command line, the settings or the config is wrong."""

    exit_code = 2


class NotPinnedError(ReprotrainError):
    """Code or data is not pinned, so the run would not be reproducible."""

    exit_code = 3

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        if self.problems and all(p.kind == "schema-change" for p in self.problems):
            super().__init__(
                f"refusing to run: {count} input{'s' if count != 1 else ''} differ{'s' if count == 1 else ''} "
                "from the schema contract",
                hint="accept the new schema (reprotrain schema accept PATH, then commit it), "
                "or pass --accept-schema-change to run with it recorded",
            )
            return
        super().__init__(
            "refusing to run: code or data not pinned, so the run would not be reproducible "
            f"({count} problem{'s' if count != 1 else ''})",
            hint="fix each problem above, or pass --allow-unpinned to record a run marked unpinned",
        )


class NotReproducedError(ReprotrainError):
    """A verified rerun did not reproduce the original result."""

    exit_code = 4
