"""Benchmark reprotrain against the tools a user would pick instead, in one interleaved run.

    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -e . hydra-joblib-launcher
    /tmp/bench-venv/bin/python benchmarks/run.py                 # small and large projects, 5 repeats
    /tmp/bench-venv/bin/python benchmarks/run.py --small-only --repeats 1
    /tmp/bench-venv/bin/python benchmarks/run.py --slurm-only   # the 8-job sweep on a Slurm cluster
    /tmp/bench-venv/bin/python benchmarks/run.py --schema-only  # the warm gate with tables' schemas

--slurm-only brings up a single-node Slurm cluster on 127.0.0.1 (scripts/slurm.sh, Debian's slurm-wlm,
slurmdbd, munge and mariadb-server; root) for the sweep through hydra/launcher=submitit_slurm, and
stops it afterwards; the package needs hydra-submitit-launcher too.

Every case runs once per round, rounds interleave all cases (so a noisy neighbour hits all of
them alike), and each result is the median of the rounds with its range. Ratios compare cases
measured in this same process. BLAS is pinned to one thread. Projects are built under --workdir
(default: a directory in /tmp) and reused while their sizes match.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import projects  # noqa: E402

BIN = Path(sys.executable).parent


@dataclass
class Case:
    name: str
    argv: list[str]
    cwd: Path
    setup: list[list[str]] = field(default_factory=list)  # run before each timing, not timed
    env: dict[str, str] = field(default_factory=dict)
    inner: bool = False  # the command prints the seconds of the step itself (no interpreter start-up)
    warmups: int = 1  # untimed rounds first (two for `reprotrain run`: the second starts its warm process)
    times: list[float] = field(default_factory=list)
    peak_kb: list[int] = field(default_factory=list)


def timed(argv: list[str], cwd: Path, env: dict[str, str], inner: bool = False) -> tuple[float, int]:
    """Wall time and peak RSS (kB) of the command's own process (not of its children); with
    ``inner``, the seconds the command prints as its last line."""
    start = time.perf_counter()
    out = subprocess.PIPE if inner else subprocess.DEVNULL
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE)
    printed = proc.stdout.read().decode() if inner and proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)} in {cwd}\n{err[-3000:]}")
    if inner:
        elapsed = float(printed.strip().splitlines()[-1])
    return elapsed, usage.ru_maxrss


def measure(cases: list[Case], env: dict[str, str], repeats: int) -> None:
    for case in cases:  # warm-up rounds: caches, .pyc files, DVC's state DB, the warm process
        for _ in range(case.warmups):
            for step in case.setup:
                subprocess.run(step, cwd=case.cwd, env=env | case.env, check=True, capture_output=True)
            timed(case.argv, case.cwd, env | case.env, case.inner)
    for round_no in range(repeats):
        for case in cases:
            for step in case.setup:
                subprocess.run(step, cwd=case.cwd, env=env | case.env, check=True, capture_output=True)
            seconds, peak = timed(case.argv, case.cwd, env | case.env, case.inner)
            case.times.append(seconds)
            case.peak_kb.append(peak)
        print(f"  round {round_no + 1}/{repeats} done", file=sys.stderr, flush=True)


def med(case: Case) -> float:
    return statistics.median(case.times)


def row(case: Case) -> str:
    return (
        f"  {case.name:<34} {med(case):8.3f} s  [{min(case.times):.3f}-{max(case.times):.3f}]"
        f"  peak {max(case.peak_kb) / 1024:6.0f} MB"
    )


def restore_cases(project: Path, env: dict[str, str], work: Path) -> list[Case]:
    """The data restore of `rerun` (worktree creation not timed) against `cp -r` of the same data.
    Both start after `sync` (not timed), so neither pays for the write-back of the other's 1 GB."""
    tree = work / "restore-tree"
    code = (
        "import sys, time; from pathlib import Path; from reprotrain.adapters import dvc as d; "
        "root, tree = Path(sys.argv[1]), Path(sys.argv[2]); cache = d.cache_dir(root); "
        't = time.perf_counter(); d.restore(tree, cache, None, tree.parent / "verified.json"); '
        "print(time.perf_counter() - t)"
    )
    prepare = [
        [
            "bash",
            "-c",
            f"git worktree remove --force --force {tree} 2>/dev/null; rm -rf {tree}; "
            f"git worktree prune; git worktree add --detach -q {tree} HEAD; sync",
        ],
    ]
    copy_dest = work / "cp-dest"
    return [
        Case(
            "cp -r data",
            [
                "bash",
                "-c",
                f's=$(date +%s.%N); cp -r data {copy_dest}; e=$(date +%s.%N); awk "BEGIN {{print $e - $s}}"',
            ],
            project,
            setup=[["bash", "-c", f"rm -rf {copy_dest}; sync"]],
            inner=True,
        ),
        Case(
            "rerun data restore",
            [str(BIN / "python"), "-c", code, str(project), str(tree)],
            project,
            setup=prepare,
            inner=True,
        ),
    ]


