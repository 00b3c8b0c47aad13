"""One Hydra job: prepare everything that can fail on bad input before the MLflow run exists,
open the run, run the training code, then log what it left and set the final status.

If the tracking store fails at the end, what was still to be logged is spooled in the state
directory and `reprotrain sync` delivers it later: nothing is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprotrain import __version__
from reprotrain.adapters import code_hook, engine, interpreter
from reprotrain.adapters import git as git_adapter
from reprotrain.adapters import hydra as hydra_adapter
from reprotrain.adapters.dvc_config import default_remote_url as dvc_remote_url
from reprotrain.adapters.dvc_config import remote_secrets as dvc_remote_secrets
from reprotrain.adapters.process import Outcome, load_callable, run_callable, run_command, variables_set
from reprotrain.adapters.store_helper import tracker_for
from reprotrain.adapters.tracking import quick_failure, scan_file, secret_pattern
from reprotrain.core import ui
from reprotrain.core.config import config_differences, flatten_params, interpolate_command
from reprotrain.core.entrypoint import hook_blocked, parse_entrypoint
from reprotrain.core.links import PROJECT
from reprotrain.core.pipeline import inputs_of, outputs_tag
from reprotrain.core.record import MAX_TAG, DataOutput, RunRecord, parse_metrics, run_tags
from reprotrain.core.schema import mlflow_profile, mlflow_schema
from reprotrain.core.secrets import (
    MASK,
    Masker,
    config_strings,
    env_value_digests,
    secret_env_values,
    url_secrets,
)
from reprotrain.errors import ReprotrainError, UsageError
from reprotrain.fileio import NEVER_UPLOADED, Entry, walk_tree
from reprotrain.linking import link_created_runs, write_linked
from reprotrain.progress import progress, tree_size
from reprotrain.query import this_launcher
from reprotrain.render import linked_warning
from reprotrain.settings import STATE_DIR
from reprotrain.spool import Delivery, deliver, spool

if TYPE_CHECKING:
    from reprotrain.launch import Session
    from reprotrain.pipeline import PipelineJob

__all__ = ["dataset_schemas", "run_job"]

STDERR_TAIL = 64 * 1024  # bytes of stderr kept as `reprotrain/stderr-tail.txt`
_IN_PROJECT = (f"sqlite:///{PROJECT}/", f"file://{PROJECT}/")  # a store inside the project (core/links.py)
PLACEHOLDER_RUN_ID = "0" * 32  # stands in for the run ID while the config is checked before the run exists


def _masked_launcher(launcher: dict[str, Any], mask: Masker) -> dict[str, Any]:
    """The launcher's settings as the record keeps them: secret-named keys, known secret values and
    a password in any URL among them (a Ray `runtime_env` variable's `postgresql://u:PW@h`) masked."""
    from reprotrain.core.secrets import config_strings, url_secrets

    config = launcher.get("config", {})
    own = Masker([*mask.values, *url_secrets(config_strings(config))], mask.keys)
    return {**launcher, "config": own.config(config, "hydra.launcher")}


def run_job(session: Session, cfg: Any) -> Any:
    from reprotrain.launch import write_result

    ctx = hydra_adapter.job_context()
    # before anything can fail: Hydra made the output dir already, and a run refused for bad
    # input must not leave it to dirty the tree
    for directory in (ctx.output_dir, *([Path(ctx.sweep_dir)] if ctx.sweep_dir else [])):
        _keep_out_of_git(directory, Path(session.root))
    write_result(session, ctx.num, exit_code=None, started=True)
    if ctx.optimizing_sweeper and not session.settings.objective:
        print(
            f"reprotrain: error: the sweeper {ctx.optimizing_sweeper} optimizes the value each job returns, "
            'but no objective is set (fix: add objective = "<metric in metrics.json>" under [tool.reprotrain])',
            file=sys.stderr,
        )
        write_result(session, ctx.num, exit_code=UsageError.exit_code)
        raise SystemExit(UsageError.exit_code)
    cwd = os.getcwd()
    try:
        job = Job(session, ctx, cfg)
        outcome = job.execute()
    except ReprotrainError as exc:
        print(f"reprotrain: error: {exc}", file=sys.stderr)
        write_result(session, ctx.num, exit_code=exc.exit_code)
        engine.fail_engine_job(exc.exit_code)  # a store the node cannot reach fails the Slurm job too
        return None
    finally:
        os.chdir(cwd)  # a reused launcher worker starts the next job where this one started
    objective = {}
    if session.settings.objective and ctx.sweep_dir:  # the sweep parent names the best job (sweep.py)
        value = job.metrics.get(session.settings.objective)
        objective = {"value": value, "direction": ctx.direction}
    write_result(session, ctx.num, exit_code=outcome.exit_code, run_id=job.run_id, status=outcome.status, **objective)
    reason = f" ({outcome.reason})" if outcome.reason and outcome.status != "FINISHED" else ""
    if job.unrecorded:
        reason += " but not fully recorded (see the error above)"
    print(
        f"reprotrain: run {job.run_id} {outcome.status}{reason}, exit {outcome.exit_code}; "
        f"see: reprotrain show {job.run_id}",
        file=sys.stderr,
    )
    if outcome.status == "KILLED":
        raise SystemExit(outcome.exit_code)  # stop the whole sweep, as the user asked
    if outcome.status == "FAILED":
        engine.fail_engine_job(outcome.exit_code or 1)  # Slurm records the job FAILED too
    if session.settings.objective:
        return job.metrics.get(session.settings.objective)
    return outcome.value


class Job:
    """The life of one run: everything that bad input can break happens before the run exists."""

    def __init__(self, session: Session, ctx: hydra_adapter.JobContext, cfg: Any) -> None:
        self.session = session
        self.ctx = ctx
        self.lineage = session.lineage_for(ctx.num)  # a replayed sweep's jobs each have their own
        self.since_ns = _changed_since(ctx.output_dir, session.started_ns)
        self.cfg = cfg
        self.root = Path(session.root)
        self.entry = parse_entrypoint(session.settings.entrypoint or "")
        self.private = Path(session.session_dir) / "jobs" / f"{ctx.num}.private"  # never uploaded
        self.run_id = ""
        hydra_adapter.register_resolver()
        self.function = None
        if self.entry.module and self.entry.function:
            # the hook is in place before the code's module is imported: a module that binds
            # `from mlflow import start_run` at its top gets the hooked function (inert outside
            # the job); imported before the config resolves, as under Hydra, so that a variable
            # the module sets when imported (`PROJECT_ROOT`, as rootutils sets it) is there
            hook = code_hook.in_process()
            with hook.when_imported("mlflow", hook.install):
                self.function = load_callable(self.entry.module, self.entry.function, self.root)
        # the config resolves in the environment the code gets; a config that names the run
        # (`${reprotrain:run_id}`, `${oc.env:MLFLOW_RUN_ID}`) is checked now with a stand-in ID and
        # resolved again once the run exists: bad input still fails before there is a run
        self.pipeline = self._pipeline_job()
        self._prepare(PLACEHOLDER_RUN_ID)
        blocked = hook_blocked(self.command) if self.command is not None else None
        if blocked:
            print(
                f"reprotrain: warning: reprotrain's MLflow hook will not be in the training code's process: {blocked} "
                "(runs the code makes with a client of its own or in another store may not be found, and "
                "set_experiment/set_tracking_uri before start_run fail as in plain MLflow); fix: keep PYTHONPATH "
                "first, as in PYTHONPATH=$PYTHONPATH:src, and drop -I/-E/-S",
                file=sys.stderr,
            )
        # a launcher's worker (a Slurm or Ray job, a joblib process) is not the launch: it may run
        # on another host, in another Python; it starts no store helper (the launch does, where
        # it serves the next commands), and its record describes where it ran
        in_the_launch = this_launcher() == session.launcher
        self.engine_job = engine.current_job()
        self.environment = session.environment  # the Python the code runs in (see _code_environment)
        if (not in_the_launch and self.environment.get("executable") != sys.executable) or self.engine_job:
            self.environment = interpreter.describe()
        if self.engine_job:
            self.environment = {**self.environment, "engine_job": self.engine_job}
        self.tracker = tracker_for(session.tracking_uri, start=in_the_launch)
        self.metrics: dict[str, float] = {}
        self.unrecorded = False  # the disk was full at the end: the run lacks what the job left
        self.window_ms: tuple[int, int] | None = None

    def _prepare(self, run_id: str) -> None:
        """Resolve the config (once per run ID), and derive from it every value written anywhere."""
        with variables_set(self.code_env(run_id)):
            self.resolved = hydra_adapter.resolve(self.cfg)
            env_keys = hydra_adapter.env_keys(self.cfg, os.environ)
        # a rerun keeps the original's volatile keys (a path under the original's root, replayed
        # in an override, no longer names where the rerun lives), so both digests leave out the same
        self.volatile = sorted(
            set(hydra_adapter.volatile_keys(self.cfg, self.resolved, self.ctx.output_dir, run_id, self.root))
            | set(self.lineage.expected_volatile)
        )
        self.masker = Masker(
            secret_env_values(os.environ | {"MLFLOW_TRACKING_URI": self.session.tracking_uri})
            | Masker.secret_config_values(self.resolved, env_keys)
            | url_secrets([*config_strings(self.resolved), *self.ctx.overrides, *self.session.argv])
            | git_adapter.remote_secrets(self.root)
            | dvc_remote_secrets(self.root),
            keys=env_keys,
        )
        self.public = self.masker.config(self.resolved)  # what is written anywhere but the code's copy
        self.env_digests = env_value_digests(self.resolved, env_keys)
        self._check_expected()
        if self.pipeline is not None:
            with variables_set(self.code_env(run_id)):  # ${oc.env:...} as the job's resolution saw it
                self.pipeline.compose(
                    self.root / self.session.settings.config_dir,
                    self.ctx.config_name,
                    list(self.ctx.overrides),
                    self.resolved,
                    self.volatile,
                )
            self.command: str | None = self.pipeline.command()
            return
        self.command = None if self.entry.is_callable else interpolate_command(self.entry.text, self.resolved)

    def _pipeline_job(self) -> PipelineJob | None:
        plan = self.session.pipeline
        if plan is None:
            return None
        from reprotrain.pipeline import PipelineJob

        job = PipelineJob(
            plan,
            root=self.root,
            git_root=self.session.check.git_root,
            commit=self.session.check.git.commit,
            force=bool(self.lineage.tags),  # a rerun (or a derived run) recomputes every stage
            params=self.private / "params.yaml",
        )
        job.warn_unread(list(self.ctx.overrides), list(self.ctx.choices))
        return job

    def code_env(self, run_id: str) -> dict[str, str]:
        """The variables the training code runs with (DESIGN.md §4), and those of the hook that
        keeps MLflow working as the code expects (adapters/code_site)."""
        session = self.session
        env = {
            "MLFLOW_TRACKING_URI": session.tracking_uri,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": session.experiment_id,
            # any other run the code creates through MLflow's fluent API carries this tag
            "MLFLOW_RUN_CONTEXT": json.dumps({"reprotrain.launched_by": run_id}),
            "REPROTRAIN_CONFIG": str(self.private / "config.yaml"),
            "REPROTRAIN_OUTPUT_DIR": str(self.ctx.output_dir),
            "REPROTRAIN_RUN_ID": run_id,
        }
        env |= interpreter.first_on_path()
        env |= code_hook.hook_environment(
            run_id, session.tracking_uri, session.experiment_id, self.private / "links.jsonl"
        )
        # MLflow's default is 7 retries with exponential back-off: code whose server went away
        # would hang for minutes at exit (closing its run). A shorter budget, unless set by the user.
        for key, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")):
            if key not in os.environ:
                env[key] = value
        return env

    def _check_expected(self) -> None:
        expected = self.lineage.expected
        if expected is None:
            return
        ignore = set(self.volatile) | set(self.lineage.expected_volatile)
        # a value recorded masked was never stored: it cannot be compared (rerun warned about it)
        ignore |= {k for k, v, _ in config_differences(expected, {}, ()) if v == MASK}
        differences = config_differences(expected, self.public, ignore)
        recorded = self.lineage.expected_env_digests
        differences += [
            (key, "(value from the environment, recorded as a digest)", "a different value")
            for key, digest in sorted(self.env_digests.items())
            if key in recorded and recorded[key] != digest and key not in ignore
        ]
        if differences:
            raise ReprotrainError(
                "the config composed at the recorded commit differs from the recorded one: "
                + "; ".join(f"{k}: recorded {a!r}, now {b!r}" for k, a, b in differences[:5])
                + (f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""),
                hint="set what changed (an environment variable read with ${oc.env:...}?) as it was, "
                "or start a derived run with `reprotrain rerun RUN_ID key=value`",
            )

    def record(self) -> RunRecord:
        check = self.session.check
        mask = self.masker
        executed = self.command if self.command is not None else self.entry.text
        data = inputs_of(check.data, self.pipeline.plan, self.pipeline.prefix) if self.pipeline else check.data
        return RunRecord(
            run_id=self.run_id,
            pinned=check.pinned,
            problems=check.problems,
            git=check.git,
            data=data,
            outputs=self.pipeline.outputs if self.pipeline else [],
            pipeline=self.pipeline.record() if self.pipeline else {},
            schemas={o.path: check.schemas[o.path] for o in data if o.path in check.schemas},
            schema_changes=check.accepted,
            config_name=self.ctx.config_name,
            config_dir=self.session.settings.config_dir,
            overrides=mask.overrides(self.ctx.overrides),
            hydra_overrides=mask.overrides(self.ctx.hydra_overrides),
            choices=self.ctx.choices,
            resolved=self.public,
            volatile=self.volatile,
            env_digests=self.env_digests,
            command={
                "argv": mask.overrides(self.session.argv),
                "entrypoint": self.entry.text,
                "executed": mask.text(executed),
            },
            environment=self.environment,
            reprotrain_version=__version__,
            job={
                "name": self.ctx.name,
                "num": self.ctx.num,
                "sweep_dir": self.ctx.sweep_dir,
                **({"launcher": _masked_launcher(self.ctx.launcher, mask)} if self.ctx.launcher else {}),
            },
        )

    def execute(self) -> Outcome:
        record = self.record()  # with the stand-in run ID: values naming the run are volatile, so
        tags = (  # the config digest is already the one of the resolution with the real ID
            run_tags(record)
            | {
                "mlflow.source.name": self.entry.text[:500],
                "mlflow.source.type": "LOCAL",
                "mlflow.user": _user(),
                "reprotrain.job.num": str(self.ctx.num),
                "reprotrain.launcher": this_launcher(),
            }
            | self.lineage.tags
        )
        if self.session.sweep_overrides is not None:
            from reprotrain.sweep import parent_for_job

            tags["mlflow.parentRunId"] = parent_for_job(self.session, self.tracker)
            tags["reprotrain.sweep_id"] = tags["mlflow.parentRunId"]
        # set once, at creation: training code that names the run (`start_run(run_name=...)`) renames it
        tags[ui.RUN_NAME] = self.masker.text(self._run_name(record))
        self.run_id = self.tracker.create_run(self.session.experiment_id, tags)
        staging = Path(self.session.root) / ".reprotrain" / "runs" / self.run_id
        staging.mkdir(parents=True, exist_ok=True)
        self.private.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(1, "FAILED", "reprotrain failed before the training code started")
        try:
            if hydra_adapter.names_the_run(self.cfg):
                self._prepare(self.run_id)
            record = self.record()
            (staging / "record.json").write_text(record.to_json(), encoding="utf-8")
            (staging / "config.yaml").write_text(hydra_adapter.to_yaml(self.public), encoding="utf-8")
            (self.private / "config.yaml").write_text(hydra_adapter.to_yaml(self.resolved), encoding="utf-8")
            remote = self.masker.text(dvc_remote_url(self.root))  # a token in its query string too
            note = self._description(record, remote, tags.get("mlflow.parentRunId"))
            self.tracker.set_tags(self.run_id, {ui.NOTE: note})
            # the config's params are logged when the code is done (spool.deliver): the code may
            # log the same keys itself, with its own values, and MLflow params cannot change
            schemas = dataset_schemas(self.session.check.schemas, record.data, self.masker)
            self.tracker.log_data_inputs(self.run_id, record.data, remote, schemas)
            self.tracker.log_artifacts(self.run_id, staging, "reprotrain", self.masker)
            unpinned = Path(self.session.session_dir) / "unpinned"
            self.tracker.log_artifacts(self.run_id, unpinned, "reprotrain/unpinned", self.masker)
            outcome = self._run_code(staging)
        except ReprotrainError as exc:
            outcome = Outcome(exc.exit_code, "FAILED", str(exc))
            print(f"reprotrain: error: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            outcome = Outcome(130, "KILLED", "stopped by SIGINT")
        finally:
            self._finish(staging, self.private, outcome)
        return outcome

    def _run_name(self, record: RunRecord) -> str:
        """What the UI lists the run as (core/ui.py): a rerun's is given; a `hydra.job.name` the
        user set is kept; else the overrides (a sweep's job: the sweep's, then its own)."""
        lineage = self.lineage
        if lineage.name:
            return lineage.name
        if self.ctx.name != self.entry.job_name:
            return ui.clip_name(self.ctx.name)
        if self.session.sweep_overrides is not None:
            sweep = self.masker.overrides(self.session.sweep_overrides)
            return ui.sweep_job_name(record.overrides, sweep, record.config_name)
        return ui.run_name(record.overrides, record.config_name, self.session.settings.config_name)

    def _description(self, record: RunRecord, remote: str, parent: str | None) -> str:
        sweep = ""
        if parent:
            name = ui.sweep_name(self.masker.overrides(self.session.sweep_overrides or []))
            sweep = f"{ui.run_link(self.session.experiment_id, parent, name)}, job {self.ctx.num}"
        text = ui.run_description(record, self.run_id, remote, self.lineage.original, sweep)
        return self.masker.text(text)[:MAX_TAG]

    def _run_code(self, staging: Path) -> Outcome:
        self.ctx.output_dir.mkdir(parents=True, exist_ok=True)
        env = self.code_env(self.run_id)
        log = staging / "console.log"
        timeout = self.session.options.timeout or self.session.settings.timeout
        started = int(time.time() * 1000)
        try:
            if self.pipeline is not None:
                outcome = self.pipeline.run(
                    os.environ | env, log, timeout, STDERR_TAIL, staging / "pipeline", list(self.masker.values)
                )
            elif self.function is None:
                assert self.command is not None
                outcome = run_command(self.command, self.root, os.environ | env, log, timeout, STDERR_TAIL)
            else:
                outcome = _call_in_run(self.function, hydra_adapter.to_config(self.resolved), env, log, timeout)
        finally:
            self.window_ms = (started, int(time.time() * 1000))
        if self.session.check.pinned:
            _warn_repository_changes(self.root)
        if self.pipeline is not None:  # a pipeline runs in reprotrain's Python (its runner)
            self._warn_other_pythons()
        elif self.function is None:
            self._code_environment()
        if outcome.stderr_tail:
            try:
                (staging / "stderr-tail.txt").write_bytes(outcome.stderr_tail)
            except OSError:  # a full disk: the code's outcome matters more than its tail
                pass
        return outcome

    def _code_environment(self) -> None:
        """The record describes the Python the command ran (noted by the hook in its process),
        when that is not reprotrain's own (`conda run -n other python train.py`, a second venv)."""
        noted = code_hook.first_python(self.private / "links.jsonl")
        if noted is None or interpreter.same_environment(str(noted["prefix"])):
            return
        described = interpreter.describe_other(str(noted.get("python") or ""))
        if described is None:
            print(
                f"reprotrain: warning: the code ran in the Python at {noted.get('python')}, which could not be "
                "asked for its packages: the record describes reprotrain's environment instead",
                file=sys.stderr,
            )
            return
        self.environment = described | ({"engine_job": self.engine_job} if self.engine_job else {})

    def _warn_other_pythons(self) -> None:
        """One line when a pipeline's stages ran a Python other than reprotrain's (whose
        environment a pipeline run records: its runner's), naming each."""
        others = dict.fromkeys(
            str(noted.get("python") or noted["prefix"])
            for noted in code_hook.pythons(self.private / "links.jsonl")
            if not interpreter.same_environment(str(noted["prefix"]))
        )
        if others:
            print(
                f"reprotrain: warning: the pipeline's stages ran {', '.join(others)}, not reprotrain's Python "
                f"({sys.executable}): the run records reprotrain's environment only, so a rerun rebuilds that one "
                "(fix: run the stages with `python` from reprotrain's environment)",
                file=sys.stderr,
            )

    def _finish(self, staging: Path, private: Path, outcome: Outcome) -> None:
        """Log what the job left and set the final status, whatever the code did to the run; on
        a full disk, close the run with what the store can still take and say so in one line."""
        try:
            self._deliver(staging, private, outcome)
        except OSError as disk:
            self.unrecorded = True
            closed = self._close_bare(outcome)
            print(
                f"reprotrain: error: could not finish recording run {self.run_id}: {disk.strerror or disk} "
                f"on the disk of {self.session.root} ("
                + (
                    f"the run is closed {outcome.status} without its outputs, metrics and console log"
                    if closed
                    else "the run stays RUNNING; once there is room, `reprotrain runs --reap` marks it KILLED"
                )
                + f"; the code exited {outcome.exit_code}; fix: free space on that disk, then rerun)",
                file=sys.stderr,
            )

    def _close_bare(self, outcome: Outcome) -> bool:
        """The final status and exit code alone (a few bytes), when nothing else could be written."""
        try:
            self.tracker.set_tags(self.run_id, {"reprotrain.exit_code": str(outcome.exit_code)})
            self.tracker.terminate(self.run_id, outcome.status)
        except (ReprotrainError, OSError):
            return False
        return True

    def _deliver(self, staging: Path, private: Path, outcome: Outcome) -> None:
        with quick_failure():
            tags = self._linked_runs(staging, private / "links.jsonl", outcome.status)
        shutil.rmtree(private, ignore_errors=True)
        for name in ("console.log", "stderr-tail.txt"):
            path = staging / name
            if path.is_file() and (masked := self.masker.data(path.read_bytes())) is not None:
                path.write_bytes(masked)
        if self.environment is not self.session.environment or self.pipeline is not None:
            (staging / "record.json").write_text(self.record().to_json(), encoding="utf-8")
        produced, entries = self._own_outputs(staging)
        try:
            self._send(staging, outcome, tags, produced, entries)
        finally:
            if produced != self.ctx.output_dir:  # the view of hard links (spool() copied it)
                shutil.rmtree(produced, ignore_errors=True)

    def _send(
        self, staging: Path, outcome: Outcome, tags: dict[str, str], produced: Path, entries: list[Entry]
    ) -> None:
        outputs = self._outputs(entries)
        (staging / "outputs.json").write_text(json.dumps(outputs, indent=2) + "\n", encoding="utf-8")
        self.metrics = self._read_metrics(produced)
        if self.pipeline is not None:
            self.metrics |= self._pipeline_metrics()
            if self.pipeline.outputs:
                tags["reprotrain.outputs"] = outputs_tag(self.pipeline.outputs, MAX_TAG)
                if len(tags["reprotrain.outputs"]) < len(outputs_tag(self.pipeline.outputs, 1 << 30)):
                    tags["reprotrain.outputs_truncated"] = "true"  # `runs --data` then reads the record
        tags["reprotrain.exit_code"] = str(outcome.exit_code)
        if outcome.reason:
            tags["reprotrain.status_reason"] = self.masker.text(outcome.reason)[:5000]
        delivery = Delivery(
            tracking_uri=self.session.tracking_uri,
            run_id=self.run_id,
            metrics=self.metrics,
            timestamp_ms=int(time.time() * 1000),
            tags=tags,
            status=outcome.status,
            artifacts=[(str(produced), None), (str(staging), "reprotrain")],
            mask_values=list(self.masker.values),
            params=flatten_params(self.public),
        )
        files, size = tree_size(produced, staging)
        progress(f"uploading {files} file(s), {size / 1e6:.1f} MB, to run {self.run_id}")
        try:
            with quick_failure():
                # one cheap call first: artifact uploads retry on their own terms, for minutes,
                # against a server that is gone; spool at once instead
                self.tracker.get_run(self.run_id)
                deliver(self.tracker, delivery)
        except ReprotrainError as exc:
            where = spool(Path(self.session.root) / ".reprotrain", delivery)  # OSError: see _finish
            print(
                f"reprotrain: warning: could not finish logging run {self.run_id} ({exc}); "
                f"saved in {where}: run `reprotrain sync` when the store is back",
                file=sys.stderr,
            )
            return
        shutil.rmtree(staging, ignore_errors=True)

    def _linked_runs(self, staging: Path, links_file: Path, status: str) -> dict[str, str]:
        """Runs the training code created itself, found, linked both ways, recorded and named."""
        try:
            runs, tags = link_created_runs(self.tracker, self.run_id, links_file, self.window_ms, self.root, status)
        except ReprotrainError as exc:
            print(f"reprotrain: warning: could not look for runs the training code created ({exc})", file=sys.stderr)
            return {}
        if runs:
            write_linked(runs, staging)
            print(self.masker.text(linked_warning(self.run_id, runs, self.session.experiment_id)), file=sys.stderr)
            if self.lineage.tags and any(r.store.startswith(_IN_PROJECT) for r in runs):
                print(
                    f"reprotrain: note: the training code's own store is inside the rerun's worktree {self.root}, "
                    "which is removed afterwards: its runs there are kept only as reprotrain/linked-runs.json "
                    "(rerun --keep keeps the worktree)",
                    file=sys.stderr,
                )
        return tags

    def _own_outputs(self, staging: Path) -> tuple[Path, list[Entry]]:
        """The output dir as the job left it, or, when it holds more than this job's files, a tree of
        hard links to those alone beside the staging dir: never `.git`, the DVC cache or reprotrain's
        state (an output dir that holds the project), never files an earlier run left there (a
        literal `hydra.run.dir: outputs/latest` is reused: a file this job did not write or change
        since it started is an earlier run's), never the `.gitignore` reprotrain put there."""
        from reprotrain.adapters.tracking import upload_tree

        out = self.ctx.output_dir
        pruned: list[str] = []
        entries = list(walk_tree(out, prune=NEVER_UPLOADED, pruned=pruned))
        since = self.since_ns
        own: list[Entry] = []
        earlier: list[Entry] = []
        for entry in entries:
            if entry.rel == ".gitignore" and _is_marker(out / ".gitignore"):
                earlier.append(entry)  # reprotrain's, not the job's
                continue
            try:
                changed = os.lstat(out / entry.rel).st_ctime_ns
            except OSError:
                changed = since
            (own if not since or changed >= since else earlier).append(entry)
        if not pruned and not earlier:
            return out, entries
        left = [e.rel for e in earlier if not (e.rel == ".gitignore" and _is_marker(out / ".gitignore"))]
        if pruned or left:
            print(
                f"reprotrain: note: not uploaded from the output dir {out}: "
                + ", ".join(
                    [*(f"{p}/ (never uploaded)" for p in pruned[:5])]
                    + ([f"{len(left)} file(s) an earlier run left there ({', '.join(left[:5])})"] if left else [])
                ),
                file=sys.stderr,
            )
        view = staging.parent / f"{staging.name}.outputs"
        shutil.rmtree(view, ignore_errors=True)
        try:
            return upload_tree(out, view, entries=own), own
        except BaseException:
            shutil.rmtree(view, ignore_errors=True)
            raise

    def _outputs(self, entries: list[Entry]) -> dict[str, str]:
        """sha256 of every output file; a link that is not followed (out of the output dir, to a
        directory, dangling) as `symlink:<target>`. What the upload leaves out is named in one
        warning line: those links, special files, unreadable files, and binary files that hold a
        secret (masking would corrupt them)."""
        outputs: dict[str, str] = {}
        left_out = []
        secrets = secret_pattern(self.masker)
        for entry in entries:
            if entry.source is not None:
                scan = scan_file(entry, secrets)
                if scan.error:
                    left_out.append(f"{entry.rel} ({scan.error})")
                    continue
                outputs[entry.rel] = scan.sha256
                if scan.held_back:
                    left_out.append(f"{entry.rel} (a binary file that holds a secret)")
            elif entry.kind == "link":
                outputs[entry.rel] = f"symlink:{entry.target}"
                left_out.append(f"{entry.rel} -> {entry.target}")
            else:
                left_out.append(f"{entry.rel} ({'unreadable' if entry.kind == 'unreadable' else 'not a regular file'})")
        if left_out:
            print(
                self.masker.text(
                    f"reprotrain: warning: not uploaded from the output dir {self.ctx.output_dir} (a link is never "
                    "followed out of it, a FIFO or socket never opened, a binary file holding a secret never "
                    f"sent): {', '.join(left_out[:20])}"
                    + (f" and {len(left_out) - 20} more" if len(left_out) > 20 else "")
                ),
                file=sys.stderr,
            )
        return outputs

    def _pipeline_metrics(self) -> dict[str, float]:
        assert self.pipeline is not None
        found, warnings = parse_metrics(self.pipeline.metrics, "the pipeline's metrics files")
        for warning in warnings:
            print(f"reprotrain: warning: {warning}", file=sys.stderr)
        return found

    def _read_metrics(self, produced: Path) -> dict[str, float]:
        """The metrics files this job wrote (one an earlier run left in a reused dir is not read)."""
        metrics: dict[str, float] = {}
        top = os.path.realpath(produced)
        for name in ("metrics.json", *self.session.settings.metrics_files):
            path = produced / name
            if not path.is_file():
                continue
            if not os.path.realpath(path).startswith(top + os.sep):
                print(f"reprotrain: warning: {path} is a link out of the output dir; not read", file=sys.stderr)
                continue
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                print(
                    f"reprotrain: warning: {path} is not valid JSON ({exc}); its metrics are not logged",
                    file=sys.stderr,
                )
                continue
            found, warnings = parse_metrics(payload, str(path))
            for warning in warnings:
                print(f"reprotrain: warning: {warning}", file=sys.stderr)
            metrics.update(found)
        return metrics


def dataset_schemas(
    schemas: Mapping[str, Any], outputs: list[DataOutput], masker: Masker
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """The MLflow schema (column names masked) and the profile fields of each table among the
    inputs (adapters/tables read them at the gate). The same for a sweep's parent and its jobs:
    MLflow keeps one dataset per name and digest in an experiment, and the first to log it sets it."""
    found = {}
    for output in outputs:
        schema = schemas.get(output.path)
        if schema is not None:
            found[output.path] = (mlflow_schema(schema, masker.text), mlflow_profile(schema))
    return found


def _call_in_run(function: Any, cfg: Any, env: dict[str, str], log: Path, timeout: float | None) -> Outcome:
    """Call the function with the environment a command would get, and MLflow as a fresh process
    would see it: the run is offered through MLFLOW_RUN_ID, so the code's first run (its own
    `start_run`, or its first `mlflow.log_*`) attaches to it, and the hook (adapters/code_site)
    is in place the moment the code imports MLflow (a launch served by the store's helper has not
    imported it, and code that never uses it should not pay for the import). Afterwards the runs
    the code left active are ended and MLflow's process-global state is put back, so nothing of
    this job reaches the next one in a reused launcher worker, nor reprotrain's own bookkeeping."""
    saved = dict(os.environ)  # the whole environment: the next job in this worker starts clean
    os.environ.update(env)
    hook = code_hook.in_process()
    try:
        with hook.when_imported("mlflow", hook.install):
            outcome = run_callable(function, cfg, log, timeout, STDERR_TAIL)
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None:
            hook.tidy(mlflow, outcome.status)
        return outcome
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a container is not worth failing a run
        return "unknown"


_MARKER = "# Hydra output dir of a reprotrain run: never committed (reprotrain wrote this file)\n*\n"


def _is_marker(path: Path) -> bool:
    try:
        return path.read_text(encoding="utf-8") == _MARKER
    except (OSError, UnicodeDecodeError):
        return False


def _keep_out_of_git(directory: Path, root: Path) -> None:
    """An output dir inside the repository (`hydra.run.dir: outputs/${now:...}`, or a literal one)
    gets a `.gitignore` of `*`, as reprotrain's state dir has: the run never dirties the tree, so
    the next run is not refused. Not for a directory git tracks files in, or reprotrain's own."""
    try:
        rel = directory.resolve().relative_to(root.resolve())
    except ValueError:
        return  # outside the repository
    if not rel.parts or rel.parts[0] == STATE_DIR or (directory / ".gitignore").exists():
        return
    try:
        if git_adapter.tracked_paths(root, [rel.as_posix()]):
            return
        (directory / ".gitignore").write_text(_MARKER, encoding="utf-8")
    except Exception:  # noqa: BLE001 - a note for git must never fail the run
        return


def _warn_repository_changes(root: Path) -> None:
    """One line when the training code changed the repository (rewrote a tracked file, wrote a
    new one outside the output dir): the next run is refused until that is committed or undone."""
    try:
        changed = git_adapter.changes(root)
    except Exception:  # noqa: BLE001 - a warning must never fail the run
        return
    if changed:
        print(
            f"reprotrain: warning: the repository changed while the code ran (the code wrote into it, or it "
            f"was edited meanwhile): {', '.join(changed[:8])}"
            + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
            + "; the next run is refused until the tree is clean (fix: write outputs to the output dir, "
            "$REPROTRAIN_OUTPUT_DIR, or list them in .gitignore; undo with `git checkout -- <file>`)",
            file=sys.stderr,
        )


_CLOCK_SLACK_NS = 50_000_000  # a filesystem's timestamps are coarse (a few ms): files of this job stay in


def _changed_since(directory: Path, started_ns: int) -> int:
    """The launch's start on the clock of ``directory``'s filesystem (an NFS server's, for a
    cluster's scratch dir): a file made there now is stamped, and the wall time elapsed since the
    launch began is taken off. 0 (everything counts as the job's) when nothing can be made there."""
    import tempfile

    if not started_ns:
        return 0
    try:
        fd, name = tempfile.mkstemp(prefix=".reprotrain-clock-", dir=directory)
        try:
            stamped = os.fstat(fd).st_ctime_ns
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError:
        return max(0, started_ns - _CLOCK_SLACK_NS)
    since = stamped - (time.time_ns() - started_ns)
    try:  # Hydra wrote this job's config just now: whatever the hosts' clocks say, it is the job's
        since = min(since, (directory / ".hydra" / "config.yaml").stat().st_ctime_ns)
    except OSError:
        pass
    return max(0, since - _CLOCK_SLACK_NS)
