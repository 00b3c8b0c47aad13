"""Files reprotrain writes for itself (job results, the spool, the gate memo, the verified-object
index): written whole or not at all, so a reader or a crash never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_json"]


def write_json(path: Path, value: Any, **dumps: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically: to a file of this process beside it, then
    renamed over it. ``dumps`` goes to json.dumps (indent, separators)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(value, **dumps), encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
