"""Text for people: pure functions from plain data to lines (no I/O, no libraries)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "check_text",
    "diff_text",
    "drift_text",
    "json_text",
    "linked_text",
    "linked_warning",
    "problems_text",
    "run_text",
    "paint",
    "runs_text",
    "verdict_text",
]


def json_text(value: Any) -> str:
    """JSON for scripts: a metric that is NaN or infinite is written as the string "NaN",
    "Infinity" or "-Infinity" (bare NaN is not JSON)."""
    return json.dumps(_finite(value), indent=2, ensure_ascii=False, default=str, allow_nan=False)


def _finite(item: Any) -> Any:
    if isinstance(item, float) and not math.isfinite(item):
        return "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
    if isinstance(item, Mapping):
        return {k: _finite(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [_finite(v) for v in item]
    return item


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)


def _time(value: int | str | None) -> str:
    """A time as people read it: ISO 8601 (as `--json` gives it) or epoch milliseconds, in UTC."""
    if not value:
        return "-"
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        when = dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ran_on(environment: Mapping[str, Any]) -> str:
    """`vm, Python 3.11.7 (slurm job 4_3, partition debug)`: where a job ran."""
    text = ", ".join(
        str(x) for x in (environment.get("host"), environment.get("python") and f"Python {environment['python']}") if x
    )
    job = environment.get("engine_job") or {}
    if job:
        extra = "".join(f", {k} {job[k]}" for k in ("partition", "node_id") if job.get(k))
        text += f" ({job.get('engine')} job {job.get('job_id', '?')}{extra})"
    return text


def problems_text(problems: Sequence[Mapping[str, str]]) -> list[str]:
    lines = []
    for p in problems:
        where = f"{p['path']}: " if p.get("path") else ""
        lines.append(f"  - {where}{p['message']}")
        lines.append(f"      fix: {p['fix']}")
    return lines


def run_text(view: Mapping[str, Any]) -> str:
    """A run as `reprotrain show` prints it: the record plus status and metrics."""
    if view.get("kind") == "sweep":
        return _sweep_text(view)
    config = view.get("config", {})
    lines = [
        *_header("run", view),
        f"config     {config.get('dir')}/{config.get('name')}  digest {str(config.get('digest', ''))[:12]}",
        f"overrides  {' '.join(config.get('overrides') or []) or '(none)'}",
        f"command    {view.get('command', {}).get('executed', '')}",
        f"data       digest {str(view.get('data_digest', ''))[:12]}",
    ]
    schemas = view.get("schemas") or {}
    for out in view.get("data", []):
        files = f", {out['nfiles']} files" if out.get("nfiles") else ""
        lines.append(f"  {out['path']}  {out['hash']}  {_size(out.get('size'))}{files}  ({out['source']})")
        if out["path"] in schemas:
            lines.append(f"    schema  {_schema_summary(schemas[out['path']])}")
    for change in view.get("schema_changes") or []:
        lines.append(f"schema     ran with --accept-schema-change: {change.get('path')} {change.get('message')}")
    if view.get("seeds"):
        lines.append(f"seeds      {' '.join(f'{k}={v}' for k, v in sorted(view['seeds'].items()))}")
    environment = view.get("environment") or {}
    if environment.get("host") or environment.get("engine_job"):
        lines.append(f"ran on     {_ran_on(environment)}")
    pipeline = view.get("pipeline")
    if pipeline:
        stages = pipeline.get("stages", [])
        ran = [s["name"] for s in stages if s.get("ran")]
        lines.append(
            f"pipeline   {len(stages)} stage(s), ran: {', '.join(ran) or '(none: all up to date)'}"
            + ("  (every stage forced)" if pipeline.get("forced") else "")
        )
        lines.append("outputs" if view.get("outputs") else "outputs    (none)")
        for out in view.get("outputs", []):
            files = f", {out['nfiles']} files" if out.get("nfiles") else ""
            lines.append(f"  {out['path']}  {out['hash']}  {_size(out.get('size'))}{files}  ({out['source']})")
    if not view.get("pinned"):
        lines.append("problems")
        lines.extend(problems_text(view.get("problems", [])))
    metrics = view.get("metrics", {})
    lines.append("metrics" if metrics else "metrics    (none)")
    width = max((len(k) for k in metrics), default=0)
    lines.extend(f"  {k.ljust(width)}  {v:g}" for k, v in sorted(metrics.items()))
    if view.get("params_from_code"):
        lines.append(f"params     the code's own value stands for: {', '.join(view['params_from_code'])}")
    lines.extend(linked_text(view.get("linked_runs") or []))
    if view.get("verdict"):
        lines.append(f"verified   {_VERDICTS.get(view['verdict'], view['verdict'])} against {view.get('rerun_of')}")
        lines.extend(_checks_table(view.get("verification") or []))
    return "\n".join(lines)


_VERDICTS = {"reproduced": "REPRODUCED", "not-reproduced": "NOT REPRODUCED", "nothing-to-compare": "NOTHING TO COMPARE"}


def _lineage(view: Mapping[str, Any]) -> list[str]:
    """Where a run came from: the run it reran, or the run it was derived from."""
    if view.get("rerun_of"):
        return [f"rerun of   {view['rerun_of']}"]
    if view.get("derived_from"):
        return [f"derived    from {view['derived_from']} with changed overrides"]
    return []


def check_text(report: Mapping[str, Any]) -> str:
    """`reprotrain check` for people: what is pinned, or every problem with its fix."""
    git = report.get("git", {})
    data = report.get("data", [])
    if not report.get("pinned"):
        count = len(report.get("problems", []))
        head = f"NOT pinned: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *problems_text(report.get("problems", []))])
    lines = [
        f"pinned: commit {git.get('commit', '')[:12]} on {git.get('branch') or '(detached HEAD)'}, "
        f"{len(data)} DVC output{'s' if len(data) != 1 else ''} (data digest {str(report.get('data_digest'))[:12]})"
    ]
    lines.extend(f"  {o['path']}  {o['hash']}  ({o['source']})" for o in data)
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning['message']}")
        lines.append(f"      fix: {warning['fix']}")
    return "\n".join(lines)


def drift_text(drift: Sequence[tuple[str, str | None, str | None]]) -> str:
    """The environment differences found before a rerun."""
    width = max(len(name) for name, _, _ in drift)
    lines = [f"reprotrain: the environment differs from the recorded one in {len(drift)} place(s):"]
    lines += [f"  {n.ljust(width)}  {a or '(absent)'} -> {b or '(absent)'}" for n, a, b in drift]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    text = str(value)
    return text[:16] if len(text) == 64 else text


def _checks_table(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each metric and file compared, original against rerun; the header first."""
    rows = [("", "name", "original", "rerun", "")]
    for c in checks:
        rows.append((c["kind"], c["name"], _cell(c["original"]), _cell(c["rerun"]), "ok" if c["ok"] else "DIFFERS"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]


def verdict_text(verdict: Any, original: str, rerun: str, color: bool = False) -> str:
    """The table `rerun --verify` prints: each metric and file, original against rerun."""
    lines = [f"verify: rerun {rerun} against original {original}"]
    lines += _checks_table([c.to_dict() for c in verdict.checks])
    if not verdict.checks:
        lines.append(
            "NOTHING TO COMPARE: the original logged no metrics, created no run with metrics, and "
            "verify_files names no output (fix: write metrics.json into $REPROTRAIN_OUTPUT_DIR or log metrics "
            'with mlflow.log_metric, or set verify_files = ["model.pt"] under [tool.reprotrain]); exit 5'
        )
    elif verdict.reproduced:
        lines.append("REPRODUCED")
    else:
        lines.append(f"NOT REPRODUCED ({len(verdict.failures)} difference(s))")
    lines[-1] = paint(lines[-1], color)
    return "\n".join(lines)


def _where(run: Any) -> str:
    if run.nested:
        return "nested in it"
    where = f"experiment {run.experiment!r}" if run.experiment else f"experiment {run.experiment_id}"
    return f"{where} in another store {run.store}" if run.store else where


def linked_warning(run_id: str, runs: Sequence[Any], experiment_id: str) -> str:
    """The one line naming the runs the training code created itself, and how to log into
    reprotrain's run instead when they went to another experiment or store."""
    named = ", ".join(f"{r.run_id} ({_where(r)}{', ' + r.error if r.error else ''})" for r in runs)
    line = (
        f"reprotrain: warning: the training code created {len(runs)} MLflow run(s) besides run {run_id}: {named}; "
        "they are linked by tags, and `rerun --verify` compares their metrics"
    )
    stores = {r.store for r in runs if r.store}
    experiments = {r.experiment for r in runs if not r.store and r.experiment_id != experiment_id and r.experiment}
    if stores:
        line += f"; to record in that store, set MLFLOW_TRACKING_URI={sorted(stores)[0]} for reprotrain"
    elif len(experiments) == 1:
        name = json.dumps(experiments.pop())
        line += f"; to log into run {run_id} instead, set experiment_name = {name} under [tool.reprotrain]"
    return line


def linked_text(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """`show`'s lines for the runs the code created itself: role, ID, place, status, metrics."""
    if not rows:
        return []
    lines = ["linked runs (created by the training code)"]
    for r in rows:
        metrics = " ".join(f"{k}={v:g}" for k, v in sorted((r.get("metrics") or {}).items())[:6])
        known = r.get("experiment") or r.get("experiment_id")
        place = f"experiment {known}" if known else "(recorded before reprotrain kept details)"
        if r.get("store"):
            place += " in another store " + r["store"]
        lines.append(
            f"  {r.get('role') or '-'}  {r['run_id']}  {place}  {r.get('status') or r.get('error') or '?'}"
            + (f"  {metrics}" if metrics else "")
        )
    return lines


RUNS_COLUMNS = ("run", "status", "started", "commit", "data", "repro", "overrides", "metrics")
_FLEXIBLE = ("overrides", "metrics", "name")  # cut to fit the terminal, longest first
_MIN_FLEX = 10


def _repro(row: Mapping[str, Any]) -> str:
    if row.get("verdict") == "nothing-to-compare":
        return "none"  # verified, but nothing to compare
    return {True: "yes", False: "NO", None: "-"}.get(row.get("reproduced"), "-")


def _column(row: Mapping[str, Any], name: str) -> str:
    if name == "run":
        return str(row["run_id"])[:12]
    if name == "started":
        return _time(row.get("start_time")).replace(" UTC", "")
    if name == "started-short":
        return _time(row.get("start_time"))[5:16]  # MM-DD HH:MM, for a narrow terminal
    if name == "ended":
        return _time(row.get("end_time")).replace(" UTC", "")
    if name == "commit":
        return (row.get("commit") or "-")[:8] + ("" if row.get("pinned") else "*")
    if name == "data":
        return (row.get("data_digest") or "-")[:8]
    if name == "repro":
        return _repro(row)
    if name == "overrides":
        return " ".join(row.get("overrides") or []) or "-"
    if name == "metrics":
        return " ".join(f"{k}={v:.4g}" for k, v in sorted(row.get("metrics", {}).items())) or "-"
    if name.startswith(("metrics.", "params.", "tags.")):
        kind, _, key = name.partition(".")
        value = (row.get(kind) or {}).get(key)
        return "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
    return str(row.get(name) or "-")


def _grouped(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], bool]]:
    """Each sweep's jobs right under its parent (when both are listed), in job order: (row, is_job)."""
    listed = {r["run_id"] for r in rows}
    jobs: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("parent") in listed:
            jobs.setdefault(str(r["parent"]), []).append(r)
    out: list[tuple[Mapping[str, Any], bool]] = []
    for r in rows:
        if r.get("parent") in listed:
            continue
        out.append((r, False))
        out.extend((j, True) for j in reversed(jobs.get(str(r["run_id"]), [])))  # listed newest first
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _fit(table: list[list[str]], columns: Sequence[str], width: int | None) -> list[list[str]]:
    """Cut the flexible columns (overrides, metrics) until a line fits ``width``."""
    if width is None:
        return table
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    flexible = [i for i, c in enumerate(columns) if c in _FLEXIBLE]
    while sum(widths) + 2 * (len(widths) - 1) > width and flexible:
        widest = max(flexible, key=lambda i: widths[i])
        if widths[widest] <= _MIN_FLEX:
            break
        widths[widest] -= 1
    return [[_cut(cell, widths[i]) if i in flexible else cell for i, cell in enumerate(row)] for row in table]


