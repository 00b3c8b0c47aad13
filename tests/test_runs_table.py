"""`reprotrain runs` and `diff` for people and scripts: MLflow's filter syntax, sorting, chosen
columns, a table that fits the terminal, sweeps grouped, every metric, colour only on a terminal;
`diff` of N runs naming the overrides behind each change."""

from __future__ import annotations

import json
import os
import pty
import subprocess

import pytest
from helpers import REPROTRAIN, cli_env, copy_project, run_cli
from team_services import setup_sweep_project

LONG = "x" * 150


@pytest.fixture(scope="module")
def listed(template_project, tmp_path_factory):
    from helpers import embedded_uri

    root = copy_project(template_project, tmp_path_factory.mktemp("table") / "demo")
    setup_sweep_project(root)
    for args in (("-m", "seed=1,2"), ("seed=3", f"+long={LONG}")):
        res = run_cli("run", *args, cwd=root)
        assert res.code == 0, res.describe()
    parent, jobs = split_sweep_of(embedded_uri(root))
    return root, parent, jobs


def split_sweep_of(uri):
    from helpers import all_runs

    runs = all_runs(uri)
    sweep_ids = {r.info.run_id for r in runs if r.data.tags.get("reprotrain.sweep") == "true"}
    parent = next(r for r in runs if r.info.run_id in sweep_ids)
    jobs = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: int(r.data.tags["reprotrain.job.num"]),
    )
    return parent.info.run_id, [j.info.run_id for j in jobs]


