"""The run record: what a run pins and how it is written into tags and `reprotrain/record.json`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reprotrain.core.config import canonical_json, config_digest, seeds
from reprotrain.core.pin import Problem

__all__ = [
    "MAX_TAG",
    "SCHEMA",
    "DataOutput",
    "GitInfo",
    "RunRecord",
    "data_digest",
    "parse_metrics",
    "run_tags",
    "short_digest_tags",
    "strip_credentials",
    "strip_urls",
]

SCHEMA = 1
MAX_TAG = 5000  # SQLite stores cut tags at 8000; stay well below, the record holds the full value
_METRIC_KEY_BAD = re.compile(r"[^\w\-. /]")


@dataclass(frozen=True)
class DataOutput:
    """One DVC-tracked output as pinned by its `.dvc` file or `dvc.lock` stage."""

    path: str
    hash: str
    size: int | None
    nfiles: int | None
    source: str


@dataclass(frozen=True)
class GitInfo:
    commit: str
    branch: str
    remote: str
    root: str = ""  # where the repository was: packages installed from inside it are the commit's


PINNED_BY_GIT = " (cache: false, in git)"  # ends the source of an output that git, not DVC, keeps


def data_digest(outputs: Sequence[DataOutput]) -> str:
    """One sha256 over every output DVC's cache pins (path and hash), independent of order. What
    git keeps is pinned by the commit, and left out: runs recorded before such outputs were
    listed keep their digest."""
    lines = sorted(f"{o.path}\t{o.hash}" for o in outputs if not o.source.endswith(PINNED_BY_GIT))
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


_URL = re.compile(r"[a-zA-Z][\w+.-]*://[^\s'\"<>]+")


def strip_urls(text: str) -> str:
    """``text`` with the credentials removed from every URL in it (error messages name stores)."""
    return _URL.sub(lambda m: strip_credentials(m.group(0)), text)


def strip_credentials(url: str) -> str:
    """A remote URL without user, password or token (`https://tok@host/x` -> `https://host/x`)."""
    if "://" not in url:
        return url  # scp-like `git@host:path`: the user is not a secret
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass
class RunRecord:
    """Everything that identifies a run; serialised as `reprotrain/record.json`."""

    run_id: str
    pinned: bool
    problems: list[Problem]
    git: GitInfo
    data: list[DataOutput]
    config_name: str
    config_dir: str
    overrides: list[str]
    hydra_overrides: list[str]
    choices: dict[str, Any]
    resolved: dict[str, Any]
    command: dict[str, Any]
    environment: dict[str, Any]
    reprotrain_version: str
    job: dict[str, Any] = field(default_factory=dict)
    volatile: list[str] = field(default_factory=list)  # keys from the time or the output dir
    env_digests: dict[str, str] = field(default_factory=dict)  # masked values from the environment
    outputs: list[DataOutput] = field(default_factory=list)  # what a pipeline's stages made (their dvc.lock)
    pipeline: dict[str, Any] = field(default_factory=dict)  # a `dvc repro` entrypoint: targets, stages run
    schemas: dict[str, Any] = field(default_factory=dict)  # the tables among `data`, by path (core/schema)
    schema_changes: list[Problem] = field(default_factory=list)  # differences from the contract, accepted

    @property
    def data_digest(self) -> str:
        return data_digest(self.data)

    @property
    def config_digest(self) -> str:
        return config_digest(self.resolved, self.volatile)

    def to_dict(self) -> dict[str, Any]:
        return (
            {
                "schema": SCHEMA,
                "run_id": self.run_id,
                "pinned": self.pinned,
                "problems": [p.to_dict() for p in self.problems],
                "git": asdict(self.git),
                "data": [asdict(o) for o in self.data],
                "data_digest": self.data_digest,
                "config": {
                    "name": self.config_name,
                    "dir": self.config_dir,
                    "overrides": list(self.overrides),
                    "hydra_overrides": list(self.hydra_overrides),
                    "choices": dict(self.choices),
                    "resolved": self.resolved,
                    "volatile": list(self.volatile),
                    "env_digests": dict(self.env_digests),
                    "digest": self.config_digest,
                },
                "seeds": seeds(self.resolved),
                "command": self.command,
                "job": self.job,
                "environment": self.environment,
                "reprotrain_version": self.reprotrain_version,
            }
            | ({"pipeline": self.pipeline, "outputs": [asdict(o) for o in self.outputs]} if self.pipeline else {})
            | ({"schemas": self.schemas} if self.schemas else {})
            | ({"schema_changes": [p.to_dict() for p in self.schema_changes]} if self.schema_changes else {})
        )

    def to_json(self) -> str:
        return json.dumps(json.loads(canonical_json(self.to_dict())), indent=2, ensure_ascii=False) + "\n"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TAG else text[: MAX_TAG - 1] + "…"


def run_tags(record: RunRecord) -> dict[str, str]:
    """The tags DESIGN.md §5 promises on every run (MLflow's own git tags included, for its UI)."""
    tags = {
        "mlflow.source.git.commit": record.git.commit,
        "mlflow.source.git.branch": record.git.branch,
        "reprotrain.git.commit": record.git.commit,
        "reprotrain.git.branch": record.git.branch,
        "reprotrain.git.remote": record.git.remote,
        "reprotrain.pinned": "true" if record.pinned else "false",
        "reprotrain.data.digest": record.data_digest,
        "reprotrain.config.digest": record.config_digest,
        "reprotrain.overrides": _clip(json.dumps(record.overrides, ensure_ascii=False)),
        "reprotrain.config.name": record.config_name,
    } | short_digest_tags(record.data_digest, record.config_digest)
    if record.git.remote:
        tags["mlflow.source.git.repoURL"] = record.git.remote
    if record.schema_changes:  # run with --accept-schema-change: the record lists each difference
        tags["reprotrain.schema.accepted_changes"] = ", ".join(p.path for p in record.schema_changes)
    return tags


SHORT_DIGEST = 12


def short_digest_tags(data: str, config: str | None = None) -> dict[str, str]:
    """The digests again, short, under short keys: MLflow's run overview cuts a tag's key to fit
    its value, so both 64-character digest tags read `reprotrai…` there; these read in full
    (`reprotrain.data: 4f82d8a1b2c3`). The full tags stay the ones to search and compare."""
    tags = {"reprotrain.data": data[:SHORT_DIGEST]}
    if config is not None:
        tags["reprotrain.config"] = config[:SHORT_DIGEST]
    return tags


def parse_metrics(payload: object, source: str) -> tuple[dict[str, float], list[str]]:
    """Metrics from a decoded metrics file: a flat object of numbers. Returns (metrics, warnings)."""
    if not isinstance(payload, Mapping):
        return {}, [f"{source}: expected a JSON object of numbers, got {type(payload).__name__}; not logged"]
    metrics: dict[str, float] = {}
    warnings: list[str] = []
    for key, value in payload.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            warnings.append(f"{source}: metric {key!r} is not a number ({value!r}); not logged")
            continue
        name = _METRIC_KEY_BAD.sub("_", str(key))[:250]
        metrics[name] = float(value)
    return metrics, warnings
