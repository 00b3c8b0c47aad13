"""DVC pipelines (`dvc.yaml`): the stages `dvc repro` of some targets runs, DVC's own Hydra
composition of params.yaml (what `dvc exp run` writes), and what a pipeline run left behind."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.adapters.dvc import first_line, quiet_dvc
from reprotrain.core.pipeline import PARAMS_FILE, PipelinePlan, Stage
from reprotrain.core.record import PINNED_BY_GIT, DataOutput
from reprotrain.errors import ReprotrainError, UsageError

__all__ = ["PipelineResults", "compose_params", "plan", "results"]

_WHOLE_GRAPH = {"-p", "--pipeline", "-R", "--recursive", "--downstream"}  # beyond the targets' own deps


def plan(root: Path, targets: Sequence[str], flags: Sequence[str]) -> PipelinePlan:
    """The stages `dvc repro <flags> <targets>` may run in the project at ``root`` (every stage
    of the repository for flags that reach beyond the targets' dependencies: a superset is safe)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    quiet_dvc()
    try:
        with Repo(os.fspath(root)) as repo:
            return _plan(repo, root, targets, flags)
    except DvcException as exc:
        raise _unplanned(targets, flags, exc) from exc


def _unplanned(targets: Sequence[str], flags: Sequence[str], exc: Exception) -> UsageError:
    return UsageError(
        f"`dvc repro {' '.join([*flags, *targets])}` cannot be planned: {first_line(exc)}",
        hint="check the entrypoint's stage names against `dvc stage list`",
    )


def _plan(repo: Any, root: Path, targets: Sequence[str], flags: Sequence[str]) -> PipelinePlan:
    if not targets and not (root / "dvc.yaml").is_file():
        raise UsageError(
            f"the entrypoint runs `dvc repro`, but there is no dvc.yaml in {root}",
            hint="add the pipeline's stages (dvc stage add ...), or name stages: dvc repro <stage>",
        )
    if set(flags) & _WHOLE_GRAPH:
        collected = list(repo.index.stages)
    else:
        single = "-s" in flags or "--single-item" in flags
        collected = []
        for target in targets or ["dvc.yaml"]:
            collected += repo.stage.collect(target, with_deps=not single)
    stages = _stages(root, _in_run_order(repo, collected))
    metrics, plots = _reports(repo, root, collected)
    if not stages:
        raise UsageError(
            f"`dvc repro {' '.join(targets)}` runs no stage with a command in {root}",
            hint="name a stage that has a cmd: dvc stage list",
        )
    return PipelinePlan(tuple(targets), tuple(flags), tuple(stages), metrics, plots)


def _in_run_order(repo: Any, collected: list[Any]) -> list[Any]:
    """The stages in the order `dvc repro` runs them: every stage after those it depends on."""
    import networkx as nx

    graph = repo.index.graph  # an edge goes from a stage to a stage it depends on
    order = {stage: n for n, stage in enumerate(reversed(list(nx.topological_sort(graph))))}
    return sorted(collected, key=lambda stage: order.get(stage, len(order)))


def _stages(root: Path, collected: list[Any]) -> list[Stage]:
    seen: dict[str, Stage] = {}
    for stage in collected:
        if not getattr(stage, "cmd", None) or stage.is_data_source or stage.is_import or stage.addressing in seen:
            continue
        keys: tuple[str, ...] | None = ()
        deps = []
        for dep in stage.deps:
            if type(dep).__name__ != "ParamsDependency":
                deps.append(os.path.relpath(dep.fs_path, root))
                continue
            if os.path.relpath(dep.fs_path, root) != PARAMS_FILE:
                continue  # another params file: git keeps it, the composed config does not reach it
            keys = None if not dep.params or keys is None else (*keys, *dep.params)
        templated = _templated_keys(root, stage)  # `${train.lr}` in cmd, deps or outs: DVC tracks it too
        if keys is not None and templated:
            keys = tuple(dict.fromkeys((*keys, *templated)))
        outs = tuple(os.path.relpath(o.fs_path, root) for o in stage.outs)
        seen[stage.addressing] = Stage(
            stage.name, stage.addressing, keys, outs, os.path.relpath(stage.path, root), tuple(deps)
        )
    return list(seen.values())


def _templated_keys(root: Path, stage: Any) -> list[str]:
    """The params.yaml keys a stage's definition interpolates (`cmd: python t.py ${train.lr}`), as
    DVC's parser tracked them (`tracked_vars`: file -> flattened keys)."""
    params = os.path.realpath(root / PARAMS_FILE)
    found: list[str] = []
    for file, keys in (getattr(stage, "tracked_vars", None) or {}).items():
        here = os.path.join(os.path.dirname(stage.path), file)
        if params in (os.path.realpath(here), os.path.realpath(file)):
            found += [str(k) for k in keys]
    return found


def _reports(repo: Any, root: Path, collected: list[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Metrics and plots files: the stages' `metrics:`/`plots:` outs and dvc.yaml's top-level lists."""
    metrics: set[str] = set()
    plots: set[str] = set()
    for stage in collected:
        for out in stage.outs:
            rel = os.path.relpath(out.fs_path, root)
            if out.metric:
                metrics.add(rel)
            if out.plot:
                plots.add(rel)
    index = repo.index
    for dvcfile, paths in (getattr(index, "_metrics", None) or {}).items():
        metrics.update(_top_level(root, dvcfile, paths))
    for dvcfile, defs in (getattr(index, "_plots", None) or {}).items():
        plots.update(_top_level(root, dvcfile, [k for d in defs for k in (d if isinstance(d, dict) else [d])]))
    return tuple(sorted(metrics)), tuple(sorted(plots))


def _top_level(root: Path, dvcfile: str, paths: list[Any]) -> list[str]:
    base = Path(dvcfile).parent
    found = []
    for path in paths:
        if not isinstance(path, str):
            continue
        rel = os.path.relpath(base / path, root)
        if not rel.startswith(".."):
            found.append(rel)
    return found


@contextmanager
def _hydra_set_aside() -> Iterator[None]:
    """DVC's composition initialises Hydra's global state, which the running Hydra app (this job)
    holds: set aside for the block and put back afterwards."""
    from hydra import version
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    gh = GlobalHydra.instance()
    held, base, config = gh.hydra, version.VersionBase.instance().version_base, HydraConfig.instance().cfg
    gh.clear()
    try:
        yield
    finally:
        gh = GlobalHydra.instance()
        gh.clear()
        if held is not None:
            gh.initialize(held)
        version.VersionBase.instance().version_base = base
        HydraConfig.instance().cfg = config


def compose_params(dest: Path, config_dir: Path, config_name: str, overrides: list[str], plugins: Path) -> Any:
    """params.yaml as `dvc exp run` writes it with DVC's Hydra composition on (`dvc config
    hydra.enabled true`): DVC's own compose_and_dump, with the job's overrides. Returns the
    composed params as read back from ``dest``."""
    import yaml
    from dvc.utils.hydra import compose_and_dump

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _hydra_set_aside():
            compose_and_dump(dest, os.fspath(config_dir), None, config_name, os.fspath(plugins), overrides)
    except Exception as exc:  # noqa: BLE001 - Hydra and OmegaConf raise many kinds; all are the config's
        raise UsageError(
            f"DVC's Hydra composition of {PARAMS_FILE} (as `dvc exp run` makes it) failed: {first_line(exc)}",
            hint="the config must compose with Hydra's compose API too: no ${hydra:runtime...} or "
            "${hydra:job...} values in keys the pipeline reads",
        ) from exc
    return yaml.safe_load(dest.read_text(encoding="utf-8")) or {}


@dataclass(frozen=True)
class PipelineResults:
    plan: PipelinePlan  # the stages as the composed params.yaml defines them
    outputs: list[DataOutput]
    metrics: dict[str, Any]  # metrics file -> decoded content
    problems: list[str]  # metrics files that could not be read
    cache: str  # the DVC cache dir (holding `files/` and `runs/`)
    site_cache: str  # DVC's directory for the worktree in its site cache (dvc.forget_site_cache)


def results(project: Path, targets: Sequence[str], flags: Sequence[str], tree: Path) -> PipelineResults:
    """What the pipeline run in ``project`` (in the worktree ``tree``) made: the stages as the
    composed params.yaml defines them (a `foreach` over a params key may have grown), each stage
    output with the hash its dvc.lock now holds (paths relative to the repository, as the pinned
    data's), and the decoded metrics files."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    quiet_dvc()
    outputs: list[DataOutput] = []
    try:
        with Repo(os.fspath(project)) as repo:
            try:
                plan_ = _plan(repo, project, targets, flags)
            except DvcException as exc:
                raise _unplanned(targets, flags, exc) from exc
            names = {(s.file, s.name) for s in plan_.stages}  # `addressing` is relative to the cwd: not the worktree
            for stage in repo.index.stages:
                if (os.path.relpath(stage.path, project), getattr(stage, "name", None)) not in names:
                    continue
                for out in stage.outs:
                    if out.hash_info is None or not out.hash_info.value:
                        continue
                    source = f"dvc.lock:{stage.name}" + ("" if out.use_cache else PINNED_BY_GIT)
                    rel = os.path.relpath(out.fs_path, tree)
                    outputs.append(DataOutput(rel, out.hash_info.value, out.meta.size, out.meta.nfiles, source))
            cache = str(Path(repo.cache.local.path).parents[1])
            site_cache = repo.site_cache_dir
    except DvcException as exc:
        raise ReprotrainError(f"reading the pipeline's dvc.lock in {project} failed: {first_line(exc)}") from exc
    metrics: dict[str, Any] = {}
    problems: list[str] = []
    for rel in plan_.metrics_files:
        path = project / rel
        if not path.is_file():
            problems.append(f"{rel}: not written by the pipeline")
            continue
        try:
            metrics[rel] = _load(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{rel}: {exc}")
    return PipelineResults(plan_, sorted(outputs, key=lambda o: o.path), metrics, problems, cache, site_cache)


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML ({str(exc).splitlines()[0]})") from exc
    if path.suffix.lower() == ".toml":
        import tomllib

        return tomllib.loads(text)
    raise ValueError(f"a metrics file must be JSON, YAML or TOML, not {path.suffix or 'without suffix'}")