def piped(root, *args) -> str:
    """What a command prints into a pipe, with no COLUMNS (pytest's workers may have one set)."""
    env = {k: v for k, v in cli_env(root).items() if k != "COLUMNS"}
    done = subprocess.run([str(REPROTRAIN), *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(root, *args):
    res = run_cli("runs", "--json", *args, cwd=root)
    assert res.code == 0, res.describe()
    data = json.loads(res.out)
    assert data["schema"] == 1
    return data["runs"]


def test_filter_is_mlflows_search_syntax(listed):
    root, _, jobs = listed
    found = rows(root, "--filter", "metrics.loss < 0.0415")
    assert [r["run_id"] for r in found] == [jobs[0]], found
    both = rows(root, "--filter", "params.seed = '2'", "--status", "finished")
    assert [r["run_id"] for r in both] == [jobs[1]]
    bad = run_cli("runs", "--filter", "metrics.loss <<< 1", cwd=root)
    assert bad.code == 2 and "MLflow rejected the search" in bad.err and bad.err.count("\n") == 1, bad.describe()


def test_sort_by_metric_both_ways_and_bad_keys(listed):
    root, *_ = listed
    losses = [r["metrics"].get("loss") for r in rows(root, "--sort", "metrics.loss")]
    known = [v for v in losses if v is not None]
    assert known == sorted(known) and len(known) == 3 and losses[-1] is None, losses  # the parent: no loss
    down = [r["metrics"]["loss"] for r in rows(root, "--sort", "metrics.loss:desc") if "loss" in r["metrics"]]
    assert down == sorted(down, reverse=True)
    for bad in ("loss", "metrics.loss:sideways"):
        res = run_cli("runs", "--sort", bad, cwd=root)
        assert res.code == 2 and "--sort" in res.err, res.describe()


def test_numbers_in_params_and_tags_sort_as_numbers_and_tags_are_columns(listed):
    from helpers import embedded_uri
    from mlflow import MlflowClient

    root, _, jobs = listed
    client = MlflowClient(embedded_uri(root))
    for run_id, rank in zip(jobs, ("10", "9")):  # MLflow alone puts "10" before "9"
        client.set_tag(run_id, "rank", rank)
    ranked = [r["tags"]["rank"] for r in rows(root, "--sort", "tags.rank") if "rank" in r["tags"]]
    assert ranked == ["9", "10"], ranked
    assert [r["run_id"] for r in rows(root, "--sort", "tags.rank:desc", "--limit", "1")] == [jobs[0]]
    assert all(not k.startswith(("mlflow.", "reprotrain.")) for r in rows(root) for k in r["tags"])
    header, *lines = piped(root, "runs", "--columns", "run,tags.rank", "--sort", "tags.rank").splitlines()
    assert header.split() == ["RUN", "TAGS.RANK"] and [x.split()[-1] for x in lines[:2]] == ["9", "10"], lines
    seeds = [r["params"]["seed"] for r in rows(root, "--sort", "params.seed") if "seed" in r["params"]]
    assert seeds == ["1", "2", "3", "1, 2"], seeds  # numbers first; the sweep parent's `1, 2` is text


def test_json_rows_carry_name_times_params_and_booleans(listed):
    root, parent, jobs = listed
    row = next(r for r in rows(root) if r["run_id"] == jobs[0])
    assert row["name"] and row["params"]["seed"] == "1"
    assert row["start_time"].endswith("+00:00") and row["end_time"].endswith("+00:00")
    assert row["pinned"] is True and row["reproduced"] is None and row["parent"] == parent


def test_columns_and_every_metric(listed):
    root, _, jobs = listed
    header, *lines = piped(root, "runs", "--columns", "run,metrics.loss,params.seed").splitlines()
    assert header.split() == ["RUN", "METRICS.LOSS", "PARAMS.SEED"]
    assert any(line.startswith("└ " + jobs[0][:10]) and line.split()[-1] == "1" for line in lines), lines
    table = piped(root, "runs")
    line = next(x for x in table.splitlines() if jobs[0][:10] in x)
    assert "loss=" in line and "lr=" in line and "seed=" in line, "every metric, not the first three"
    bad = run_cli("runs", "--columns", "run,bogus", cwd=root)
    assert bad.code == 2 and "bogus" in bad.err


def test_a_sweeps_jobs_are_grouped_under_it(listed):
    root, parent, jobs = listed
    lines = piped(root, "runs").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(parent[:12]))
    assert [line.split()[1] for line in lines[at + 1 : at + 3]] == [jobs[0][:10], jobs[1][:10]], lines


def test_the_table_fits_the_terminal_and_a_pipe_gets_whole_lines(listed):
    root, *_ = listed
    for columns in (100, 80, 60):
        narrow = run_cli("runs", cwd=root, env=cli_env(root, {"COLUMNS": str(columns)})).out.splitlines()
        assert max(len(line) for line in narrow) <= columns, narrow
        assert any("…" in line for line in narrow), "the long override is cut, not every row padded"
        assert narrow[0].split()[:2] == ["RUN", "STATUS"], narrow[0]
    assert LONG in piped(root, "runs")


def on_terminal(root, *args, env=None):
    """What a command prints on a pseudo-terminal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(REPROTRAIN), *args], cwd=root, env=env or cli_env(root), stdout=follower, stderr=subprocess.DEVNULL
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(120)
    os.close(leader)
    return out.decode()


def test_colour_on_a_terminal_only_and_never_with_no_color(listed):
    root, *_ = listed
    assert "\033[32mFINISHED" in on_terminal(root, "runs", "--limit", "2")
    assert "\033[" not in on_terminal(root, "runs", "--limit", "2", env=cli_env(root, {"NO_COLOR": "1"}))
    assert "\033[" not in piped(root, "runs")


def test_diff_of_three_runs_names_the_overrides(listed):
    root, parent, jobs = listed
    res = run_cli("diff", jobs[0][:12], jobs[1][:12], "last", cwd=root)
    assert res.code == 0, res.describe()
    assert res.out.count("diff ") == 2, "each run against the first"
    assert "overrides a  seed=1" in res.out and "overrides b  seed=2" in res.out, res.out
    assert "seed: 1 -> 2  (a: seed=1, b: seed=2)" in res.out, res.out
    data = json.loads(run_cli("diff", jobs[0], jobs[1], "last", "--json", cwd=root).out)
    assert data["schema"] == 1 and data["runs"][:2] == jobs and len(data["pairs"]) == 2
    one = run_cli("diff", jobs[0], cwd=root)
    assert one.code == 2, one.describe()