def suite(project: Path, other: Path, env: dict[str, str], work: Path, large: bool) -> dict[str, Case]:
    store = work / "stores"
    store.mkdir(exist_ok=True)
    py = str(BIN / "python")
    rt = str(BIN / "reprotrain")
    hand_env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}/hand.db"}
    mlrun_env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlrun.db"}
    sweep = [f"seed={','.join(str(i) for i in range(1, 9))}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    cases = [
        Case("python -c pass", [py, "-c", "pass"], project),
        Case("reprotrain --help", [rt, "--help"], project),
        Case("python train.py", [py, "train.py"], project),
        Case(
            "hand-written hydra+mlflow",
            [py, "handwritten.py", "hydra.run.dir=/tmp/bench-hand-out"],
            project,
            env=hand_env,
        ),
        Case("mlflow run", [str(BIN / "mlflow"), "run", ".", "--env-manager", "local"], other, env=mlrun_env),
        Case("dvc exp run", [str(BIN / "dvc"), "exp", "run", "-f", "-q"], other),
        Case("reprotrain run", [rt, "run"], project, warmups=2),
        Case("reprotrain run, helper off", [rt, "run"], project, env={"REPROTRAIN_STORE_HELPER": "0"}),
        Case(
            "git status + dvc status",
            ["bash", "-c", f"git status --porcelain >/dev/null && {BIN}/dvc status -q"],
            project,
        ),
        Case("reprotrain check", [rt, "check"], project),
        Case("reprotrain check --hash", [rt, "check", "--hash"], project),
        Case("md5sum of the data", ["bash", "-c", "find data -type f -print0 | xargs -0 md5sum >/dev/null"], project),
        Case(
            "hand-written sweep (8 jobs)",
            [py, "handwritten.py", "-m", *sweep, "hydra.sweep.dir=/tmp/bench-hand-sweep"],
            project,
            env=hand_env,
        ),
        Case("reprotrain sweep (8 jobs)", [rt, "run", "-m", *sweep], project),
        Case(
            "reprotrain sweep, helper off",
            [rt, "run", "-m", *sweep],
            project,
            env={"REPROTRAIN_STORE_HELPER": "0"},
        ),
    ]
    cases += restore_cases(project, env, work)
    if not large:
        cases += pipeline_cases(work, env)
    return {c.name: c for c in cases}


