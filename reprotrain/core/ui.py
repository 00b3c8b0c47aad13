"""What a run shows in the MLflow UI: its name, its description (markdown in `mlflow.note.content`),
the experiment's kind, links between runs. Plain text from plain data; the tags DESIGN.md §5
promises are untouched (core/record.py writes them).

MLflow 3.17's UI (measured by scripts/ui_check.py): runs without `mlflow.runName` get a random name;
an experiment without `mlflow.experimentKind` opens in GenAI mode; the run overview cuts tag keys
to about ten characters, so every `reprotrain.*` tag reads `reprotrai…` there: the description
names each digest in full words instead. Its links are the UI's hash routes.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprotrain.core.record import PINNED_BY_GIT, RunRecord

__all__ = [
    "EXPERIMENT_KIND",
    "MAX_NAME",
    "NOTE",
    "RUN_NAME",
    "TRAINING",
    "Best",
    "Original",
    "best_job",
    "best_line",
    "clip_name",
    "dataset_profile",
    "dataset_source",
    "description_with_verdict",
    "experiment_route",
    "rerun_parent_description",
    "is_ours",
    "rerun_name",
    "run_description",
    "run_link",
    "run_name",
    "run_route",
    "sweep_description",
    "sweep_job_name",
    "sweep_name",
    "with_best",
]

RUN_NAME = "mlflow.runName"
NOTE = "mlflow.note.content"  # the run's description in the UI (markdown)
EXPERIMENT_KIND = "mlflow.experimentKind"  # read by the UI to choose its mode
TRAINING = "custom_model_development"  # the UI's model-training mode (GenAI: "genai_development")
MAX_NAME = 80
_FOOTER = "_recorded by reprotrain; the whole record: artifact reprotrain/record.json_"  # is_ours
_MAX_LISTED = 20  # data outputs or problems listed one by one; the record holds them all
_SHORT = 12


@dataclass(frozen=True)
class Original:
    """The run a rerun (or a derived run) was made from, as the UI links it."""

    run_id: str
    name: str
    experiment_id: str
    derived: bool = False


def clip_name(text: str, limit: int = MAX_NAME) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def run_name(overrides: Sequence[str], config_name: str, default_config: str) -> str:
    """What ran: the overrides as typed (`+experiment=x model.lr=0.1`), after the config name when
    it is not the project's default; the config name alone without overrides. Overrides come
    masked (a secret value reads `****`)."""
    words = list(overrides)
    if config_name != default_config or not words:
        words.insert(0, config_name)
    return clip_name(" ".join(words))


def sweep_name(overrides: Sequence[str]) -> str:
    return clip_name("sweep: " + (" ".join(overrides) or "(no overrides)"))


def sweep_job_name(job_overrides: Sequence[str], sweep_overrides: Sequence[str], config_name: str) -> str:
    """A sweep's job: what all its jobs share (the sweep's fixed overrides), then the job's own
    (`+experiment=x: model.lr=0.2`); own: not given as such to the sweep. Listed under the sweep's
    run (`sweep: ...`) in the UI."""
    shared = set(sweep_overrides)
    fixed = [o for o in job_overrides if o in shared]
    own = [o for o in job_overrides if o not in shared]
    if not own:
        return clip_name(" ".join(fixed) or config_name)
    return clip_name(f"{' '.join(fixed)}: {' '.join(own)}" if fixed else " ".join(own))


def rerun_name(original: Original, overrides: Sequence[str] = ()) -> str:
    """`rerun of <original's name>`; a derived run adds the overrides it changed."""
    base = f"rerun of {original.name or original.run_id[:_SHORT]}"
    return clip_name(f"{base} with {' '.join(overrides)}" if overrides else base)


# MLflow 3.17's UI picks GenAI or model-training mode per browser (its sidebar switch, default
# GenAI), not per experiment; this query parameter of its hash routes picks model training
TRAINING_VIEW = "workflowType=machine_learning"


def run_route(experiment_id: str, run_id: str) -> str:
    """The UI's address of a run, relative to the UI (its hash router), in model-training mode."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def experiment_route(experiment_id: str) -> str:
    return f"#/experiments/{experiment_id}?{TRAINING_VIEW}"


