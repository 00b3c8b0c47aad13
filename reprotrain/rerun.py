"""Orchestration of `reprotrain rerun`: rebuild a recorded run's code, data and config in a
separate git worktree, run it again as a new linked run, and optionally verify the result."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reprotrain.adapters import dvc as dvc_adapter
from reprotrain.adapters import git as git_adapter
from reprotrain.adapters.store_helper import AnyTracker, reader_for
from reprotrain.adapters.tracking import quick_failure
from reprotrain.core import ui
from reprotrain.core.links import LinkedRun, linked_metrics, load_linked
from reprotrain.core.record import strip_credentials
from reprotrain.core.secrets import MASK, Masker, secret_env_values, url_secrets
from reprotrain.core.verify import (
    EXIT_CODES,
    NOTHING_TO_COMPARE,
    REPRODUCED,
    Verdict,
    combined_outcome,
    compare,
    env_drift,
)
from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.launch import (
    Lineage,
    Replay,
    RunOptions,
    ensure_state_dir,
    environment,
    launch,
    remember_launch,
    tracking_uri,
)
from reprotrain.linking import LINKED_RUNS
from reprotrain.progress import progress, wants_color
from reprotrain.query import this_launcher
from reprotrain.rebuilt import (
    REBUILT_VARIABLE,
    WORKTREE_VARIABLE,
    drift_here,
    rebuilt_environment,
    rerun_inside,
)
from reprotrain.render import drift_text, verdict_text
from reprotrain.settings import find_project
from reprotrain.worktrees import WORKTREE_OWNER, remove_stale_worktrees

__all__ = ["RerunOptions", "UnpinnedRunError", "rerun"]


class UnpinnedRunError(ReprotrainError):
    """The run was launched with --allow-unpinned: its code or data cannot be rebuilt exactly."""

    exit_code = 3


@dataclass(frozen=True)
class RerunOptions:
    verify: bool = False
    rtol: float = 0.0
    atol: float = 0.0
    strict_env: bool = False
    force: bool = False
    keep: bool = False
    timeout: float | None = None
    rebuild_env: bool = False
    python: str | None = None  # --python: the interpreter a rebuild may use instead of the recorded one
    rebuilt_env: str = ""  # set by the rerun: the rebuilt environment's key


def rerun(run_id: str, overrides: list[str], options: RerunOptions, cwd: Path | None = None) -> int:
    """`reprotrain rerun`: returns the exit code (0; with --verify 4 when it finds a difference,
    5 when there was nothing to compare; the code's own when it fails).

    A sweep's parent run reruns every job of the sweep, under a new parent run.
    """
    from reprotrain.query import resolve_run_id

    project = find_project(cwd)
    uri = tracking_uri(project)
    tracker = reader_for(uri)
    given_hydra = [o for o in overrides if _is_hydra_override(o)]  # where it runs, not what it computes
    overrides = [o for o in overrides if not _is_hydra_override(o)]
    with quick_failure():  # an unreachable server fails in seconds
        run_id = resolve_run_id(run_id, tracker, cwd)
        original = tracker.get_run(run_id)
        sweep = original.tags.get("reprotrain.sweep") == "true"
        jobs = _sweep_jobs(tracker, original, overrides) if sweep else [(original, _record(tracker, original, uri))]
    for view, record in jobs:
        if not record.get("pinned") and not options.force:
            raise UnpinnedRunError(
                f"run {view.run_id} was launched unpinned ({len(record.get('problems', []))} problems recorded): "
                "its code or data cannot be rebuilt exactly",
                hint=f"reprotrain rerun {run_id} --force to rerun it from its commit anyway",
            )
    if options.python and not options.rebuild_env:
        raise UsageError("--python chooses the interpreter of a rebuilt environment", hint="add --rebuild-env")
    recorded_env = jobs[0][1].get("environment", {})
    inside = os.environ.pop(REBUILT_VARIABLE, "")  # run again by `rerun --rebuild-env`, in the rebuilt environment
    given_worktree = os.environ.pop(WORKTREE_VARIABLE, "")  # ... in the worktree that rerun checked out
    if options.rebuild_env:
        drift = []
    elif inside:
        options = replace(options, rebuilt_env=inside)
        drift = drift_here(recorded_env, environment())
        _say_rebuilt(drift, inside, run_id)
    else:
        drift = env_drift(recorded_env, _current_environment(recorded_env))
    _report_drift(drift, run_id, options)
    commits = {record["git"]["commit"] for _, record in jobs}
    if len(commits) != 1:
        raise ReprotrainError(f"the jobs of sweep {run_id} ran at different commits: {', '.join(sorted(commits))}")
    sha = commits.pop()
    git = git_adapter.snapshot(project.root)
    if git is None:
        raise ReprotrainError(f"{project.root} is not inside a git repository: cannot check out the run's commit")
    _ensure_commit(git.root, sha, run_id)

    state = ensure_state_dir(project)
    owned = not (inside and given_worktree)  # else the outer rerun's worktree: it removes (or keeps) it
    if owned:
        remove_stale_worktrees(git.root, state / "worktrees")
        worktree = state / "worktrees" / uuid.uuid4().hex[:12]
        worktree.parent.mkdir(parents=True, exist_ok=True)
        progress(f"checking out {sha[:12]} in {worktree}")
        git_adapter.add_worktree(git.root, worktree, sha, lock_reason=WORKTREE_OWNER + this_launcher())
    else:
        worktree = Path(given_worktree)
    stack = contextlib.ExitStack()
    try:
        target = find_project(worktree / project.root.relative_to(git.root))
        if options.rebuild_env:  # before any data is restored or code runs
            entrypoint = target.settings.entrypoint or ""
            rebuilt = stack.enter_context(
                rebuilt_environment(
                    recorded_env,
                    worktree,
                    target.root,
                    str(jobs[0][1].get("git", {}).get("root") or ""),
                    entrypoint,
                    options.python,
                    options.force,
                )
            )
            if rebuilt.launcher:  # the recorded reprotrain goes on with the rerun, in the rebuilt environment
                arguments = _arguments(options, [*overrides, *given_hydra])
                return rerun_inside(rebuilt, run_id, arguments, cwd or Path.cwd(), worktree)
            drift = rebuilt.drift
            options = replace(options, rebuilt_env=rebuilt.key)
            _say_rebuilt(drift, rebuilt.key, run_id)
            _report_drift(drift, run_id, options)
        if jobs[0][1].get("data"):
            progress(f"restoring {len(jobs[0][1]['data'])} DVC output(s) from the cache")
            fetched = dvc_adapter.restore(
                worktree / project.root.relative_to(git.root),  # the DVC project may be a subdirectory
                dvc_adapter.cache_dir(project.root),
                project.root / ".dvc" / "config.local",
                state / "verified-objects.json",
            )
            if fetched:
                progress(f"pulled from the DVC remote: {', '.join(fetched)}")
        launcher = replay_launcher(jobs[0][1], given_hydra)
        if sweep or launcher is not None:  # back through the launcher the jobs ran on (or the one given)
            if launcher:
                progress(f"launching {len(jobs)} job(s) through hydra/launcher={launcher}")
            parent = _new_parent(tracker, original) if sweep else None
            try:  # the launch closes the parent (sweep.finish_parent); not when it fails before the jobs
                outcomes = _replay(tracker, uri, target, jobs, overrides, given_hydra, drift, options, parent, original)
            except BaseException as exc:
                if parent is not None:
                    tracker.terminate(parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
                raise
        else:
            parent = None
            outcomes = [_rerun_one(tracker, uri, target, original, jobs[0][1], overrides, given_hydra, drift, options)]
        remember_launch(project, [parent] if parent else [new for _, new, _ in outcomes if new])
        failed = next((code for code, _, _ in outcomes if code != 0), None)  # the code's own, passed through
        verdicts = [v for _, _, v in outcomes if v is not None]
        outcome = combined_outcome((v.outcome for v in verdicts), len(jobs))
        if parent is not None:  # closed by the launch: FINISHED, FAILED, or KILLED by a signal
            tags = {"reprotrain.sweep.jobs": str(len(jobs))}
            tags |= _summarize(tracker, original, parent, target, jobs[0][1])
            if options.verify:
                tags |= verdict_tags(outcome)
            tracker.set_tags(parent, tags)
            if options.verify:
                print(
                    f"sweep {run_id} rerun as {parent}: {outcome.replace('-', ' ').upper()} "
                    f"({sum(v.reproduced for v in verdicts)} of {len(jobs)} jobs reproduced)"
                )
        if failed is not None:
            return failed
        if options.verify and not overrides:
            return EXIT_CODES[outcome]
        return 0
    finally:
        stack.close()
        if owned and options.keep:
            git_adapter.unlock_worktree(git.root, worktree)  # the user's now: never removed as stale
            print(f"reprotrain: kept the worktree at {worktree}", file=sys.stderr)
        elif owned:
            try:
                dvc_project = worktree / project.root.relative_to(git.root)
                if (dvc_project / ".dvc").is_dir():  # DVC kept a directory for it (restore, or a rebuilt rerun's)
                    dvc_adapter.forget_site_cache(dvc_project)
            finally:
                git_adapter.remove_worktree(git.root, worktree)


def _accepted(record: dict[str, Any]) -> bool:
    """The original ran with --accept-schema-change: its rerun, at the same commit and data, too."""
    return bool(record.get("schema_changes"))


def _say_rebuilt(drift: list[tuple[str, str | None, str | None]], key: str, run_id: str) -> None:
    if not drift:
        print(
            f"reprotrain: rebuilt environment {key[:12]}: the Python and packages run {run_id} recorded",
            file=sys.stderr,
        )


def _arguments(options: RerunOptions, overrides: list[str]) -> list[str]:
    """The command line of a rerun with ``options`` (but --rebuild-env and --python: it runs in
    the rebuilt environment already) and ``overrides``."""
    flags = [name for name, on in (("--verify", options.verify), ("--strict-env", options.strict_env)) if on]
    flags += [name for name, on in (("--force", options.force), ("--keep", options.keep)) if on]
    flags += [f"--rtol={options.rtol}"] if options.rtol else []
    flags += [f"--atol={options.atol}"] if options.atol else []
    flags += [f"--timeout={options.timeout}"] if options.timeout is not None else []
    return [*flags, *(["--", *overrides] if overrides else [])]


def _report_drift(drift: list[tuple[str, str | None, str | None]], run_id: str, options: RerunOptions) -> None:
    if not drift:
        return
    print(drift_text(drift), file=sys.stderr)
    if options.strict_env:
        raise ReprotrainError(
            f"the environment differs from run {run_id}'s in {len(drift)} place(s) and --strict-env is set",
            hint="reprotrain rerun RUN_ID --rebuild-env to rerun in the recorded one, or rerun without --strict-env",
        )


def _summarize(tracker: AnyTracker, original: Any, parent: str, target: Any, record: dict[str, Any]) -> dict[str, str]:
    """A sweep's rerun parent as its sweep's: the shared datasets, the jobs' params, the best job
    (by the original's objective and direction, else the project's objective, minimized)."""
    from reprotrain.adapters.dvc_config import default_remote_url
    from reprotrain.core.record import DataOutput
    from reprotrain.sweep import summarize

    kept = original.tags.get("reprotrain.sweep.objective", "").split(" ", 1)
    direction, objective = (kept[0], kept[1]) if len(kept) == 2 else ("minimize", target.settings.objective)
    try:
        outputs = [DataOutput(**o) for o in record.get("data", [])]
        # MLflow keeps one dataset per name and digest in an experiment: these are the original's rows
        tracker.log_data_inputs(parent, outputs, default_remote_url(target.root))
    except (ReprotrainError, TypeError) as exc:
        print(f"reprotrain: warning: the sweep's datasets were not logged on {parent} ({exc})", file=sys.stderr)
    return summarize(tracker, original.experiment_id, parent, None, objective, direction)


def _record(tracker: AnyTracker, view: Any, uri: str) -> dict[str, Any]:
    if "reprotrain.config.digest" not in view.tags:
        raise ReprotrainError(
            f"run {view.run_id} in {strip_credentials(uri)} was not launched by reprotrain: nothing to rebuild it from"
        )
    record: dict[str, Any] = tracker.read_json_artifact(view.run_id, "reprotrain/record.json")
    return record


def _sweep_jobs(tracker: AnyTracker, parent: Any, overrides: list[str]) -> list[tuple[Any, dict[str, Any]]]:
    if overrides:
        raise UsageError(
            f"run {parent.run_id} is a sweep: a derived run needs one job",
            hint=f"reprotrain runs --sweep {parent.run_id}, then reprotrain rerun JOB_RUN_ID key=value",
        )
    children = tracker.search([parent.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
    if not children:
        raise ReprotrainError(f"sweep {parent.run_id} has no recorded jobs to rerun")
    children.sort(key=lambda c: int(c.tags.get("reprotrain.job.num", "0")))
    return [(c, _record(tracker, c, tracker.uri)) for c in children]


def _ensure_commit(root: Path, sha: str, run_id: str) -> None:
    if git_adapter.has_commit(root, sha):
        return
    progress(f"commit {sha[:12]} is not here: fetching from the configured git remotes")
    tried = git_adapter.fetch_commit(root, sha)
    if not git_adapter.has_commit(root, sha):
        raise ReprotrainError(
            f"commit {sha} of run {run_id} is not in this repository"
            + (f" nor on its remotes ({', '.join(tried)})" if tried else " and it has no git remote"),
            hint="git fetch <remote> from a remote that has it, then rerun",
        )


def _new_parent(tracker: AnyTracker, original: Any) -> str:
    keep = (
        "mlflow.source.git.commit",
        "reprotrain.git.commit",
        "reprotrain.git.branch",
        "reprotrain.git.remote",
        "reprotrain.pinned",
        "reprotrain.data.digest",
        "reprotrain.data",
        "reprotrain.overrides",
        "reprotrain.sweep",
    )
    tags = {k: original.tags[k] for k in keep if k in original.tags}
    source = ui.Original(original.run_id, original.name, original.experiment_id)
    tags |= {"reprotrain.rerun_of": original.run_id, ui.RUN_NAME: ui.rerun_name(source)}
    tags["reprotrain.launcher"] = this_launcher()  # found by `runs --stale` if this process is killed
    run_id = tracker.create_run(original.experiment_id, tags)
    tracker.set_tags(run_id, {ui.NOTE: ui.rerun_parent_description(source)})
    try:  # the original sweep's record, as this one's: `show` reads it
        record = tracker.read_json_artifact(original.run_id, "reprotrain/record.json")
    except ReprotrainError:
        record = None  # a sweep recorded before sweeps had a record
    if isinstance(record, dict):
        with tempfile.TemporaryDirectory() as tmp:
            record |= {"run_id": run_id, "rerun_of": original.run_id}
            (Path(tmp) / "record.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            tracker.log_artifacts(run_id, Path(tmp), "reprotrain")
    return run_id


def _is_hydra_override(override: str) -> bool:
    """`hydra/launcher=ray`, `hydra.launcher.timeout_min=5`: where the jobs run, not what they compute.
    Other Hydra settings (`hydra.job.env_set.*`, `hydra.job.chdir`) may change what the code sees: a
    derived run, as a config override makes one."""
    key = override.partition("=")[0].lstrip("+~")
    return key == "hydra/launcher" or key.startswith("hydra.launcher.")


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def recorded_launcher(record: dict[str, Any]) -> str:
    """The Hydra launcher a job ran on: recorded since reprotrain 0.1 records it, else the one its
    command line chose (a launcher chosen in the config's defaults is chosen again by composing)."""
    named = record.get("job", {}).get("launcher", {}).get("name")
    if named:
        return str(named)
    given = [o for o in record.get("config", {}).get("hydra_overrides", []) if _key(o) == "hydra/launcher"]
    return given[-1].partition("=")[2] if given else "basic"


def replay_launcher(record: dict[str, Any], given_hydra: list[str]) -> str | None:
    """The launcher a rerun goes through, or None for a rerun in this process: the one given on the
    rerun's command line, else the one a job of a sweep ran on (a job run on its own ran here)."""
    given = [o.partition("=")[2] for o in given_hydra if _key(o) == "hydra/launcher"]
    if given:
        return given[-1]
    ran_in_sweep = bool(record.get("job", {}).get("sweep_dir"))
    launcher = recorded_launcher(record)
    return launcher if ran_in_sweep and launcher != "basic" else None


def _hydra_tokens(record: dict[str, Any], given_hydra: list[str]) -> list[str]:
    """The recorded Hydra overrides with the rerun's own in place of theirs; the recorded sweeper's
    are dropped (the replay lists the jobs), and so are the recorded launcher's settings when the
    rerun names another launcher."""
    recorded = [o for o in record["config"].get("hydra_overrides", []) if MASK not in o.partition("=")[2]]
    recorded = [o for o in recorded if not _key(o).startswith(("hydra/sweeper", "hydra.sweeper."))]
    given_keys = {_key(o) for o in given_hydra}
    if "hydra/launcher" in given_keys and replay_launcher(record, []) != replay_launcher(record, given_hydra):
        recorded = [o for o in recorded if not _key(o).startswith(("hydra/launcher", "hydra.launcher."))]
    return [*(o for o in recorded if _key(o) not in given_keys), *given_hydra]


def _job_lineage(
    original: Any,
    record: dict[str, Any],
    overrides: list[str],
    drift: list[tuple[str, str | None, str | None]],
    given_hydra: list[str] | None = None,
) -> tuple[list[str], Lineage]:
    """One recorded job's overrides to run again (with a derived run's own) and its lineage."""
    derived = bool(overrides)
    config = record["config"]
    # a value masked anywhere in it (`uri=sqlite:///****/x.db`) was never stored: never replayed,
    # unless the rerun gives the launcher's setting again
    given = {_key(o) for o in given_hydra or []}
    masked = [o for o in [*config["overrides"], *config.get("hydra_overrides", [])] if MASK in o.partition("=")[2]]
    masked = [o for o in masked if _key(o) not in given]
    if masked and not derived:
        keys = ", ".join(o.split("=", 1)[0] for o in masked)
        raise ReprotrainError(
            f"run {original.run_id} was given secret value(s) on the command line ({keys}); they were never "
            "stored, so it cannot be rerun exactly",
            hint=f"give them again for a derived run: reprotrain rerun {original.run_id} "
            f"{masked[0].split('=', 1)[0]}=... ; next time pass secrets through the environment (${{oc.env:VAR}})",
        )
    recorded = [o for o in config["overrides"] if o not in masked]
    tag = "reprotrain.derived_from" if derived else "reprotrain.rerun_of"
    tags = {tag: original.run_id, "reprotrain.env_drift": str(len(drift))}
    source = ui.Original(original.run_id, original.name, original.experiment_id, derived)
    shown = Masker(secret_env_values(os.environ) | url_secrets(overrides)).overrides(overrides)
    lineage = Lineage(
        tags=tags,
        expected=None if derived else config["resolved"],
        expected_volatile=tuple(config.get("volatile", [])),
        expected_env_digests=dict(config.get("env_digests", {})),
        original=source,
        name=ui.rerun_name(source, shown),
        branch=str(record.get("git", {}).get("branch") or ""),
    )
    return [*recorded, *overrides], lineage


def _rerun_one(
    tracker: AnyTracker,
    uri: str,
    target: Any,
    original: Any,
    record: dict[str, Any],
    overrides: list[str],
    given_hydra: list[str],
    drift: list[tuple[str, str | None, str | None]],
    options: RerunOptions,
) -> tuple[int, str | None, Verdict | None]:
    """Rerun one recorded job here, in the prepared worktree: (the launch's exit code, new run ID,
    verdict); the verdict's own exit code is the caller's to give, so a code's own 4 or 5 is never
    taken for one."""
    job_overrides, lineage = _job_lineage(original, record, overrides, drift, given_hydra)
    tokens = [f"--config-name={record['config']['name']}", *_hydra_tokens(record, given_hydra), *job_overrides]
    result = launch(
        target,
        tokens,
        RunOptions(timeout=options.timeout, data_verified=True, accept_schema_change=_accepted(record)),
        uri=uri,
        experiment_id=original.experiment_id,
        lineage=lineage,
        argv0=("reprotrain", "rerun", original.run_id),
    )
    new_id = result.run_ids[0] if result.run_ids else None
    return _after_job(tracker, target, (original, record), new_id, result.exit_code, bool(overrides), drift, options)


def _replay(
    tracker: AnyTracker,
    uri: str,
    target: Any,
    jobs: list[tuple[Any, dict[str, Any]]],
    overrides: list[str],
    given_hydra: list[str],
    drift: list[tuple[str, str | None, str | None]],
    options: RerunOptions,
    parent: str | None,
    original: Any,
) -> list[tuple[int, str | None, Verdict | None]]:
    """Rerun the recorded jobs as one Hydra multirun through the launcher (hydra_plugins/
    reprotrain_replay lists them), each job with its own lineage; under ``parent`` for a sweep."""
    planned = [_job_lineage(view, record, overrides, drift, given_hydra) for view, record in jobs]
    first = jobs[0][1]
    settings = {(recorded_launcher(r), tuple(_hydra_tokens(r, given_hydra))) for _, r in jobs}
    if len(settings) > 1:  # one multirun has one launcher and one set of Hydra settings
        raise ReprotrainError(
            f"the jobs of sweep {original.run_id} ran with different launchers or Hydra settings: "
            + "; ".join(f"{name}: {' '.join(tokens) or '(none)'}" for name, tokens in sorted(settings)),
            hint=f"rerun its jobs one by one (reprotrain runs --sweep {original.run_id[:12]}; reprotrain rerun JOB)",
        )
    tokens = ["-m", f"--config-name={first['config']['name']}", *_hydra_tokens(first, given_hydra)]
    try:
        sweep_overrides = tuple(json.loads(original.tags.get("reprotrain.overrides", "[]")))
    except ValueError:
        sweep_overrides = ()
    replay = Replay(tuple((tuple(o), lineage) for o, lineage in planned), parent, sweep_overrides)
    result = launch(
        target,
        tokens,
        RunOptions(
            timeout=options.timeout, data_verified=True, accept_schema_change=any(_accepted(r) for _, r in jobs)
        ),
        uri=uri,
        experiment_id=original.experiment_id,
        # the worktree is detached at the commit: the jobs record the original's branch
        lineage=Lineage(branch=planned[0][1].branch),
        argv0=("reprotrain", "rerun", original.run_id),
        replay=replay,
    )
    by_num = {int(r["num"]): r for r in result.results if "num" in r}
    outcomes = []
    for num, (view, record) in enumerate(jobs):
        job = by_num.get(num, {})
        code = job.get("exit_code")
        if code is None:  # the job never reported: the launcher failed it (its message is above)
            code = result.exit_code or 1
        new_id = job.get("run_id")
        outcomes.append(_after_job(tracker, target, (view, record), new_id, int(code), bool(overrides), drift, options))
    if result.exit_code and all(code == 0 for code, _, _ in outcomes):
        outcomes.append((result.exit_code, None, None))  # the launcher's own failure (a stopped sweep)
    return outcomes


def _after_job(
    tracker: AnyTracker,
    target: Any,
    job: tuple[Any, dict[str, Any]],  # the original's run and its record
    new_id: str | None,
    exit_code: int,
    derived: bool,
    drift: list[tuple[str, str | None, str | None]],
    options: RerunOptions,
) -> tuple[int, str | None, Verdict | None]:
    original, record = job
    if new_id is None:
        return exit_code or 1, None, None
    _log_drift(tracker, new_id, drift)
    if options.rebuilt_env:
        tracker.set_tags(new_id, {"reprotrain.env.rebuilt": options.rebuilt_env})
    if not derived:
        _check_identity(tracker, original.tags, new_id)
    if exit_code != 0:
        return exit_code, new_id, None
    if options.verify and not derived:
        verdict = _verify(tracker, original.run_id, new_id, target.settings.verify_files, options)
        print(verdict_text(verdict, original.run_id, new_id, color=wants_color()))
        if options.rebuilt_env:
            print(_environment_line(tracker, record.get("environment", {}), new_id, options.rebuilt_env))
        return 0, new_id, verdict
    return 0, new_id, None


def _log_drift(tracker: AnyTracker, run_id: str, drift: list[tuple[str, str | None, str | None]]) -> None:
    if not drift:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [{"name": n, "recorded": a, "current": b} for n, a, b in drift]
        (Path(tmp) / "env-drift.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        tracker.log_artifacts(run_id, Path(tmp), "reprotrain")


def _check_identity(tracker: AnyTracker, original_tags: dict[str, str], new_id: str) -> None:
    """A rerun carries the original's commit, data digest and config digest, by construction."""
    new_tags = tracker.get_run(new_id).tags
    for key in ("reprotrain.git.commit", "reprotrain.data.digest", "reprotrain.config.digest"):
        if original_tags.get(key) != new_tags.get(key):
            raise ReprotrainError(
                f"rerun {new_id} differs from the original in {key}: {original_tags.get(key)} != {new_tags.get(key)}"
            )


def _verify(tracker: AnyTracker, run_id: str, new_id: str, patterns: tuple[str, ...], options: RerunOptions) -> Verdict:
    original = tracker.get_run(run_id)
    new = tracker.get_run(new_id)
    files = [_outputs(tracker, rid) for rid in (run_id, new_id)]
    linked = [linked_metrics(_linked_runs(tracker, rid)) for rid in (run_id, new_id)]
    made = [_pipeline_outputs(tracker, rid) for rid in (run_id, new_id)]
    verdict = compare(
        original.metrics,
        new.metrics,
        files[0],
        files[1],
        patterns,
        options.rtol,
        options.atol,
        linked[0],
        linked[1],
        made[0],
        made[1],
    )
    tags = verdict_tags(verdict.outcome)
    note = new.tags.get(ui.NOTE, "")
    if ui.is_ours(note):  # the code's own description is left as it wrote it
        tags[ui.NOTE] = ui.description_with_verdict(note, verdict.outcome, len(verdict.checks))
    tracker.set_tags(new_id, tags)
    with tempfile.TemporaryDirectory() as tmp:
        payload = {
            "original": run_id,
            "rerun": new_id,
            "rtol": options.rtol,
            "atol": options.atol,
            "reproduced": verdict.reproduced,
            "verdict": verdict.outcome,
            "checks": [c.to_dict() for c in verdict.checks],
        }
        (Path(tmp) / "verification.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tracker.log_artifacts(new_id, Path(tmp), "reprotrain")
    return verdict


def verdict_tags(outcome: str) -> dict[str, str]:
    """`reprotrain.verdict` always; `reprotrain.reproduced` only when there was something to compare."""
    tags = {"reprotrain.verdict": outcome}
    if outcome != NOTHING_TO_COMPARE:
        tags["reprotrain.reproduced"] = "true" if outcome == REPRODUCED else "false"
    return tags


def _linked_runs(tracker: AnyTracker, run_id: str) -> list[LinkedRun]:
    """The runs the code created during ``run_id``, with the metrics recorded when it ended."""
    try:
        rows = tracker.read_json_artifact(run_id, f"reprotrain/{LINKED_RUNS}")
    except ReprotrainError:
        return []  # none, or a run recorded before reprotrain linked them
    return load_linked(rows if isinstance(rows, list) else [])


def _outputs(tracker: AnyTracker, run_id: str) -> dict[str, str]:
    try:
        data = tracker.read_json_artifact(run_id, "reprotrain/outputs.json")
    except ReprotrainError:
        return {}
    return data if isinstance(data, dict) else {}


def _pipeline_outputs(tracker: AnyTracker, run_id: str) -> dict[str, str]:
    """path -> DVC hash of what a pipeline run's stages made (its record's `outputs`)."""
    try:
        record = tracker.read_json_artifact(run_id, "reprotrain/record.json")
    except ReprotrainError:
        return {}
    outputs = record.get("outputs", []) if isinstance(record, dict) else []
    return {str(o["path"]): str(o["hash"]) for o in outputs if isinstance(o, dict) and "path" in o and "hash" in o}


def _environment_line(tracker: AnyTracker, old: dict[str, Any], new: str, key: str) -> str:
    """Whether the rerun's code ran in the original's environment (``old``, from its record), from
    the new run's record."""
    try:
        now = tracker.read_json_artifact(new, "reprotrain/record.json").get("environment", {})
    except (ReprotrainError, AttributeError):
        return f"environment: rebuilt ({key[:12]}); the records could not be compared"
    drift = env_drift(old, now)
    if not drift:
        return f"environment: the same Python and packages as the original (rebuilt environment {key[:12]})"
    shown = ", ".join(f"{n} {a or '(absent)'} -> {b or '(absent)'}" for n, a, b in drift[:6])
    return f"environment: differs from the original in {len(drift)} place(s): {shown}"


def _current_environment(recorded: dict[str, Any]) -> dict[str, Any]:
    """The environment to compare with the recorded one: that of the Python the original's
    command ran (another environment's, when the record says so and it is still here), else
    reprotrain's own."""
    from reprotrain.adapters import interpreter

    executable = str(recorded.get("executable") or "")
    if executable and executable != sys.executable and os.path.exists(executable):
        other = interpreter.describe_other(executable)
        if other is not None:
            return other
    return environment()