def pipeline_cases(work: Path, env: dict[str, str]) -> list[Case]:
    """The same change (prepare.scale=3, so every stage recomputes) three ways: plain `dvc repro
    --force` (the baseline: the computation itself), `dvc exp run`, and `reprotrain run` of the
    `dvc repro` entrypoint. The workspaces `dvc` writes into are put back before each timing."""
    project = projects.build_pipeline(work / "pipeline", env)
    other = projects.pipeline_copy(project, work / "pipeline-other", env)
    path = {"PATH": f"{BIN}{os.pathsep}{env['PATH']}"}
    reset = [["git", "checkout", "-q", "--", "."], [str(BIN / "dvc"), "checkout", "-q"]]
    dvc = str(BIN / "dvc")
    return [
        Case(
            "pipeline: dvc repro --force",
            [dvc, "repro", "-q", "--force"],  # every stage, as the change below makes the others run
            other,
            setup=reset,
            env=path,
        ),
        # -f: every stage computed (not restored from DVC's run-cache, which the warm-up round filled)
        Case(
            "pipeline: dvc exp run",
            [dvc, "exp", "run", "-q", "-f", "-S", "prepare.scale=3"],
            other,
            setup=reset,
            env=path,
        ),
        Case(
            "pipeline: dvc exp run --temp",
            [dvc, "exp", "run", "-q", "-f", "--temp", "-S", "prepare.scale=3"],
            other,
            setup=reset,
            env=path,
        ),
        Case(
            "pipeline: reprotrain run",
            [str(BIN / "reprotrain"), "run", "prepare.scale=3"],
            project,
            env=path,
            warmups=2,
        ),
        Case(
            "pipeline: reprotrain run, warm off",
            [str(BIN / "reprotrain"), "run", "prepare.scale=3"],
            project,
            env=path | {"REPROTRAIN_WARM": "0"},
        ),
    ]


SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10"]
SLURM += ["hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1"]


def slurm_cases(project: Path, work: Path, conf: Path) -> list[Case]:
    """An 8-job sweep through submitit_slurm: a hand-written @hydra.main app against reprotrain; the
    store is a tracking server's job in a team, here the embedded one (every job runs on this host)."""
    py, rt = str(BIN / "python"), str(BIN / "reprotrain")
    sweep = [f"seed={','.join(str(i) for i in range(1, 9))}", *SLURM]
    env = {"SLURM_CONF": str(conf), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}:/usr/sbin"}
    hand = env | {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'stores' / 'hand-slurm.db'}"}
    return [
        Case(
            "hand-written sweep on Slurm (8 jobs)",
            [py, "handwritten.py", "-m", *sweep, f"hydra.sweep.dir={work / 'hand-slurm-sweep'}"],
            project,
            env=hand,
        ),
        Case("reprotrain sweep on Slurm (8 jobs)", [rt, "run", "-m", *sweep], project, env=env),
    ]


UV = Path(__file__).resolve().parent.parent / ".venv-uv" / "bin" / "uv"