# what a narrow terminal loses, in this order, once the overrides and metrics are cut to their minimum
_NARROWER = (("started", "started-short"), ("data", None), ("commit", None), ("repro", None))


def _narrowed(columns: tuple[str, ...], steps: Sequence[tuple[str, str | None]]) -> tuple[str, ...]:
    for old, new in steps:
        columns = tuple((new or c) if c == old else c for c in columns if c != old or new is not None)
    return columns


_RED, _GREEN, _RESET = "\033[31m", "\033[32m", "\033[0m"


def paint(text: str, color: bool) -> str:
    """A verdict or status word in red or green on a terminal that wants colour."""
    if not color:
        return text
    bad = text.startswith(("NOT REPRODUCED", "FAILED", "KILLED", "NO")) or text in {"DIFFERS"}
    good = text.startswith(("REPRODUCED", "FINISHED", "yes", "ok"))
    return f"{_RED if bad else _GREEN}{text}{_RESET}" if bad or good else text


def runs_text(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] = RUNS_COLUMNS,
    width: int | None = None,
    color: bool = False,
    group: bool = True,
) -> str:
    """The `reprotrain runs` table: one line a run, newest first, a sweep's jobs under it (`└`)."""
    if not rows:
        return "no runs"
    ordered = _grouped(rows) if group else [(r, False) for r in rows]
    narrower = _NARROWER if tuple(columns) == RUNS_COLUMNS else ()  # the user's own columns stay
    for step in range(len(narrower) + 1):
        columns = _narrowed(tuple(columns), narrower[:step]) if step else tuple(columns)
        table = [["STARTED" if c == "started-short" else c.upper() for c in columns]]
        for r, job in ordered:
            cells = [_column(r, c) for c in columns]
            if job and columns and columns[0] == "run":
                cells[0] = "└ " + cells[0][:10]
            table.append(cells)
        table = _fit(table, columns, width)
        if width is None or max(len("  ".join(row)) for row in table) <= width:
            break
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(table):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        if n and color:
            cells = [paint(c, True) if columns[i] in {"status", "repro"} else c for i, c in enumerate(cells)]
        lines.append("  ".join(cells).rstrip())
    if any(not r.get("pinned") for r in rows) and "commit" in columns:
        lines.append("* launched unpinned")
    return "\n".join(lines)