def run_link(experiment_id: str, run_id: str, text: str) -> str:
    label = text.replace("[", "(").replace("]", ")") or run_id
    return f"[{label}]({run_route(experiment_id, run_id)})"


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def _commit_line(commit: str, branch: str, remote: str) -> str:
    if not commit:
        return "- **commit** none (not a git repository with a commit)"
    where = f" on branch {_code(branch)}" if branch else " (detached HEAD)"
    return f"- **commit** {_code(commit[:_SHORT])}{where}" + (f" of {_code(remote)}" if remote else "")


def _pinned_lines(pinned: bool, problems: Sequence[Any]) -> list[str]:
    if pinned:
        return ["- **pinned** yes: code, config and data are those of the commit"]
    lines = [f"- **pinned** no: launched with --allow-unpinned; {len(problems)} problem(s):"]
    lines += [f"  - {_code(str(p))}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  - and {len(problems) - _MAX_LISTED} more (reprotrain/record.json)")
    return lines


def _data_lines(outputs: Sequence[Any], digest: str, remote: str) -> list[str]:
    if not outputs:
        return ["- **data** none tracked by DVC"]
    lines = [f"- **data digest** {_code(digest[:_SHORT])} over {len(outputs)} output(s):"]
    for o in outputs[:_MAX_LISTED]:
        files = f", {o.nfiles} files" if o.nfiles else ""
        source = o.source.removesuffix(PINNED_BY_GIT)
        kept = " (kept in git)" if o.source.endswith(PINNED_BY_GIT) else ""
        lines.append(f"  - {_code(o.path)}: {_code(o.hash[:_SHORT])}{files}, from {_code(source)}{kept}")
    if len(outputs) > _MAX_LISTED:
        lines.append(f"  - and {len(outputs) - _MAX_LISTED} more (reprotrain/record.json)")
    if remote:
        lines.append(f"  - DVC remote {_code(remote)}")
    return lines


def _origin_line(original: Original) -> str:
    how = "derived from" if original.derived else "rerun of"
    label = original.name or original.run_id[:_SHORT]
    return f"- **{how}** {run_link(original.experiment_id, original.run_id, label)} {_code(original.run_id)}"


def run_description(
    record: RunRecord, run_id: str, remote: str = "", original: Original | None = None, sweep: str = ""
) -> str:
    """The markdown the UI shows as the run's description (its first lines until "Show more"):
    where it came from, commit, pinned state, config and data digests (labelled: the overview cuts
    the tag keys that carry them), the command that launched it and the one that reruns it."""
    lines = []
    if original is not None:
        lines.append(_origin_line(original))
    if sweep:
        lines.append(f"- **sweep** {sweep}")
    lines.append(_commit_line(record.git.commit, record.git.branch, record.git.remote))
    lines += _pinned_lines(record.pinned, record.problems)
    config = _code(record.config_name) + (f" with {_code(' '.join(record.overrides))}" if record.overrides else "")
    lines.append(f"- **config digest** {_code(record.config_digest[:_SHORT])}: {config}")
    lines += _data_lines(record.data, record.data_digest, remote)
    argv = record.command.get("argv") or []
    if argv:
        lines.append(f"- **launched as** {_code(shlex.join(argv))}")
    lines.append(f"- **rerun it** {_code(f'reprotrain rerun {run_id} --verify')}")
    return "\n".join([*lines, "", _FOOTER]) + "\n"


def rerun_parent_description(original: Original) -> str:
    """A sweep's rerun parent: the original sweep, linked."""
    return "\n".join([_origin_line(original) + " (every job)", "", _FOOTER]) + "\n"


def is_ours(note: str | None) -> bool:
    """Whether a description is reprotrain's (training code may write its own: that one is kept)."""
    return bool(note) and _FOOTER in str(note)


def description_with_verdict(note: str, verdict: str, checks: int) -> str:
    """The description with the `rerun --verify` verdict, after the link to the original (once)."""
    lines = [line for line in note.rstrip("\n").splitlines() if not line.startswith("- **verdict**")]
    said = verdict.replace("-", " ")
    line = f"- **verdict** {said} (rerun --verify, {checks} check(s); reprotrain/verification.json)"
    at = next((i + 1 for i, text in enumerate(lines) if text.startswith("- **rerun of**")), 0)
    return "\n".join([*lines[:at], line, *lines[at:]]) + "\n"


