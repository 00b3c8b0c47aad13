"""The command line: parse, call the library, print, exit with the documented code.

Nothing here imports mlflow, dvc or hydra at module level: `reprotrain --help` stays instant.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from reprotrain import __version__
from reprotrain.errors import NotPinnedError, ReprotrainError, UsageError

__all__ = ["main"]

_RUN_USAGE = """\
usage: reprotrain run [--allow-unpinned] [--require-pushed] [--accept-schema-change] [--smoke | --no-smoke]
                      [--timeout SECONDS] [HYDRA ARGUMENTS ...]

Check that code and data are pinned, then run the training code as a Hydra app and record the
run in MLflow. Everything else on the line is Hydra's: overrides (key=v, +key=v, ++key=v, ~key,
+experiment=x), -m/--multirun, -cn NAME, --cfg job, and --help for the app's own help.

reprotrain options:
  --allow-unpinned   run even if code or data are not pinned; the run records pinned=false
  --require-pushed   also refuse unless the commit is on a remote branch and every data object
                     is in the default DVC remote
  --accept-schema-change
                     run though an input differs from the committed schema contract
                     (reprotrain-schema.yaml); the differences are recorded on the run
  --smoke            first run one short job here (the sweep's first, with the smoke_overrides
                     setting), recorded as a smoke run; the run or sweep only if it succeeds
  --no-smoke         no smoke run, though the smoke_multirun setting asks for one with -m
  --timeout SECONDS  stop training that runs longer, and mark the run FAILED