def _header(label: str, view: Mapping[str, Any]) -> list[str]:
    """The lines a run and a sweep share: ID, status, times, commit, pinned."""
    git = view.get("git", {})
    return [
        f"{label:<10} {view['run_id']}" + (f"  {view['name']}" if view.get("name") else ""),
        *_lineage(view),
        f"status     {view.get('status', '?')}  exit {view.get('exit_code', '?')}",
        f"started    {_time(view.get('start_time'))}   ended {_time(view.get('end_time'))}",
        f"commit     {git.get('commit') or '-'}  branch {git.get('branch') or '(detached)'}",
        f"pinned     {'yes' if view.get('pinned') else 'NO'}",
    ]


def _sweep_text(view: Mapping[str, Any]) -> str:
    lines = [
        *_header("sweep", view),
        f"overrides  {' '.join(view.get('overrides') or []) or '(none)'}",
        f"data       digest {str(view.get('data_digest', ''))[:12]}",
        f"jobs       {len(view.get('jobs', []))}",
    ]
    return "\n".join(lines) + "\n" + runs_text(view.get("jobs", []))


def _cause(key: str, overrides: Mapping[str, Sequence[str] | None], groups: Mapping[str, Sequence[str]]) -> str:
    """The override of either run that set ``key`` (itself, a parent key, or its config group); else
    the overrides choosing a config group (a `# @package _global_` one may set any key), marked so."""
    found, via = [], []
    for side, other in (("a", "b"), ("b", "a")):
        for override in overrides.get(side) or []:
            name = override.split("=", 1)[0].lstrip("+~")
            if key == name or key.startswith(name + "."):
                found.append(f"{side}: {override}")
            elif name in (groups.get(side) or ()) and override not in (overrides.get(other) or []):
                via.append(f"{side}: {override}")
    if found:
        return ", ".join(found)
    return f"set by a config group? {', '.join(via)}" if via else ""