def rebuild_main(args: argparse.Namespace, work: Path, env: dict[str, str]) -> int:
    """`rerun --rebuild-env` with a warm environment cache against the same steps by hand (`uv
    venv`, `uv pip install` of the requirements `reprotrain env` printed, the plain rerun in that
    venv), and the cold build (the cache emptied before each round). The run's code ran in a venv
    of its own with PyYAML and NumPy, as a project's would."""
    uv = shutil.which("uv") or str(UV)
    small = projects.build(work / "small", env, 1, 5 * 1024 * 1024, 0)
    project = work / "rebuild-project"  # the small project with a command entrypoint (a callable
    if not project.is_dir():  # would rerun in the rebuilt environment's reprotrain, a case of its own)
        projects.pipeline_copy(small, project, env)
        text = (project / "pyproject.toml").read_text().replace('"train.py:main"', '"python train.py"')
        (project / "pyproject.toml").write_text(text)
        projects.sh(project, "git", "commit", "-qam", "a command entrypoint", env=env)
    code_env = work / "code-venv"
    path = f"{Path(uv).parent}{os.pathsep}{BIN}{os.pathsep}{env['PATH']}"
    if not (code_env / "bin" / "python").exists():
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(code_env)], check=True, env=env)
        install = [uv, "pip", "install", "-q", "--python", str(code_env / "bin" / "python"), "pyyaml", "numpy"]
        subprocess.run(install, check=True, env=env)
    active = {"VIRTUAL_ENV": str(code_env), "PATH": f"{code_env / 'bin'}{os.pathsep}{path}"}
    warm = active | {"REPROTRAIN_ENV_CACHE": str(work / "env-cache-warm")}
    cold_cache = work / "env-cache-cold"
    cold = active | {"REPROTRAIN_ENV_CACHE": str(cold_cache)}
    rt = str(BIN / "reprotrain")
    subprocess.run([rt, "run"], cwd=project, env=env | active, check=True, capture_output=True)
    run_id = subprocess.run(
        [rt, "runs", "--json"], cwd=project, env=env | active, check=True, capture_output=True, text=True
    ).stdout
    run_id = json.loads(run_id)["runs"][0]["run_id"]
    requirements = work / "requirements.txt"
    printed = subprocess.run([rt, "env", run_id], cwd=project, env=env, check=True, capture_output=True, text=True)
    requirements.write_text(printed.stdout)
    hand = work / "hand-venv"
    script = (
        f"rm -rf {hand} && {uv} venv -q --python {sys.executable} {hand} && "
        f"{uv} pip install -q --no-deps --python {hand / 'bin' / 'python'} -r {requirements} && "
        f"VIRTUAL_ENV={hand} PATH={hand / 'bin'}:$PATH {rt} rerun {run_id}"
    )
    cases = {
        c.name: c
        for c in [
            Case("by hand: uv venv + uv pip install + rerun", ["bash", "-c", script], project, env=active),
            Case("rerun --rebuild-env, warm cache", [rt, "rerun", run_id, "--rebuild-env"], project, env=warm),
            Case(
                "rerun --rebuild-env, cold",
                [rt, "rerun", run_id, "--rebuild-env"],
                project,
                setup=[["rm", "-rf", str(cold_cache)]],
                env=cold,
            ),
            Case("plain rerun (today's environment)", [rt, "rerun", run_id], project, env=active),
        ]
    }
    measure(list(cases.values()), env, args.repeats)
    lines = len(printed.stdout.splitlines())
    print(f"\nrebuilt environment ({args.repeats} interleaved rounds, median [range]; requirements: {lines} lines)")
    for case in cases.values():
        print(row(case))
    value = med(cases["rerun --rebuild-env, warm cache"]) / med(cases["by hand: uv venv + uv pip install + rerun"])
    cold_ratio = med(cases["rerun --rebuild-env, cold"]) / med(cases["by hand: uv venv + uv pip install + rerun"])
    one_target(args, "rebuild", cases, "rebuild-env warm / by hand", value)
    print(f"  {'rebuild-env cold / by hand':<42} {cold_ratio:7.2f}   (for reference)")
    return 0


def one_target(
    args: argparse.Namespace, label: str, cases: dict[str, Case], name: str, value: float, limit: float = 1.2
) -> None:
    """Print a target of at most ``limit`` and write the cases and it to --json."""
    mark = "ok" if value <= limit else "MISSED"
    print(f"  {name:<42} {value:7.2f}   target <= {limit}  {mark}")
    if args.json:
        summary = {
            label: {
                "cases": {n: {"median": med(c), "times": c.times} for n, c in cases.items()},
                "targets": [{"name": name, "value": value, "limit": limit}],
            }
        }
        args.json.write_text(json.dumps(summary, indent=2))