"""


_RUN_ID_HELP = "a run ID, a unique prefix of 8+ characters of one, or `last` (the newest run, sweep or rerun here)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reprotrain",
        description="Reproducible training runs: pinned code and data, Hydra config, MLflow record.",
        epilog="exit codes: 0 ok, 1 error, 2 usage/config error, 3 not pinned, 4 not reproduced, "
        "5 nothing to compare, other: the training code's own (130/143 after SIGINT/SIGTERM)",
    )
    parser.add_argument("--version", action="version", version=f"reprotrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "run",
        help="launch a pinned, recorded training run (Hydra arguments follow; see `reprotrain run -h`)",
        add_help=False,
    )
    check = sub.add_parser("check", help="the pin gate alone: exit 0 when pinned, 3 with every problem")
    check.add_argument("--require-pushed", action="store_true", help="also require commit and data on the remotes")
    check.add_argument(
        "--hash",
        action="store_true",
        help="hash every DVC-tracked file and compare it with its pin, instead of trusting DVC's stored "
        "size and mtime (reads every byte; the hash_data setting does this for every run)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_parser("rerun", help="rebuild a run's code, data and config in a worktree and run it again", add_help=False)
    runs = sub.add_parser("runs", help="list recorded runs, newest first; filter by status, commit, data, sweep")
    runs.add_argument("--experiment", help="MLflow experiment (default: the project's)")
    runs.add_argument("--status", choices=["RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED"], type=str.upper)
    runs.add_argument("--commit", help="git commit (full SHA or a prefix)")
    runs.add_argument(
        "--data", metavar="PATH", help="runs that trained on this DVC output (with --data-hash: that version)"
    )
    runs.add_argument("--data-hash", metavar="HASH", help="runs that used a DVC output with this hash")
    runs.add_argument("--sweep", metavar="RUN_ID", help="the jobs of this sweep (its ID or a prefix of 8+ characters)")
    runs.add_argument(
        "--stale", action="store_true", help="RUNNING runs whose launcher died (then: reprotrain runs --reap)"
    )
    runs.add_argument("--reap", action="store_true", help="mark stale runs KILLED")
    runs.add_argument("--smoke", action="store_true", help="list the smoke runs (`run --smoke`), kept apart otherwise")
    runs.add_argument(
        "--filter",
        metavar="EXPR",
        help="MLflow's search syntax, e.g. \"metrics.loss < 0.1 and params.`model.lr` = '0.1'\" "
        "(ANDed with the other filters)",
    )
    runs.add_argument(
        "--sort",
        metavar="KEY[:asc|desc]",
        help="order by metrics.NAME, params.NAME, tags.NAME or start_time (numbers in number order)",
    )
    runs.add_argument(
        "--columns",
        metavar="LIST",
        help="comma-separated columns: run,name,status,started,ended,commit,data,repro,overrides,metrics and "
        "metrics.NAME, params.NAME, tags.NAME (default: run,status,started,commit,data,repro,overrides,metrics)",
    )
    runs.add_argument("--limit", type=_limit, default=100, help="list at most this many runs (default: 100)")
    runs.add_argument("--json", action="store_true", help="print the rows as JSON")
    diff = sub.add_parser(
        "diff",
        help="what changed between runs: overrides, config, data, code, environment, metrics",
        description="Compare two runs; with more, compare each with the first. Config keys name the override "
        "that set them.",
    )
    diff.add_argument("runs", nargs="+", metavar="RUN_ID", help="two or more run IDs (or prefixes, or `last`)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    ui = sub.add_parser(
        "ui",
        help="serve the MLflow UI on the project's tracking store (needs the full mlflow: reprotrain[server])",
        description="Serve MLflow's UI, with one worker, on the project's tracking store until Ctrl-C or SIGTERM, "
        "which stop the server too. With a tracking server as the store, open its URL instead.",
    )
    ui.add_argument("--port", type=int, default=5000, help="port to listen on (default: 5000)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    sub.add_parser(
        "init",
        help="add reprotrain to the repository here: writes [tool.reprotrain] in pyproject.toml",
        description="Find the Hydra config directory, primary config and training entrypoint of the project here, "
        "write them under [tool.reprotrain] in pyproject.toml (a setting already there is kept), and print the git "
        "and DVC commands still to run before the first pinned run, in order.",
    )
    sub.add_parser(
        "sync",
        help="deliver what runs could not log while the tracking store was unreachable",
        description="Send the records, metrics and artifacts that runs kept in the state directory while the "
        "tracking store could not be reached; exit 1 while any run is still not delivered.",
    )
    apply = sub.add_parser(
        "apply",
        help="bring a pipeline run's dvc.lock, params.yaml and outputs into the working copy (as dvc exp apply)",
        description="Write the run's dvc.lock and params.yaml into the working copy and check its outputs out "
        "of the DVC cache (fetching from the DVC remote what it lacks). The working copy must be clean and at "
        "the run's commit; `git add` and `git commit` then keep the result.",
    )
    apply.add_argument("run_id", help="a run of a `dvc repro` entrypoint: " + _RUN_ID_HELP)
    completion = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh)",
        description="Print a completion script for reprotrain, its subcommands and (for `run`) Hydra's overrides "
        'and config groups. Load it from your shell\'s rc file: eval "$(reprotrain completion bash)".',
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    env = sub.add_parser(
        "env",
        help="print the Python environment a run ran in, as a requirements file",
        description="Print the Python environment a run's code ran in as a requirements file (every distribution "
        "with its version, or where it came from: a VCS commit, a wheel, a local directory; the package indexes, "
        "credentials removed), for `uv pip install -r` or `pip install -r`.",
    )
    env.add_argument("run_id", help=_RUN_ID_HELP)
    env.add_argument("--json", action="store_true", help="print the recorded environment as JSON")
    schema = sub.add_parser(
        "schema",
        help="the schemas of the DVC-tracked tables, and the contract that `run` enforces",
        description="Column names and types and row counts of the DVC-tracked tables (CSV/TSV, Parquet, JSON "
        "Lines, directories of them). With the contract file reprotrain-schema.yaml committed, `run` and `check` "
        "refuse an input that differs from it.",
    )
    schema_sub = schema.add_subparsers(dest="schema_command", metavar="COMMAND", required=True)
    schema_show = schema_sub.add_parser("show", help="the current schemas, and how they differ from the contract")
    schema_show.add_argument("paths", nargs="*", metavar="PATH", help="only these inputs (default: every table)")
    schema_show.add_argument("--json", action="store_true", help="print the schemas and differences as JSON")
    accept = schema_sub.add_parser(
        "accept", help="write the current schemas to reprotrain-schema.yaml (then commit it with the code)"
    )
    accept.add_argument("paths", nargs="*", metavar="PATH", help="only these inputs (default: every table)")
    lineage = sub.add_parser(
        "lineage",
        help="data versions -> the runs that used them -> what they made -> the runs that used that",
        description="The lineage of a DVC-tracked path (every version, or PATH@HASH for one) or of a run: the runs "
        "that used each data version, their reruns and verdicts, the outputs those runs made (a pipeline's), and "
        "the runs that used them in turn. For a run, the picture is also logged beside it "
        "(reprotrain/lineage/lineage.html), so that the MLflow UI shows it.",
    )
    lineage.add_argument(
        "target", metavar="PATH[@HASH]|RUN_ID", help="a data path (relative to the repository root) or a run"
    )
    lineage.add_argument("--depth", type=int, default=6, help="steps of data -> run -> data to follow (default: 6)")
    lineage.add_argument("--json", action="store_true", help="print the graph as JSON (data, runs, edges)")
    lineage.add_argument("--html", type=Path, metavar="FILE", help="also write the picture (SVG in an HTML page) here")
    show = sub.add_parser("show", help="show what a run recorded")
    show.add_argument("run_id", help=_RUN_ID_HELP)
    show.add_argument("--json", action="store_true", help="print the record, status and metrics as JSON")
    return parser


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 50000:  # MLflow's search returns at most 50000 runs a page
        raise argparse.ArgumentTypeError(f"give 1 to 50000, not {value}")
    return value


def _rerun_parser() -> argparse.ArgumentParser:
    rerun = argparse.ArgumentParser(
        prog="reprotrain rerun",
        description="Rerun RUN_ID from its recorded commit, data and config, in a separate git worktree "
        "(your working copy is untouched). With overrides, start a derived run instead.",
    )
    rerun.add_argument("run_id", help="the run to rerun: " + _RUN_ID_HELP)
    rerun.add_argument("overrides", nargs="*", help="Hydra overrides for a derived run (never a reproduction)")
    rerun.add_argument(
        "--verify",
        action="store_true",
        help="compare metrics (also those of runs the code created itself) and verify_files; "
        "exit 4 if they differ, 5 if there is nothing to compare",
    )
    rerun.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for metrics (default: exact)")
    rerun.add_argument("--atol", type=float, default=0.0, help="absolute tolerance for metrics (default: exact)")
    rerun.add_argument("--strict-env", action="store_true", help="refuse when Python or package versions differ")
    rerun.add_argument(
        "--rebuild-env",
        action="store_true",
        help="rebuild the recorded Python environment (uv, else pip; cached by its digest) and run the code in it",
    )
    rerun.add_argument(
        "--python",
        metavar="VERSION|PATH",
        help="with --rebuild-env: the interpreter to use when the recorded Python is not here (recorded as drift)",
    )
    rerun.add_argument(
        "--force",
        action="store_true",
        help="rerun a run that was launched unpinned; with --rebuild-env, go on without what cannot be "
        "rebuilt (recorded as drift)",
    )
    rerun.add_argument("--keep", action="store_true", help="keep the worktree afterwards")
    rerun.add_argument("--timeout", type=float, default=None, help="stop training after this many seconds")
    return rerun


RUN_FLAGS = ("--allow-unpinned", "--require-pushed", "--accept-schema-change", "--smoke", "--no-smoke", "--timeout")
# Hydra's own long flags (hydra/_internal/utils.py get_args_parser), passed through as they are
HYDRA_FLAGS = (
    "--help",
    "--hydra-help",
    "--version",
    "--cfg",
    "--resolve",
    "--package",
    "--run",
    "--multirun",
    "--shell-completion",
    "--config-path",
    "--config-name",
    "--config-dir",
    "--experimental-rerun",
    "--info",
)


def _unknown_flag(token: str) -> UsageError:
    import difflib

    flag = token.split("=", 1)[0]
    near = difflib.get_close_matches(flag, [*RUN_FLAGS, *HYDRA_FLAGS], n=1, cutoff=0.6)
    return UsageError(
        f"unknown option {flag}" + (f": did you mean {near[0]}?" if near else ""),
        hint="reprotrain run --help lists reprotrain's options and Hydra's",
    )


def _refuse_hydra_completion(tokens: Sequence[str]) -> None:
    """Hydra's `-sc install=bash` would complete a `reprotrain-run` command that does not exist;
    `-sc query=bash` is what reprotrain's own completion asks Hydra."""
    import os

    for i, token in enumerate(tokens):
        if token in {"-sc", "--shell-completion"} or token.startswith("--shell-completion="):
            value = token.split("=", 1)[1] if token.startswith("--shell-completion=") else ""
            value = value or (tokens[i + 1] if i + 1 < len(tokens) else "")
            if value.startswith("query=") and "COMP_LINE" not in os.environ:
                raise UsageError(
                    "-sc query=... is what the shell's completion asks, with the line in COMP_LINE",
                    hint='eval "$(reprotrain completion bash)", then press Tab',
                )
            if not value.startswith("query="):
                raise UsageError(
                    "Hydra's shell completion would be installed for the wrong command",
                    hint='eval "$(reprotrain completion bash)" (or zsh) completes reprotrain and Hydra\'s overrides',
                )


