"""A DVC pipeline as the training code: one job's `dvc repro`, run as `dvc exp run --temp` runs an
experiment. The job's commit is checked out in a worktree of its own (the user's working copy is
never touched: no dvc.lock, params.yaml or output of theirs changes), its data is restored from the
shared DVC cache, params.yaml is what DVC's Hydra composition makes of the job's config, and the
stages' outputs land in the shared cache, where their hashes pin them. The worktree is removed
afterwards; its dvc.lock and params.yaml are kept with the run (`reprotrain/pipeline/`)."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reprotrain.adapters import dvc_pipeline, warm
from reprotrain.adapters import git as git_adapter
from reprotrain.adapters.process import Outcome, Prestarted, run_command
from reprotrain.core.config import config_differences
from reprotrain.core.pipeline import (
    PARAMS_FILE,
    PipelinePlan,
    flatten_metrics,
    missing_params,
    plan_from_dict,
    ran_stages,
    unread_overrides,
)
from reprotrain.core.record import PINNED_BY_GIT, DataOutput
from reprotrain.errors import UsageError
from reprotrain.fileio import write_json
from reprotrain.progress import progress
from reprotrain.settings import STATE_DIR
from reprotrain.worktrees import WORKTREE_OWNER, remove_stale_worktrees

__all__ = ["PipelineJob", "plan_for", "runner_started_ahead"]

_DVC = ("dvc",)  # as the record shows it; the runner calls the DVC reprotrain runs with
_PLAN_MEMO = "pipeline-plans.json"  # in the state dir: commit + targets -> plan
_MEMO_KEEP = 16


_prestarted: list[Prestarted] = []  # the runner started ahead of this process's first pipeline job


@contextmanager
def runner_started_ahead(root: Path) -> Iterator[None]:
    """For the block (a launch whose first job runs in this process, in the project at ``root``),
    the pipeline runner is started now: its Python starts, imports DVC (≈0.3 s) and finds the
    project's DVC cache while the gate, Hydra and the job's set-up run here. The first job takes
    it; one not taken is killed when the block ends."""
    # started in `/`: `python -m` puts its start directory first on sys.path, and the runner puts
    # the job's worktree there once it has its request (as a runner started for the job has it)
    launcher = os.getpid()
    runner = Prestarted(
        [sys.executable, "-m", "reprotrain.adapters.dvc_runner", "--wait", str(launcher), str(root)],
        Path("/"),
        fork=functools.partial(_forked_runner, launcher, str(root)) if warm.forked_here() else None,
    )
    try:
        _prestarted.append(runner)
        yield
    finally:
        if runner in _prestarted:  # not taken
            _prestarted.remove(runner)
        runner.close()


def _forked_runner(launcher: int, root: str, request_fd: int) -> int:
    """The runner as `python -m reprotrain.adapters.dvc_runner --wait` runs it, in a fork of a warm
    launch (DVC is imported already)."""
    from reprotrain.adapters import dvc_runner

    return dvc_runner.waiting(launcher, request_fd, root)


def plan_for(root: Path, state: Path, commit: str, targets: tuple[str, ...], flags: tuple[str, ...]) -> PipelinePlan:
    """The stages `dvc repro` of the targets may run at ``commit``, remembered per commit: a clean
    tree at one commit has one dvc.yaml, and reading it means importing DVC (0.7 s a launch)."""
    from importlib.metadata import version

    from reprotrain import __version__

    key = json.dumps([2, commit, list(targets), list(flags), version("dvc"), __version__])  # 2: the memo's format
    memo_path = state / _PLAN_MEMO
    memo: dict[str, Any] = {}
    try:
        loaded = json.loads(memo_path.read_text(encoding="utf-8"))
        memo = loaded if isinstance(loaded, dict) else {}
        if key in memo:
            return plan_from_dict(memo[key])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or damaged: read dvc.yaml again
    plan = dvc_pipeline.plan(root, targets, flags)
    memo = {k: v for k, v in list(memo.items())[-(_MEMO_KEEP - 1) :]} | {key: asdict(plan)}
    try:
        write_json(memo_path, memo)
    except OSError:
        pass  # a memo that cannot be written costs the next launch 0.7 s, nothing more
    return plan


@dataclass
class PipelineJob:
    """One job's pipeline run. ``force`` (a rerun) recomputes every stage; a run recomputes what
    its config changed against the committed dvc.lock. Neither takes outputs from the run-cache."""

    plan: PipelinePlan
    root: Path  # the project (the user's, or a rerun's worktree)
    git_root: Path
    commit: str
    force: bool
    params: Path  # params.yaml as DVC composed it, made before the run exists
    outputs: list[DataOutput] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def compose(
        self, config_dir: Path, config_name: str, overrides: list[str], resolved: Any, volatile: list[str]
    ) -> None:
        """params.yaml from DVC's own composition, checked against the job's config: the pipeline
        reads exactly what the run records, and every key a stage reads is there. Fails (exit 2)
        before the run exists."""
        composed = dvc_pipeline.compose_params(self.params, config_dir, config_name, overrides, self.root)
        differences = config_differences(resolved, composed, volatile)
        if differences:
            raise UsageError(
                f"DVC's composition of {PARAMS_FILE} differs from the config Hydra composed for the run: "
                + "; ".join(f"{k}: Hydra {a!r}, DVC {b!r}" for k, a, b in differences[:5]),
                hint="set hydra_version_base to the version the configs are written for, or make the differing keys "
                "independent of the Hydra run (DVC composes with Hydra's compose API, version_base=None)",
            )
        missing = missing_params(composed, self.plan)
        if missing:
            raise UsageError(
                "the pipeline reads params the composed config lacks: "
                + ", ".join(f"{key} (stage {stage})" for stage, key in missing[:8]),
                hint=f"add them to the Hydra config in {config_dir}, or drop them from the stages' params in dvc.yaml",
            )

    def warn_unread(self, overrides: list[str], choices: list[str]) -> None:
        unread = unread_overrides(overrides, self.plan, choices)
        if unread:
            print(
                f"reprotrain: warning: no stage of the pipeline reads {', '.join(unread)} (dvc.yaml's params): "
                "the override changes nothing the pipeline computes (fix: add the key to a stage's params)",
                file=sys.stderr,
            )

    def command(self) -> str:
        return self.plan.command(_DVC, self.force)

    @property
    def prefix(self) -> str:
        """The project's path in the repository (`proj/`, or empty), as recorded data paths begin."""
        rel = self.root.resolve().relative_to(self.git_root.resolve()).as_posix()
        return "" if rel == "." else rel + "/"

    def run(
        self, env: dict[str, str], log: Path, timeout: float | None, tail: int, keep: Path, secrets: list[str]
    ) -> Outcome:
        """Check the commit out, restore its data, run `dvc repro`, and read what it made; the
        worktree's dvc.lock files, params.yaml, metrics and plots files are copied to ``keep``.
        ``secrets``: values that must not stay in DVC's run-cache (see _forget_secrets)."""
        state = self.root / STATE_DIR
        base = state / "worktrees"
        base.mkdir(parents=True, exist_ok=True)
        remove_stale_worktrees(self.git_root, base)
        tree = base / f"pipeline-{uuid.uuid4().hex[:12]}"
        from reprotrain.query import this_launcher

        progress(f"checking out {self.commit[:12]} in {tree} for the pipeline")
        git_adapter.add_worktree(self.git_root, tree, self.commit, lock_reason=WORKTREE_OWNER + this_launcher())
        try:
            project = tree / self.root.resolve().relative_to(self.git_root.resolve())
            spec = self.params.with_name("pipeline-spec.json")
            results = self.params.with_name("pipeline-results.json")
            write_json(
                spec,
                {
                    "project": str(project),
                    "root": str(self.root),
                    "local_config": str(self.root / ".dvc" / "config.local"),
                    "verified_index": str(state / "verified-objects.json"),
                    "params": str(self.params),
                    "argv": self.plan.argv(self.force),
                    "plan": asdict(self.plan),
                    "results": str(results),
                    "tree": str(tree),
                },
            )
            runner = f"{shlex.quote(sys.executable)} -m reprotrain.adapters.dvc_runner {shlex.quote(str(spec))}"
            ahead = _prestarted.pop() if _prestarted else None  # only the first job takes it
            request = json.dumps({"spec": str(spec), "cwd": str(project), "env": dict(env)}).encode() + b"\n"
            started = time.time()
            outcome = run_command(runner, project, env, log, timeout, tail, ahead, request)
            self.ran = ran_stages(log.read_text(encoding="utf-8", errors="replace"))
            try:
                made = json.loads(results.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                made = {}  # the runner was stopped before it wrote them
            if made.get("cache") and secrets:
                _forget_secrets(Path(made["cache"]) / "runs", started, secrets)
            if outcome.status == "FINISHED" and "outputs" in made:
                self.plan = plan_from_dict(made["plan"])  # a `foreach` over a params key may have grown
                self.outputs = [DataOutput(**o) for o in made["outputs"]]
                self.metrics, warnings = flatten_metrics(made["metrics"])
                for warning in [*made["problems"], *warnings]:
                    print(f"reprotrain: warning: pipeline metrics: {warning}", file=sys.stderr)
                if not self.ran:
                    print(
                        "reprotrain: note: every stage was up to date with the committed dvc.lock for this config: "
                        "nothing was recomputed (`reprotrain rerun RUN_ID --verify` recomputes every stage)",
                        file=sys.stderr,
                    )
            self._keep(project, tree, keep)
            return outcome
        finally:
            git_adapter.remove_worktree(self.git_root, tree)

    def _keep(self, project: Path, tree: Path, keep: Path) -> None:
        """The files `apply` writes back, and what a reader of the run wants to see: every dvc.lock,
        params.yaml, the metrics and plots files (directories too), the outputs git keeps. Paths
        relative to the project; a link is never followed."""
        keep.mkdir(parents=True, exist_ok=True)
        in_git = [  # the outputs' paths are relative to the repository
            os.path.relpath(tree / o.path, project) for o in self.outputs if o.source.endswith(PINNED_BY_GIT)
        ]
        names = (*self.plan.lock_files, PARAMS_FILE, *self.plan.metrics_files, *self.plan.plots_files, *in_git)
        for rel in dict.fromkeys(names):
            source = project / rel
            dest = keep / rel
            if source.is_symlink() or not (source.is_file() or source.is_dir()):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, dest)

    def record(self) -> dict[str, Any]:
        return {
            "targets": list(self.plan.targets),
            "flags": list(self.plan.flags),
            "forced": self.force,
            "stages": [
                {"name": s.name, "address": s.address, "ran": s.name in self.ran or s.address in self.ran}
                for s in self.plan.stages
            ],
            "params_file": PARAMS_FILE,
        }


def _forget_secrets(runs: Path, since: float, secrets: list[str]) -> None:
    """DVC's run-cache keeps every stage's params values in plain YAML (under the DVC cache's
    `runs/`, which `dvc push --run-cache` uploads), even with `--no-run-cache`, which only stops
    it being read: the entries this job wrote that hold a secret are removed."""
    if not runs.is_dir():
        return
    for entry in runs.glob("*/*/*"):
        try:
            if entry.stat().st_mtime < since - 1 or not entry.is_file():
                continue
            text = entry.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(value and value in text for value in secrets):
            entry.unlink(missing_ok=True)