@dataclass(frozen=True)
class Best:
    run_id: str
    value: float
    num: int


def best_job(results: Sequence[Mapping[str, Any]], direction: str) -> Best | None:
    """The finished job whose objective value is lowest (``direction`` `minimize`) or highest."""
    scored = [
        Best(str(r["run_id"]), float(r["value"]), num)
        for num, r in enumerate(results)
        if r.get("run_id") and isinstance(r.get("value"), (int, float)) and not isinstance(r.get("value"), bool)
    ]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda b: b.value)


def sweep_description(
    argv: Sequence[str],
    overrides: Sequence[str],
    git: Any,
    pinned: bool,
    problems: Sequence[Any],
    outputs: Sequence[Any],
    data_remote: str,
    run_id: str,
) -> str:
    """A sweep parent's description; the best job is added when the sweep ends (best_line)."""
    from reprotrain.core.record import data_digest

    lines = [f"- **sweep over** {_code(' '.join(overrides) or '(no overrides)')}"]
    lines.append(_commit_line(git.commit, git.branch, git.remote))
    lines += _pinned_lines(pinned, problems)
    lines += _data_lines(outputs, data_digest(outputs), data_remote)
    if argv:
        lines.append(f"- **launched as** {_code(shlex.join(argv))}")
    lines.append(f"- **rerun it** {_code(f'reprotrain rerun {run_id} --verify')} (every job, under a new sweep run)")
    return "\n".join([*lines, "", _FOOTER]) + "\n"


def with_best(note: str, line: str) -> str:
    """A sweep's description with its best job, on the line after the sweep's overrides."""
    lines = [text for text in note.rstrip("\n").splitlines() if not text.startswith("- **best job**")]
    return "\n".join([*lines[:1], line, *lines[1:]]) + "\n"


def best_line(objective: str, direction: str, best: Best, name: str, experiment_id: str, jobs: int) -> str:
    label = name or best.run_id[:_SHORT]
    return (
        f"- **best job** by {_code(objective)} ({direction}d, {jobs} job(s)): "
        f"{run_link(experiment_id, best.run_id, label)}, {objective} = {best.value:g}"
    )


def dataset_source(output: Any, remote: str) -> str:
    """An MLflow dataset's source for one DVC output: where it lives and how DVC pins it."""
    import json

    pinned_by = output.source.removesuffix(PINNED_BY_GIT)
    # `data/x.dvc`, or `dvc.lock:<stage>` for a stage's output
    stage = pinned_by.partition(":")[2] if pinned_by.startswith("dvc.lock:") else ""
    entry: dict[str, Any] = {"path": output.path, "hash": output.hash}
    entry |= {"dvc_lock": "dvc.lock", "stage": stage} if stage else {"dvc_file": pinned_by}
    if output.source.endswith(PINNED_BY_GIT):
        entry["kept_in"] = "git (cache: false)"
    elif remote:
        entry["remote"] = remote
    return json.dumps(entry)


def dataset_profile(output: Any, remote: str, table: Mapping[str, Any] | None = None) -> str:
    """What the UI's dataset panel lists (key: value): size, file count (a single file counts as
    one: DVC records no count for it), and where DVC pins and keeps it, since the panel shows the
    source of none but its own source types (http, s3, local, ...)."""
    import json

    nfiles = output.nfiles if output.nfiles is not None else (None if output.hash.endswith(".dir") else 1)
    profile: dict[str, Any] = {"size": output.size, "nfiles": nfiles, **(table or {})}
    pinned_by = output.source.removesuffix(PINNED_BY_GIT)
    if pinned_by.startswith("dvc.lock:"):
        profile["dvc_stage"] = f"{pinned_by.partition(':')[2]} (dvc.lock)"
    else:
        profile["dvc_file"] = pinned_by
    profile["dvc_remote"] = "none: kept in git" if output.source.endswith(PINNED_BY_GIT) else (remote or None)
    return json.dumps({k: v for k, v in profile.items() if v is not None})