def pipeline_main(args: argparse.Namespace, work: Path, env: dict[str, str]) -> int:
    """Only the three-stage pipeline's cases (as the small suite times them): reprotrain's overhead
    over `dvc repro --force` against `dvc exp run`'s, per round too."""
    cases = {c.name: c for c in pipeline_cases(work, env)}
    measure(list(cases.values()), env, args.repeats)
    print(f"\npipeline ({args.repeats} interleaved rounds, median [range])")
    for case in cases.values():
        print(row(case))
    base = med(cases["pipeline: dvc repro --force"])
    rt_over = med(cases["pipeline: reprotrain run"]) - base
    exp_over = med(cases["pipeline: dvc exp run"]) - base
    print(f"  overheads over dvc repro --force: reprotrain run {rt_over:.3f} s, dvc exp run {exp_over:.3f} s")
    cold = med(cases["pipeline: reprotrain run, warm off"]) - base
    print(f"  reprotrain run without its warm process (REPROTRAIN_WARM=0): overhead {cold:.3f} s")
    paired = [
        (r - b) / (e - b) if e > b else float("nan")  # a round where `dvc exp run` cost nothing over the baseline
        for r, e, b in zip(
            cases["pipeline: reprotrain run"].times,
            cases["pipeline: dvc exp run"].times,
            cases["pipeline: dvc repro --force"].times,
        )
    ]
    print("  per round: " + ", ".join(f"{x:.2f}" for x in paired))
    value = rt_over / exp_over if exp_over > 0 else float("inf")
    one_target(args, "pipeline", cases, "pipeline: run overhead / dvc exp run overhead", value, 0.3)
    return 0


def smoke_main(args: argparse.Namespace, work: Path, env: dict[str, str]) -> int:
    """What a smoke run adds to a sweep: the 8-job sweep (joblib, 2 workers) of the small project
    with `--smoke` (one job here first, with `smoke_overrides`) against the same sweep without."""
    small = projects.build(work / "small", env, 1, 5 * 1024 * 1024, 0)
    project = work / "smoke-project"
    if not project.is_dir():
        projects.pipeline_copy(small, project, env)
        toml = project / "pyproject.toml"
        toml.write_text(toml.read_text() + 'smoke_overrides = ["lr=0.0"]\n')
        projects.sh(project, "git", "commit", "-qam", "smoke overrides", env=env)
    rt = str(BIN / "reprotrain")
    sweep = [f"seed={','.join(str(i) for i in range(1, 9))}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    cases = {
        c.name: c
        for c in [
            Case("sweep (8 jobs)", [rt, "run", "-m", *sweep], project),
            Case("sweep --smoke (8 jobs + 1 smoke job)", [rt, "run", "--smoke", "-m", *sweep], project),
        ]
    }
    measure(list(cases.values()), env, args.repeats)
    print(f"\na smoke run before a sweep ({args.repeats} interleaved rounds, median [range])")
    for case in cases.values():
        print(row(case))
    added = med(cases["sweep --smoke (8 jobs + 1 smoke job)"]) - med(cases["sweep (8 jobs)"])
    ratio = med(cases["sweep --smoke (8 jobs + 1 smoke job)"]) / med(cases["sweep (8 jobs)"])
    print(f"  {'the smoke run adds':<42} {added:7.2f} s  ({ratio:.2f}x the sweep)")
    if args.json:
        summary = {"cases": {n: {"median": med(c), "times": c.times} for n, c in cases.items()}, "added_s": added}
        args.json.write_text(json.dumps({"smoke": summary}, indent=2))
    return 0


