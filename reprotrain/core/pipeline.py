"""A DVC pipeline as the training code (`entrypoint = "dvc repro [stage ...]"`): what it reads,
what it makes, and how its metrics and products are named in a run. Pure: the adapter
(adapters/dvc_pipeline.py) reads the stages from DVC, the orchestration (pipeline.py) runs them."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from reprotrain.core.record import DataOutput

__all__ = [
    "PARAMS_FILE",
    "PipelinePlan",
    "Stage",
    "flatten_metrics",
    "inputs_of",
    "is_input",
    "missing_params",
    "outputs_tag",
    "parse_repro",
    "plan_from_dict",
    "ran_stages",
    "unread_overrides",
]

PARAMS_FILE = "params.yaml"  # the file DVC's Hydra composition writes (`dvc exp run`), and stages read
# `dvc repro` flags a pipeline entrypoint may carry: they choose what runs, not how it is recorded
_ALLOWED_FLAGS = {"-s", "--single-item", "-p", "--pipeline", "-R", "--recursive", "--downstream"}
_RECORDING_FLAGS = {
    "-f": "reprotrain decides: a run recomputes what changed, a rerun every stage",
    "--force": "reprotrain decides: a run recomputes what changed, a rerun every stage",
    "--no-run-cache": "reprotrain never takes outputs from DVC's run-cache",
    "--no-commit": "the run's outputs must reach the DVC cache to be pinned",
    "--dry": "a dry run trains nothing",
    "-i": "a run is not interactive",
    "--interactive": "a run is not interactive",
    "--pull": "reprotrain restores the inputs itself (from the cache, then the DVC remote)",
    "--allow-missing": "every input is restored before the pipeline runs",
}


@dataclass(frozen=True)
class Stage:
    """One stage that `dvc repro` of the entrypoint's targets may run."""

    name: str  # as `dvc.lock` and reprotrain's data sources name it
    address: str  # as `dvc repro` takes it (`train`, `sub/dvc.yaml:train`)
    params: tuple[str, ...] | None  # keys it reads from params.yaml; None: the whole file; () none
    outs: tuple[str, ...] = ()  # paths relative to the project root
    file: str = "dvc.yaml"  # the dvc.yaml that defines it, relative to the project root
    deps: tuple[str, ...] = ()  # the paths it reads, relative to the project root


@dataclass(frozen=True)
class PipelinePlan:
    targets: tuple[str, ...]
    flags: tuple[str, ...]
    stages: tuple[Stage, ...]
    metrics_files: tuple[str, ...] = ()  # relative to the project root
    plots_files: tuple[str, ...] = ()
    params_keys_elsewhere: tuple[str, ...] = field(default=())  # `other.yaml:key`: from git, untouched

    @property
    def reads_params(self) -> bool:
        return any(s.params is None or s.params for s in self.stages)

    @property
    def lock_files(self) -> tuple[str, ...]:
        """The dvc.lock beside each dvc.yaml of the plan (relative to the project root)."""
        return tuple(dict.fromkeys(str(PurePosixPath(s.file).with_name("dvc.lock")) for s in self.stages))

    def made(self) -> set[str]:
        return {o for s in self.stages for o in s.outs}

    def argv(self, force: bool) -> list[str]:
        """`dvc repro`'s arguments for the plan: never from the run-cache; every stage with ``force``."""
        return ["repro", *self.flags, *self.targets, "--no-run-cache", *(["--force"] if force else [])]

    def command(self, dvc: Sequence[str], force: bool) -> str:
        """The `dvc repro` command line that runs the plan (as the record shows it)."""
        return " ".join(shlex.quote(w) for w in [*dvc, *self.argv(force)])


def plan_from_dict(value: Mapping[str, Any]) -> PipelinePlan:
    """The inverse of `dataclasses.asdict` of a plan (its JSON form, as memo and runner keep it)."""
    stages = tuple(
        Stage(
            s["name"],
            s["address"],
            None if s["params"] is None else tuple(s["params"]),
            tuple(s["outs"]),
            s.get("file", "dvc.yaml"),
            tuple(s.get("deps", ())),
        )
        for s in value["stages"]
    )
    return PipelinePlan(
        tuple(value["targets"]),
        tuple(value["flags"]),
        stages,
        tuple(value.get("metrics_files", ())),
        tuple(value.get("plots_files", ())),
        tuple(value.get("params_keys_elsewhere", ())),
    )