def _split_run_options(tokens: Sequence[str]) -> tuple[dict[str, object], list[str]]:
    """Take reprotrain's own options out of a `run` line; the rest is Hydra's, untouched. A `--`
    option that is neither reprotrain's nor Hydra's is a usage error (not Hydra's usage text)."""
    options: dict[str, object] = {}
    rest: list[str] = []
    items = list(tokens)
    _refuse_hydra_completion(items)
    i = 0
    while i < len(items):
        token = items[i]
        if token.startswith("--") and token.split("=", 1)[0] not in (*RUN_FLAGS, *HYDRA_FLAGS):
            raise _unknown_flag(token)
        if token.startswith(
            ("--allow-unpinned=", "--require-pushed=", "--accept-schema-change=", "--smoke=", "--no-smoke=")
        ):
            flag = token.split("=", 1)[0]
            raise UsageError(f"{flag} takes no value, got {token!r}", hint=f"reprotrain run {flag} ...")
        if token == "--allow-unpinned":
            options["allow_unpinned"] = True
        elif token == "--require-pushed":
            options["require_pushed"] = True
        elif token == "--accept-schema-change":
            options["accept_schema_change"] = True
        elif token in ("--smoke", "--no-smoke"):
            if options.get("smoke", token == "--smoke") != (token == "--smoke"):
                raise UsageError("--smoke and --no-smoke contradict each other", hint="give one of them")
            options["smoke"] = token == "--smoke"
        elif token == "--timeout" or token.startswith("--timeout="):
            if "=" in token:
                value = token.split("=", 1)[1]
            elif i + 1 < len(items):
                i += 1
                value = items[i]
            else:
                raise UsageError("--timeout needs a number of seconds", hint="reprotrain run --timeout 3600 ...")
            try:
                seconds = float(value)
            except ValueError:
                raise UsageError(f"--timeout must be a number of seconds, got {value!r}") from None
            if not 0 < seconds < math.inf:
                raise UsageError(f"--timeout must be a positive number of seconds, got {value!r}")
            options["timeout"] = seconds
        else:
            rest.append(token)
        i += 1
    return options, rest