def schema_main(args: argparse.Namespace, work: Path, env: dict[str, str]) -> int:
    """The warm gate (`reprotrain check`, DVC's memo warm) of a project whose inputs are tables: a
    CSV of 200,000 rows and a directory of 300 partitioned CSV files, with their schemas read (and
    remembered) against the same project with `schemas = false`; and with the schema memo emptied
    before each round (every table read again), for reference."""
    with_schemas = work / "schema-on"
    if not (with_schemas / ".bench-schema").is_file():
        shutil.rmtree(with_schemas, ignore_errors=True)
        projects.build(with_schemas, env, 1, 8 * 1024 * 1024, 0)
        for i in range(300):
            part = with_schemas / "parts" / f"day={i % 30:02d}"
            part.mkdir(parents=True, exist_ok=True)
            (part / f"p-{i:03d}.csv").write_text(
                "id,x,label\n" + "".join(f"{j},{j / 7:.4f},k{j % 5}\n" for j in range(50))
            )
        projects.sh(with_schemas, str(BIN / "dvc"), "add", "-q", "parts", env=env)
        projects.sh(with_schemas, "git", "add", "-A", env=env)
        projects.sh(with_schemas, "git", "commit", "-qm", "partitioned tables", env=env)
        (with_schemas / ".bench-schema").write_text("1")
        (with_schemas / ".git" / "info" / "exclude").write_text("/.bench-built\n/.bench-schema\n")
    without = work / "schema-off"
    if not without.is_dir():
        projects.pipeline_copy(with_schemas, without, env)
        toml = without / "pyproject.toml"
        toml.write_text(toml.read_text() + "schemas = false\n")
        projects.sh(without, "git", "commit", "-qam", "schemas off", env=env)
    memo = work / "schema-memo"
    rt = str(BIN / "reprotrain")
    cold_memo = work / "schema-memo-cold"
    cases = {
        c.name: c
        for c in [
            Case("check, schemas off", [rt, "check"], without),
            Case("check, schemas, warm memo", [rt, "check"], with_schemas, env={"REPROTRAIN_SCHEMA_CACHE": str(memo)}),
            Case(
                "check, schemas, memo emptied",
                [rt, "check"],
                with_schemas,
                setup=[["rm", "-rf", str(cold_memo)]],
                env={"REPROTRAIN_SCHEMA_CACHE": str(cold_memo)},
            ),
        ]
    }
    measure(list(cases.values()), env, args.repeats)
    print(f"\nthe gate with schemas ({args.repeats} interleaved rounds, median [range])")
    for case in cases.values():
        print(row(case))
    value = med(cases["check, schemas, warm memo"]) / med(cases["check, schemas off"])
    cold = med(cases["check, schemas, memo emptied"]) / med(cases["check, schemas off"])
    one_target(args, "schemas", cases, "warm gate with schemas / without", value, limit=1.1)
    print(f"  {'memo emptied / without':<42} {cold:7.2f}   (for reference: every table read)")
    return 0


def slurm_main(args: argparse.Namespace, work: Path, env: dict[str, str]) -> int:
    script = Path(__file__).resolve().parent.parent / "scripts" / "slurm.sh"
    cluster = work / "slurm"
    sbin = env | {"PATH": f"{env['PATH']}:/usr/sbin"}
    started = subprocess.run(["bash", str(script), "start", str(cluster)], env=sbin, stdin=subprocess.DEVNULL)
    if started.returncode != 0:
        raise SystemExit("the Slurm cluster did not start (scripts/slurm.sh start)")
    try:
        project = projects.build(work / "small", env, 1, 5 * 1024 * 1024, 0)
        (work / "stores").mkdir(exist_ok=True)
        cases = {c.name: c for c in slurm_cases(project, work, cluster / "slurm.conf")}
        measure(list(cases.values()), env, args.repeats)
        print(f"\nSlurm sweep ({args.repeats} interleaved rounds, median [range])")
        for case in cases.values():
            print(row(case))
        value = med(cases["reprotrain sweep on Slurm (8 jobs)"]) / med(cases["hand-written sweep on Slurm (8 jobs)"])
        paired = [
            r / h
            for r, h in zip(
                cases["reprotrain sweep on Slurm (8 jobs)"].times, cases["hand-written sweep on Slurm (8 jobs)"].times
            )
        ]
        print("  reprotrain / hand-written per round: " + ", ".join(f"{x:.2f}" for x in paired))
        one_target(args, "slurm", cases, "reprotrain Slurm sweep / hand-written", value)
    finally:
        subprocess.run(["bash", str(script), "stop", str(cluster)], env=sbin, stdin=subprocess.DEVNULL)
    return 0


def ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}" if b > 0 else "   inf"


