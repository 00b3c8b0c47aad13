"""The hook reprotrain puts into the training code's process (code_site/sitecustomize.py), seen
from reprotrain: the environment that arms it, the same module loaded in-process for callables,
and the runs it noted."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "HOOK_DIR",
    "Notes",
    "first_python",
    "hook_environment",
    "in_process",
    "pythons",
    "read_notes",
    "same_store",
    "store_key",
]

HOOK_DIR = Path(__file__).with_name("code_site")
_MODULE = "reprotrain_code_hook"


def hook_environment(run_id: str, tracking_uri: str, experiment_id: str, links: Path) -> dict[str, str]:
    """Variables for the code's process: the hook's first on PYTHONPATH (so a command's Python,
    and every Python it starts, imports it), and what it needs to know."""
    current = os.environ.get("PYTHONPATH")
    return {
        "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), current]) if current else str(HOOK_DIR),
        "REPROTRAIN_TRACKING_URI": tracking_uri,
        "REPROTRAIN_EXPERIMENT_ID": experiment_id,
        "REPROTRAIN_LINKS": str(links),
    }


def in_process() -> ModuleType:
    """The hook module itself, for a callable entrypoint that runs in this process."""
    module = sys.modules.get(_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(_MODULE, HOOK_DIR / "sitecustomize.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module
        spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Notes:
    """What the hook noted during a job: the runs the code created (run ID, store, experiment,
    whether the code named it), and whether the hook was in any of the code's processes."""

    runs: list[dict[str, Any]]
    hook_installed: bool


def read_notes(path: Path) -> Notes:
    runs, installed = in_process().read_notes(str(path))
    return Notes(list(runs), bool(installed))


def first_python(path: Path) -> dict[str, Any] | None:
    """The Python that first started in the job's processes (`executable`, `prefix`), if noted."""
    found = in_process().first_python(str(path))
    return dict(found) if found else None


def pythons(path: Path) -> list[dict[str, Any]]:
    """Every Python that started in the job's processes (`python`, `prefix`), in order."""
    return [dict(found) for found in in_process().pythons(str(path))]


def store_key(uri: str) -> str:
    return str(in_process().store_key(uri))


def same_store(a: str, b: str) -> bool:
    return store_key(a) == store_key(b)