def _run(tokens: Sequence[str]) -> int:
    if tokens and tokens[0] in {"-h", "--help"} and len(tokens) == 1:
        # `reprotrain run --help` with no app context: reprotrain's and Hydra's usage together
        print(_RUN_USAGE)
    from reprotrain.launch import RunOptions, run

    options, rest = _split_run_options(tokens)
    return run(rest, RunOptions(**options))  # type: ignore[arg-type]


JSON_SCHEMA = 1  # the shape of `runs`, `diff` and `check` --json; `show --json` carries its record's


def _json(value: object) -> str:
    from reprotrain.render import json_text

    if isinstance(value, dict) and "schema" not in value:
        value = {"schema": JSON_SCHEMA, **value}
    return json_text(value)


def _show(run_id: str, as_json: bool) -> int:
    from reprotrain.query import load_run
    from reprotrain.render import run_text

    view = load_run(run_id)
    if as_json:
        print(_json(view))
    else:
        print(run_text(view))
    return 0


def _env(run_id: str, as_json: bool) -> int:
    from reprotrain.core.environment import requirements_text
    from reprotrain.query import load_environment

    found, environment = load_environment(run_id)
    if as_json:
        print(_json({"run_id": found, "environment": environment}))
    else:
        sys.stdout.write(requirements_text(environment, found))
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from reprotrain.rerun import RerunOptions, rerun

    if args.rtol < 0 or args.atol < 0:
        raise UsageError("--rtol and --atol must not be negative")
    options = RerunOptions(
        verify=args.verify,
        rtol=args.rtol,
        atol=args.atol,
        strict_env=args.strict_env,
        force=args.force,
        keep=args.keep,
        timeout=args.timeout,
        rebuild_env=args.rebuild_env,
        python=args.python,
    )
    return rerun(args.run_id, list(args.overrides), options)