def parse_repro(text: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(targets, flags) when ``text`` is `dvc repro [flags] [targets]`, else None. ValueError, with
    the reason, for a flag that would change what the run records."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if words[:2] != ["dvc", "repro"]:
        return None
    targets: list[str] = []
    flags: list[str] = []
    for word in words[2:]:
        if not word.startswith("-"):
            targets.append(word)
        elif word in _ALLOWED_FLAGS:
            flags.append(word)
        elif word in _RECORDING_FLAGS:
            raise ValueError(f"`{word}` is not taken in a pipeline entrypoint: {_RECORDING_FLAGS[word]}")
        else:
            raise ValueError(f"`{word}` is not a `dvc repro` flag reprotrain knows to be safe in an entrypoint")
    return tuple(targets), tuple(flags)


def _has_key(config: Mapping[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def missing_params(params: Mapping[str, Any], plan: PipelinePlan) -> list[tuple[str, str]]:
    """(stage, key) for every params.yaml key a stage reads that the composed config lacks."""
    return [(s.name, key) for s in plan.stages for key in s.params or () if not _has_key(params, key)]


def _key_of(override: str) -> str:
    key = override.partition("=")[0].lstrip("+~")
    return key.split("@", 1)[0]


def unread_overrides(overrides: Iterable[str], plan: PipelinePlan, choices: Iterable[str] = ()) -> list[str]:
    """Overrides that change a key no stage reads (so nothing computed changes). Group choices
    (`+experiment=x`) and Hydra's own keys are not judged: they change many keys at once."""
    if any(s.params is None for s in plan.stages):
        return []
    read = [k for s in plan.stages for k in s.params or ()]
    groups = set(choices)
    unread = []
    for override in overrides:
        key = _key_of(override)
        if not key or key.startswith("hydra.") or key in groups:
            continue
        parent = key.rpartition(".")[0]
        # a sibling of a key read counts as read: `foreach: ${models}` reads the mapping, and DVC
        # tracks the keys it had (`models.a`), not one an override adds (`+models.c=4`)
        near = [r for r in read if key == r or key.startswith(r + ".") or r.startswith(key + ".")]
        if not near and not (parent and any(r.rpartition(".")[0] == parent for r in read)):
            unread.append(override)
    return unread


def flatten_metrics(files: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Metrics from the pipeline's metrics files (path -> decoded JSON/YAML): nested keys joined
    with `/`, as dvclive names them (`train/loss`); a key two files both give is prefixed with
    each file's path. Returns (name -> value, warnings); values are left for parse_metrics."""
    per_file: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for path, payload in files.items():
        if not isinstance(payload, Mapping):
            warnings.append(f"{path}: expected an object of metrics, got {type(payload).__name__}; not logged")
            continue
        per_file[path] = dict(_flat(payload, ""))
    counts: dict[str, int] = {}
    for flat in per_file.values():
        for key in flat:
            counts[key] = counts.get(key, 0) + 1
    out: dict[str, Any] = {}
    for path, flat in per_file.items():
        for key, value in flat.items():
            out[f"{path}/{key}" if counts[key] > 1 else key] = value
    return out, warnings


def _flat(value: Mapping[str, Any], prefix: str) -> Iterable[tuple[str, Any]]:
    for key, child in value.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(child, Mapping):
            yield from _flat(child, name)
        else:
            yield name, child


def _within(a: str, b: str) -> bool:
    """``a`` is ``b`` or inside it (paths relative to one root, `/`-separated)."""
    return a == b or a.startswith(b.rstrip("/") + "/")


def is_input(path: str, plan: PipelinePlan) -> bool:
    """``path`` (relative to the project) is data a stage reads and no stage makes."""
    if any(_within(path, made) for made in plan.made()):
        return False
    return any(_within(path, dep) or _within(dep, path) for s in plan.stages for dep in s.deps)


def inputs_of(data: Sequence[DataOutput], plan: PipelinePlan, prefix: str = "") -> list[DataOutput]:
    """The pinned data the pipeline reads: what its stages depend on (a tracked file a stage reads,
    inside a directory it reads, or a directory holding what it reads), and not what they make.
    ``prefix``: the project's path in the repository, as the data's paths begin."""
    made = {f"dvc.lock:{s.name}" for s in plan.stages}
    deps = [prefix + d for s in plan.stages for d in s.deps]
    return [
        d
        for d in data
        if d.source.split(" (", 1)[0] not in made and any(_within(d.path, p) or _within(p, d.path) for p in deps)
    ]


def ran_stages(console: str) -> list[str]:
    """The stages `dvc repro` ran, from its console output (`Running stage 'train':`)."""
    import re

    return re.findall(r"^Running stage '(.+?)':", console, flags=re.MULTILINE)


def outputs_tag(outputs: Sequence[DataOutput], limit: int) -> str:
    """`|path=hash|path=hash|`: one tag that MLflow's search can match a product by (LIKE)."""
    text = "|" + "".join(f"{o.path}={o.hash}|" for o in sorted(outputs, key=lambda o: o.path))
    if len(text) <= limit:
        return text
    return text[: text.rfind("|", 0, limit) + 1]  # whole entries only; the record holds them all