def report(label: str, c: dict[str, Case], targets: bool, project: Path) -> list[tuple[str, float, float, bool]]:
    print(f"\n{label}")
    for case in c.values():
        print(row(case))
    plain = med(c["python train.py"])
    over = {
        name: med(c[name]) - plain
        for name in (
            "reprotrain run",
            "reprotrain run, helper off",
            "hand-written hydra+mlflow",
            "mlflow run",
            "dvc exp run",
        )
    }
    if "pipeline: reprotrain run" in c:
        base = med(c["pipeline: dvc repro --force"])
        rt_over, exp_over = med(c["pipeline: reprotrain run"]) - base, med(c["pipeline: dvc exp run"]) - base
        print(f"  pipeline overheads over dvc repro --force: reprotrain run {rt_over:.3f} s, exp run {exp_over:.3f} s")
    rt_peak = max(max(c["reprotrain run"].peak_kb), max(c["reprotrain run, helper off"].peak_kb)) / 1024
    helper_peak = helper_peak_mb(project)
    if helper_peak is not None:
        print(f"  store helper process: peak {helper_peak:.0f} MB (serves every launch on this store)")
    checks = [
        ("run overhead / hand-written overhead", over["reprotrain run"] / over["hand-written hydra+mlflow"], 1.0),
        ("run overhead / mlflow run overhead", over["reprotrain run"] / over["mlflow run"], 0.3),
        ("run overhead / dvc exp run overhead", over["reprotrain run"] / over["dvc exp run"], 0.3),
        ("check / (git status + dvc status)", med(c["reprotrain check"]) / med(c["git status + dvc status"]), 0.5),
        ("rerun data restore / cp -r", med(c["rerun data restore"]) / med(c["cp -r data"]), 1.2),
        (
            "reprotrain sweep / hand-written sweep",
            med(c["reprotrain sweep (8 jobs)"]) / med(c["hand-written sweep (8 jobs)"]),
            1.2,
        ),
        ("reprotrain --help / python -c pass", med(c["reprotrain --help"]) / med(c["python -c pass"]), 10.0),
        ("reprotrain run peak MB / 200", rt_peak / 200, 1.0),
    ]
    if helper_peak is not None:
        checks.append(("store helper peak MB / 200", helper_peak / 200, 1.0))
    if "pipeline: reprotrain run" in c:
        value = rt_over / exp_over if exp_over > 0 else float("inf")
        checks.append(("pipeline: run overhead / dvc exp run overhead", value, 0.3))
    info = [
        ("check --hash / md5sum of the data", med(c["reprotrain check --hash"]) / med(c["md5sum of the data"])),
        ("check --hash / check", med(c["reprotrain check --hash"]) / med(c["reprotrain check"])),
        (
            "helper off: run overhead / hand-written",
            over["reprotrain run, helper off"] / over["hand-written hydra+mlflow"],
        ),
        ("helper off: run overhead / mlflow run", over["reprotrain run, helper off"] / over["mlflow run"]),
        ("helper off: run overhead / dvc exp run", over["reprotrain run, helper off"] / over["dvc exp run"]),
        (
            "helper off: sweep / hand-written sweep",
            med(c["reprotrain sweep, helper off"]) / med(c["hand-written sweep (8 jobs)"]),
        ),
    ]
    paired = [r / cp for r, cp in zip(c["rerun data restore"].times, c["cp -r data"].times)]
    print("  restore / cp -r per round (adjacent in each round): " + ", ".join(f"{x:.2f}" for x in paired))
    print("  overheads over python train.py: " + ", ".join(f"{k} {v:.3f} s" for k, v in over.items()))
    results = []
    for name, value, limit in checks:
        ok = value <= limit
        mark = ("ok" if ok else "MISSED") if targets else ""
        print(f"  {name:<42} {value:7.2f}   target <= {limit:<4g} {mark}")
        results.append((name, value, limit, ok))
    for name, value in info:
        print(f"  {name:<42} {value:7.2f}   (for reference)")
    return results