def _runs(args: argparse.Namespace) -> int:
    from reprotrain.progress import wants_color
    from reprotrain.query import list_runs, reap
    from reprotrain.render import runs_text

    if args.reap:
        reaped = reap(args.experiment)
        if args.json:
            print(_json({"reaped": reaped}))
        else:
            print(f"marked {len(reaped)} stale run(s) KILLED" + "".join(f"\n  {r}" for r in reaped))
        return 0
    columns = _columns(args.columns)
    rows = list_runs(
        filter_string=args.filter,
        sort=args.sort,
        experiment=args.experiment,
        status=args.status,
        commit=args.commit,
        data_path=args.data,
        data_hash=args.data_hash,
        sweep=args.sweep,
        stale=args.stale,
        limit=args.limit,
        smoke=args.smoke,
    )
    if args.json:
        print(_json({"runs": rows}))
    else:
        print(runs_text(rows, columns, width=_terminal_width(), color=wants_color(), group=not args.sort))
    return 0


def _columns(text: str | None) -> tuple[str, ...]:
    from reprotrain.render import RUNS_COLUMNS

    if not text:
        return RUNS_COLUMNS
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    known = {*RUNS_COLUMNS, "name", "ended"}
    bad = [c for c in names if c not in known and not c.startswith(("metrics.", "params.", "tags."))]
    bad += [c for c in names if c.startswith(("tags.mlflow.", "tags.reprotrain."))]  # rows carry the run's own
    if bad or not names:
        raise UsageError(
            f"--columns: unknown column(s) {', '.join(bad) or '(none given)'}",
            hint="--columns run,status,metrics.loss,params.model.lr",
        )
    return names


def _terminal_width() -> int | None:
    """The terminal's width when printing to one (a pipe gets whole lines)."""
    import os
    import shutil

    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return None
    return shutil.get_terminal_size().columns


def _diff(run_ids: list[str], as_json: bool) -> int:
    from reprotrain.query import diff_runs
    from reprotrain.render import diff_text

    if len(run_ids) < 2:
        raise UsageError("diff needs two or more runs", hint="reprotrain diff RUN_A RUN_B [RUN_C ...]")
    pairs = [diff_runs(run_ids[0], other) for other in run_ids[1:]]
    diff = pairs[0] if len(pairs) == 1 else {"runs": [pairs[0]["a"], *(p["b"] for p in pairs)], "pairs": pairs}
    print(_json(diff) if as_json else diff_text(diff))
    return 0


def _ui(host: str, port: int) -> int:
    from reprotrain.query import open_ui

    try:
        return open_ui(host, port)
    except KeyboardInterrupt:
        return 0


def _init() -> int:
    import json
    from pathlib import Path

    from reprotrain.init import init

    report = init(Path.cwd())
    if report.written:
        print(f"wrote [tool.reprotrain] to {report.written}:")
        for key, value in report.settings.items():
            print(f"  {key} = {json.dumps(value)}")
    for unwritten in report.unwritten:
        print(f"{unwritten.key} not written: {unwritten.reason}")
        for candidate in unwritten.candidates:
            print(f"  {candidate}")
        print(f"add it under [tool.reprotrain] in {report.root / 'pyproject.toml'} before the commit below, e.g.")
        print(f"  {unwritten.line}")
    for note in report.notes:
        print(note)
    if report.todo:
        print(f"to do, in this order, in {report.root}:")
        for step in report.todo:
            print(f"  {step}")
    return 0


def _apply(run_id: str) -> int:
    from reprotrain.apply import apply_run

    run_id, written = apply_run(run_id)
    print(f"applied run {run_id}: {', '.join(written)} and its DVC outputs are in the working copy")
    print(f"keep them: git add {' '.join(written)} && git commit -m 'outputs of run {run_id[:12]}'")
    return 0


def _sync() -> int:
    from reprotrain.launch import ensure_state_dir, tracking_uri
    from reprotrain.settings import find_project
    from reprotrain.spool import sync

    project = find_project()
    done, failed = sync(ensure_state_dir(project), tracking_uri(project))
    for run_id in done:
        print(f"delivered run {run_id}")
    for run_id, error in failed:
        print(f"reprotrain: error: run {run_id} still not delivered: {error}", file=sys.stderr)
    if not done and not failed:
        print("nothing to sync")
    return 1 if failed else 0