def diff_text(diff: Mapping[str, Any]) -> str:
    """`reprotrain diff` for people: one section per kind of difference, `(same)` when none."""
    if "pairs" in diff:  # more than two runs: each against the first
        return "\n\n".join(diff_text(pair) for pair in diff["pairs"])
    lines = [f"diff {diff['a']} (a) -> {diff['b']} (b)"]
    given = diff.get("overrides") or {}
    for side in ("a", "b"):
        lines.append(f"overrides {side}  {' '.join(given.get(side) or []) or '(none)'}")
    lines.append("config" + ("" if diff["config"] else "       (same)"))
    for r in diff["config"]:
        cause = _cause(r["key"], given, diff.get("groups") or {})
        lines.append(f"  {r['key']}: {_cell(r['a'])} -> {_cell(r['b'])}" + (f"  ({cause})" if cause else ""))
    lines.append("data" + ("" if diff["data"] else "         (same)"))
    for r in diff["data"]:
        a, b = r["a"], r["b"]
        lines.append(
            f"  {r['path']}: {a['hash'] if a else '(absent)'} ({_size(a and a.get('size'))}) -> "
            f"{b['hash'] if b else '(absent)'} ({_size(b and b.get('size'))})"
        )
        files = r.get("files")
        if files:
            for kind in ("added", "removed", "changed"):
                if files[kind]:
                    shown = ", ".join(files[kind][:10]) + (" ..." if len(files[kind]) > 10 else "")
                    lines.append(f"    {kind} {len(files[kind])}: {shown}")
        elif files is None and a and b and a["hash"].endswith(".dir"):
            lines.append("    (file lists unknown: a directory manifest is not in the local DVC cache)")
    schemas = diff.get("schemas") or []
    if schemas:
        lines.append("schemas")
        for r in schemas:
            lines += [f"  {r['path']}: {change}" for change in r["changes"]]
    code = diff["code"]
    if code.get("same"):
        lines.append(f"code         (same commit {str(code['a'])[:12]})")
    elif code.get("available"):
        lines.append(
            f"code         {str(code['a'])[:12]} -> {str(code['b'])[:12]}: {code['commits_a_to_b']} commit(s) ahead, "
            f"{code['commits_b_to_a']} behind, {len(code['files'])} file(s) changed"
        )
        lines += [f"  {f['status']}  {f['path']}" for f in code["files"][:50]]
    else:
        lines.append(
            f"code         {str(code['a'])[:12]} -> {str(code['b'])[:12]} (a commit is not in this repository)"
        )
    lines.append("environment" + ("" if diff["environment"] else "  (same)"))
    lines += [f"  {r['name']}: {r['a'] or '(absent)'} -> {r['b'] or '(absent)'}" for r in diff["environment"]]
    lines.append("metrics" + ("" if diff["metrics"] else "      (same)"))
    for r in diff["metrics"]:
        delta = f"  ({r['delta']:+.6g})" if r["delta"] is not None else ""
        lines.append(f"  {r['name']}: {_cell(r['a'])} -> {_cell(r['b'])}{delta}")
    return "\n".join(lines)


