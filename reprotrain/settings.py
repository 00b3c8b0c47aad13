"""Project settings: `[tool.reprotrain]` in pyproject.toml, or a reprotrain.toml, at the project root."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from reprotrain.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["STATE_DIR", "Project", "Settings", "entrypoint_setting", "find_project"]

STATE_DIR = ".reprotrain"


class NoProjectError(UsageError):
    """No project here at all (as opposed to a project whose settings are wrong)."""


@dataclass(frozen=True)
class Settings:
    """What a project may set; see the reference in docs/ for each key."""

    config_dir: str = "conf"  # Hydra config directory, relative to the project root
    config_name: str = "config"  # primary config name
    entrypoint: str | None = None  # shell command with ${...} from the config, or module:function
    tracking_uri: str | None = None  # MLflow tracking URI when MLFLOW_TRACKING_URI is unset
    experiment_name: str | None = None  # MLflow experiment; default: the project's name
    metrics_files: tuple[str, ...] = ()  # JSON metric files besides metrics.json, in the output dir
    objective: str | None = None  # metric returned to Hydra sweepers
    # version_base passed to hydra.main; unset: "1.1" for Hydra 1.0-era configs (`# @package
    # _group_`), else "1.3"
    hydra_version_base: str | None = None
    inputs: tuple[str, ...] = ()  # data paths the training reads: each must be tracked by DVC
    has_data: bool = True  # false declares a project without DVC-tracked data
    require_pushed: bool = False  # refuse unless the commit and every data object are on the remotes
    timeout: float | None = None  # seconds before training is stopped and the run marked FAILED
    verify_files: tuple[str, ...] = ()  # output files (globs) whose hashes `rerun --verify` compares
    hash_data: bool = False  # the gate hashes every DVC-tracked file instead of trusting DVC's stamps
    schemas: bool = True  # the gate reads the schemas of the DVC-tracked tables (each version once)
    smoke_overrides: tuple[str, ...] = ()  # Hydra overrides that make a job short (`run --smoke`)
    smoke_multirun: bool = False  # every `run -m` starts with a smoke run (`--no-smoke` skips it)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], source: str) -> Settings:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for raw_key, value in table.items():
            key = raw_key.replace("-", "_")
            if key not in known:
                raise UsageError(
                    f"unknown setting {raw_key!r} in {source}",
                    hint=f"use one of: {', '.join(sorted(known))}",
                )
            values[key] = _check(key, value, source)
        return cls(**values)


_LISTS = {"metrics_files", "inputs", "verify_files"}
_IN_OUTPUT_DIR = {"metrics_files", "verify_files"}  # read from the job's output directory only
_BOOLS = {"has_data", "hash_data", "require_pushed", "schemas", "smoke_multirun"}


def _check(key: str, value: Any, source: str) -> Any:
    if key == "smoke_overrides":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise UsageError(
                f"setting smoke_overrides in {source} must be a list of Hydra overrides, got {value!r}",
                hint='e.g. smoke_overrides = ["trainer.max_epochs=1", "data.limit=200"]',
            )
        return tuple(v.strip() for v in value)
    if key in _LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise UsageError(f"setting {key} in {source} must be a list of paths, got {value!r}")
        paths = tuple(v.strip().rstrip("/") for v in value)
        if key in _IN_OUTPUT_DIR:
            outside = [v for v in paths if v.startswith("/") or ".." in v.split("/")]
            if outside:
                raise UsageError(
                    f"setting {key} in {source} names files outside the job's output directory: {outside[0]!r}",
                    hint=f"give paths relative to the output directory, without '..' "
                    f'(e.g. {key} = ["eval/metrics.json"])',
                )
        return paths
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise UsageError(f"setting {key} in {source} must be true or false, got {value!r}")
        return value
    if key == "timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise UsageError(f"setting timeout in {source} must be a positive number of seconds, got {value!r}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"setting {key} in {source} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Project:
    """A project on disk: its root directory, where its settings came from, and the settings."""

    root: Path
    name: str
    settings: Settings = field(default_factory=Settings)
    settings_file: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def config_dir(self) -> Path:
        return (self.root / self.settings.config_dir).resolve()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror}", hint=f"check the file's permissions: ls -l {path}"
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{path} is not valid UTF-8 (byte {raw[exc.start]:#04x} at line {line})",
            hint=f"save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path}",
        ) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{path} is not valid TOML: {exc}", hint="correct the TOML syntax there (https://toml.io)"
        ) from exc


def _table(value: Any, name: str, path: Path) -> Mapping[str, Any]:
    """``value`` (the ``[name]`` of a TOML file, default empty) as a table, or a usage error."""
    if not isinstance(value, Mapping):
        raise UsageError(
            f"[{name}] in {path} must be a table, not {value!r}",
            hint=f"replace the line `{name.rsplit('.', 1)[-1]} = ...` by a [{name}] table of key = value lines",
        )
    return value


def _settings_at(directory: Path) -> tuple[Path, Mapping[str, Any], str | None] | None:
    own = directory / "reprotrain.toml"
    if own.is_file():
        return own, _read_toml(own), None
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject)
        table = _table(data.get("tool", {}), "tool", pyproject).get("reprotrain")
        if table is not None:
            table = _table(table, "tool.reprotrain", pyproject)
            name = _table(data.get("project", {}), "project", pyproject).get("name")
            return pyproject, table, name if isinstance(name, str) else None
    return None


def _nearest(start: Path | None) -> tuple[Path, tuple[Path, Mapping[str, Any], str | None] | None]:
    """The directory of the project containing ``start`` and its settings (None: a git
    repository's root without settings); NoProjectError if there is neither."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        found = _settings_at(directory)
        if found is not None or (directory / ".git").exists():
            return directory, found
    raise NoProjectError(
        f"no reprotrain project at {here}: no [tool.reprotrain] in a pyproject.toml and no git repository",
        hint="cd into your project, or add a [tool.reprotrain] table to its pyproject.toml",
    )


def find_project(start: Path | None = None) -> Project:
    """The project containing ``start``: the nearest directory with reprotrain settings, else the
    git repository's root (every setting then takes its default)."""
    directory, found = _nearest(start)
    if found is None:
        return Project(directory, default_name(directory))
    path, table, name = found
    settings = Settings.from_mapping(table, str(path))
    return Project(directory, name or default_name(directory), settings, path)


def entrypoint_setting(start: Path | None = None) -> str | None:
    """The ``entrypoint`` setting of the project containing ``start``, found as find_project finds
    it but without naming the project (which may ask git); None when there is none or the
    settings cannot be read (the command that needs them says why)."""
    try:
        found = _nearest(start)[1]
    except (UsageError, OSError):
        return None
    value = found[1].get("entrypoint") if found is not None else None
    return value if isinstance(value, str) else None


def default_name(directory: Path) -> str:
    """The name of a project that declares none: at the top of a git repository, the repository's
    name in the URL of remote ``origin``, so that every clone, wherever it lives, logs into the
    same experiment; else (no such remote, or settings in a subdirectory) the directory's name."""
    if (directory / ".git").exists():
        from reprotrain.adapters.git import origin_url, repository_name

        url = origin_url(directory)
        name = repository_name(url) if url else None
        if name:
            return name
    return directory.name


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