def _check(require_pushed: bool, as_json: bool, hash_data: bool = False) -> int:
    from reprotrain.launch import gate
    from reprotrain.render import check_text

    report = gate(require_pushed=require_pushed, hash_data=hash_data)
    if as_json:
        print(_json(report))
    else:
        print(check_text(report), file=sys.stdout if report["pinned"] else sys.stderr)
    return 0 if report["pinned"] else NotPinnedError.exit_code


def _schema(command: str, paths: list[str], as_json: bool) -> int:
    from reprotrain.render import schema_text
    from reprotrain.schemas import accept, current

    if command == "accept":
        written = accept(paths)
        print(schema_text(written, accepted=True))
        return 0
    report = current(paths)
    print(_json(report) if as_json else schema_text(report))
    return 0


def _lineage(target: str, depth: int, as_json: bool, html: Path | None) -> int:
    from reprotrain.core.lineage import to_html, to_json, tree_lines
    from reprotrain.lineage import lineage

    found = lineage(target, depth)
    if html is not None:
        html.write_text(to_html(found.graph, found.roots, f"lineage of {target}"), encoding="utf-8")
    if found.warning:
        print(f"reprotrain: warning: {found.warning}", file=sys.stderr)
    if as_json:
        print(_json(to_json(found.graph, found.roots) | ({"artifact": found.logged} if found.logged else {})))
        return 0
    print("\n".join(tree_lines(found.graph, found.roots)))
    if found.logged and found.run_id:
        print(f"(the picture is logged beside run {found.run_id[:12]}: {found.logged})", file=sys.stderr)
    return 0


def _report(exc: ReprotrainError) -> None:
    if isinstance(exc, NotPinnedError):
        from reprotrain.render import problems_text

        lines = [f"reprotrain: {exc.message}:", *problems_text([p.to_dict() for p in exc.problems])]
        lines.append(f"reprotrain: {exc.hint}" if exc.hint else "")
        print("\n".join(line for line in lines if line), file=sys.stderr)
        return
    print(f"reprotrain: error: {exc}", file=sys.stderr)


def _complete(words: Sequence[str]) -> int:
    """`reprotrain __complete CWORD WORDS...`: what the shell function asks; one candidate a line."""
    from reprotrain.completion import candidates, hydra_query

    try:
        cword = int(words[0])
    except (IndexError, ValueError):
        return 0
    found = candidates(
        words[1:],
        cword,
        _parser(),
        _rerun_parser(),
        tuple(f for f in RUN_FLAGS + HYDRA_FLAGS if f != "--shell-completion"),
        lambda line: hydra_query(line, _run),
    )
    print("\n".join(found))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    tokens = list(sys.argv[1:] if argv is None else argv)
    if tokens[:1] == ["__complete"]:
        return _complete(tokens[1:])
    try:
        if tokens and tokens[0] == "run":
            return _run(tokens[1:])
        if tokens and tokens[0] == "rerun":
            return _rerun(_rerun_parser().parse_intermixed_args(tokens[1:]))
        args = _parser().parse_args(tokens)
        if args.command == "show":
            return _show(args.run_id, args.json)
        if args.command == "env":
            return _env(args.run_id, args.json)
        if args.command == "runs":
            return _runs(args)
        if args.command == "diff":
            return _diff(args.runs, args.json)
        if args.command == "ui":
            return _ui(args.host, args.port)
        if args.command == "init":
            return _init()
        if args.command == "sync":
            return _sync()
        if args.command == "check":
            return _check(args.require_pushed, args.json, args.hash)
        if args.command == "apply":
            return _apply(args.run_id)
        if args.command == "lineage":
            return _lineage(args.target, args.depth, args.json, args.html)
        if args.command == "schema":
            return _schema(args.schema_command, args.paths, getattr(args, "json", False))
        if args.command == "completion":
            from reprotrain.completion import script

            print(script(args.shell), end="")
            return 0
        _parser().print_help()
        return 0
    except ReprotrainError as exc:
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("reprotrain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `reprotrain runs | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:  # the console script's, once no warm process took the launch (console.py)
    code = main()
    # MLflow, SQLAlchemy, Hydra and DVC leave millions of objects that the interpreter's last
    # garbage collection would walk once more on the way out (≈0.6 s of a launch). Frozen, they
    # are still released as the modules are torn down; only __del__ of objects caught in
    # reference cycles is skipped, which Python never promised at exit anyway.
    import gc

    gc.freeze()
    raise SystemExit(code)


if __name__ == "__main__":
    entry()
