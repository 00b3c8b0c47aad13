"""What kind of entrypoint a setting names: a shell command, or a Python callable."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Entrypoint", "parse_entrypoint", "replaces_pythonpath"]

_MODULE_CALLABLE = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|[^\s:]+\.py):(?P<function>[A-Za-z_][\w.]*)$")
_PYTHONPATH_SET = re.compile(r"(?:^|[\s;&|(])PYTHONPATH=(\S*)")


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


def replaces_pythonpath(command: str) -> bool:
    """Whether a shell command sets PYTHONPATH without keeping the value it was given
    (`PYTHONPATH=src python train.py`, not `PYTHONPATH=src:$PYTHONPATH ...`)."""
    return any("$PYTHONPATH" not in v and "${PYTHONPATH" not in v for v in _PYTHONPATH_SET.findall(command))