def _schema_summary(schema: Mapping[str, Any] | None) -> str:
    if schema is None:
        return "no table reprotrain can read"
    if schema.get("format") == "directory":
        parts = [
            f"{name} ({p.get('files')} files, {p.get('rows')} rows, "
            + ", ".join(f"{c['name']} {c['type']}" for c in p.get("columns") or [])
            + ")"
            for name, p in (schema.get("patterns") or {}).items()
        ]
        return f"directory of {schema.get('files')} tables: " + "; ".join(parts)
    columns = ", ".join(f"{c['name']} {c['type']}" for c in schema.get("columns") or [])
    return f"{schema.get('format')}, {schema.get('rows')} rows: {columns}"


def schema_text(report: Mapping[str, Any], accepted: bool = False) -> str:
    """`reprotrain schema show|accept`: one line per table, its differences from the contract below it."""
    lines = []
    for row in report.get("inputs") or []:
        lines.append(f"{row['path']}  {_schema_summary(row.get('schema'))}")
        if accepted:
            was = row.get("changes") or []
            lines += [f"  accepted: {change}" for change in was if change != "added"] or (
                ["  added to the contract"] if was == ["added"] else ["  unchanged"]
            )
            lines += [f"  widened the declared range: {note}" for note in row.get("notes") or []]
        elif report.get("contract"):
            if not row.get("in_contract"):
                lines.append(f"  not in {report['contract']}")
            lines += [
                f"  differs: {change}" for change in row.get("changes") or [] if change != "not in the schema contract"
            ]
    for path in report.get("stale") or []:
        lines.append(
            f"{path}  in {report['contract']}, no longer a DVC-tracked input (`reprotrain schema accept` drops it)"
        )
    for path in report.get("removed") or []:
        lines.append(f"{path}  dropped from the contract: no longer a DVC-tracked input")
    if not lines:
        lines.append("no DVC-tracked table (CSV/TSV, Parquet, JSON Lines, or a directory of them)")
    if accepted:
        lines.append(f"next: git add {report['contract']} && git commit -m 'accept the data schemas'")
    elif report.get("contract") is None and report.get("inputs"):
        lines.append("no schema contract: nothing is enforced (reprotrain schema accept writes one)")
    return "\n".join(lines)