def helper_peak_mb(project: Path) -> float | None:
    """Peak RSS of the store helper serving ``project``'s embedded store, if one is running."""
    uri = f"sqlite:///{project / '.reprotrain' / 'mlflow.db'}"
    for pidfile in (project.parent / "home" / "run").glob("reprotrain-*/store-*.pid"):
        try:
            pid, served = pidfile.read_text().split("\n")[:2]
            status = Path(f"/proc/{int(pid)}/status").read_text()
        except (OSError, ValueError):
            continue
        if served == uri:
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return None


def stop_helpers(home: Path) -> None:
    """Stop the store helpers and warm processes this benchmark's launches started (their pid files are under its own
    XDG_RUNTIME_DIR), by PID, rather than leave them to exit when idle."""
    import signal

    for pidfile in [*(home / "run").glob("reprotrain-*/store-*.pid"), *(home / "run").glob("reprotrain-*/warm-*.pid")]:
        try:
            os.kill(int(pidfile.read_text().split("\n")[0]), signal.SIGTERM)
        except (OSError, ValueError):
            continue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small-only", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "reprotrain-bench")
    parser.add_argument("--large-files", type=int, default=10_000)
    parser.add_argument("--large-mb", type=int, default=1024)
    parser.add_argument("--source-files", type=int, default=5_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--slurm-only", action="store_true", help="only the 8-job sweep on a Slurm cluster")
    parser.add_argument("--rebuild-only", action="store_true", help="only rerun --rebuild-env against by hand")
    parser.add_argument("--schema-only", action="store_true", help="only the warm gate with schemas against without")
    parser.add_argument("--smoke-only", action="store_true", help="only a sweep with a smoke run against without")
    parser.add_argument("--pipeline-only", action="store_true", help="only the DVC pipeline against dvc exp run")
    args = parser.parse_args()

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = projects.bench_env(work / "home")
    try:
        if args.rebuild_only:
            return rebuild_main(args, work, env)
        if args.schema_only:
            return schema_main(args, work, env)
        if args.smoke_only:
            return smoke_main(args, work, env)
        if args.pipeline_only:
            return pipeline_main(args, work, env)
        return slurm_main(args, work, env) if args.slurm_only else tool_cases(args, work, env)
    finally:
        stop_helpers(work / "home")


def tool_cases(args: argparse.Namespace, work: Path, env: dict[str, str]) -> int:
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    versions = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            "import importlib.metadata as m\nfor p in ('reprotrain', 'mlflow', 'mlflow-skinny', 'dvc', 'hydra-core',"
            " 'omegaconf', 'GitPython'):\n    try: print(p, m.version(p), end=', ')\n"
            "    except m.PackageNotFoundError: pass",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"versions: {versions}")
    sizes = [("small", 1, 5 * 1024 * 1024, 0)]
    if not args.small_only:
        sizes.append(("large", args.large_files, args.large_mb * 1024 * 1024, args.source_files))
    summary = {}
    for label, nfiles, nbytes, nsrc in sizes:
        print(
            f"building {label} project ({nfiles} data file(s), {nbytes / 2**20:.0f} MB, {nsrc} source files)...",
            file=sys.stderr,
            flush=True,
        )
        project = projects.build(work / label, env, nfiles, nbytes, nsrc)
        other = projects.other_tools_copy(project, work / f"{label}-other", env)
        cases = suite(project, other, env, work, label == "large")
        measure(list(cases.values()), env, args.repeats)
        results = report(
            f"{label} project ({args.repeats} interleaved rounds, median [range])",
            cases,
            targets=label == "large",
            project=project,
        )
        summary[label] = {
            "cases": {
                n: {
                    "median": med(c),
                    "min": min(c.times),
                    "max": max(c.times),
                    "times": c.times,
                    "peak_mb": max(c.peak_kb) / 1024,
                }
                for n, c in cases.items()
            },
            "targets": [{"name": n, "value": v, "limit": lim, "ok": ok} for n, v, lim, ok in results],
        }
        shutil.rmtree(work / "restore-tree", ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=project, env=env, check=False)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
