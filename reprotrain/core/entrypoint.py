"""What kind of entrypoint a setting names: a shell command, or a Python callable."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Entrypoint", "hook_blocked", "parse_entrypoint"]

_MODULE_CALLABLE = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|[^\s:]+\.py):(?P<function>[A-Za-z_][\w.]*)$")
_PYTHONPATH_SET = re.compile(r"(?:^|[\s;&|(])PYTHONPATH=(\S*)")
_PYTHON_FLAGS = re.compile(r"(?:^|[\s;&|(/])python[\d.]*((?:\s+-[A-Za-z]+)+)")  # the flags before the script


@dataclass(frozen=True)
class Entrypoint:
    text: str
    module: str | None = None  # set for a callable: dotted module or a .py path
    function: str | None = None

    @property
    def is_callable(self) -> bool:
        return self.module is not None

    @property
    def job_name(self) -> str:
        """A short name for Hydra's job (log file name): the script or function name."""
        if self.function:
            return self.function.rsplit(".", 1)[-1]
        for word in self.text.split():
            if word.endswith(".py") or "/" in word:
                return re.sub(r"\W", "_", word.rsplit("/", 1)[-1].removesuffix(".py")) or "train"
        return "train"


def parse_entrypoint(text: str) -> Entrypoint:
    match = _MODULE_CALLABLE.match(text.strip())
    if match:
        return Entrypoint(text.strip(), match.group("module"), match.group("function"))
    return Entrypoint(text.strip())


def hook_blocked(command: str) -> str | None:
    """Why a shell command's Python would not import reprotrain's hook from PYTHONPATH, if it
    would not: it sets PYTHONPATH without keeping the value it was given, or runs Python with a
    flag that ignores PYTHONPATH (or the site module). None when nothing says so."""
    if any("$PYTHONPATH" not in v and "${PYTHONPATH" not in v for v in _PYTHONPATH_SET.findall(command)):
        return "it sets PYTHONPATH without $PYTHONPATH"
    for flags in _PYTHON_FLAGS.findall(command):
        letters = "".join(flag.lstrip("-") for flag in flags.split())
        found = [f"-{c}" for c in "IES" if c in letters]
        if found:
            return f"it runs Python with {'/'.join(found)}, which ignores PYTHONPATH"
    return None
