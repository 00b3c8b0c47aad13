"""Sample first (issue 20, point 3), through the console script: `run --smoke` (or the
`smoke_multirun` setting for `-m`) first runs the sweep's first job here with the project's
`smoke_overrides`, recorded as a smoke run that `runs` and `last` keep apart; the real run or sweep
is launched, on its own launcher, only if it succeeds. A failing smoke run stops everything with its
exit code and one line."""

from __future__ import annotations

from helpers import all_runs, commit_all, embedded_uri, record_of, run_cli, write_pyproject


def configure(project, **settings):
    write_pyproject(project, entrypoint="python train.py", **settings)
    commit_all(project, "smoke settings")


def smoke_runs(uri: str) -> list:
    return [r for r in all_runs(uri) if r.data.tags.get("reprotrain.smoke") == "true"]


def test_a_passing_smoke_run_comes_first_and_is_kept_apart(project):
    configure(project, smoke_overrides=["sleep=0", "+smoke_marker=1"])
    uri = embedded_uri(project)
    res = run_cli("run", "--smoke", "-m", "model.lr=0.3,0.4", "hydra/launcher=joblib", cwd=project)
    assert res.code == 0, res.describe()
    assert "reprotrain: smoke run first: model.lr=0.3 sleep=0 +smoke_marker=1" in res.err, res.describe()
    assert "passed in" in res.err
    (smoke,) = smoke_runs(uri)
    record = record_of(uri, smoke.info.run_id)
    assert record["config"]["overrides"] == ["model.lr=0.3", "sleep=0", "+smoke_marker=1"]
    assert record["config"]["resolved"]["smoke_marker"] == 1
    assert "launcher" not in record["job"], "the smoke run ran here, on no launcher"
    jobs = [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId")]
    assert len(jobs) == 2 and all(record_of(uri, j.info.run_id)["job"]["launcher"]["name"] == "joblib" for j in jobs)
    assert smoke.info.start_time < min(j.info.start_time for j in jobs)

    listed = run_cli("runs", "--json", cwd=project)
    assert smoke.info.run_id not in listed.out, "runs leaves smoke runs out"
    assert smoke.info.run_id in run_cli("runs", "--smoke", "--json", cwd=project).out
    last = run_cli("show", "last", "--json", cwd=project)
    assert '"kind": "sweep"' in last.out, "last is the sweep, not its smoke run"


def test_a_failing_smoke_run_stops_the_sweep_with_its_exit_code(project):
    configure(project, smoke_overrides=["exit_code=7"], smoke_multirun=True)
    uri = embedded_uri(project)
    res = run_cli("run", "-m", "model.lr=0.3,0.4,0.5", cwd=project)
    assert res.code == 7, res.describe()
    (line,) = [line for line in res.err.splitlines() if "nothing else was launched" in line]
    assert line.startswith("reprotrain: smoke run ") and "failed (exit 7)" in line
    runs = all_runs(uri)
    assert len(runs) == 1 and runs[0].data.tags["reprotrain.smoke"] == "true" and runs[0].info.status == "FAILED"

    skipped = run_cli("run", "--no-smoke", "-m", "model.lr=0.3", cwd=project)
    assert skipped.code == 0 and "smoke run" not in skipped.err, skipped.describe()
    assert len(smoke_runs(uri)) == 1, "--no-smoke: no smoke run, the sweep itself ran"


def test_smoke_needs_its_overrides_and_a_plain_run_has_none(project):
    configure(project, smoke_multirun=True)
    res = run_cli("run", "--smoke", cwd=project)
    assert res.code == 2 and "a smoke run needs the overrides that make a job short" in res.err, res.describe()
    assert "smoke_overrides" in res.err and all_runs(embedded_uri(project)) == []
    plain = run_cli("run", cwd=project)  # smoke_multirun is for -m only
    assert plain.code == 0 and "smoke run" not in plain.err, plain.describe()
    both = run_cli("run", "--smoke", "--no-smoke", cwd=project)
    assert both.code == 2 and "contradict" in both.err


def test_an_unenumerable_sweep_is_left_at_its_value_and_said(project):
    configure(project, smoke_overrides=["sleep=0"])
    res = run_cli("run", "--smoke", "-m", "model.lr=interval(0.1,0.2)", "model.layers=range(1,3)", cwd=project)
    # Hydra's basic sweeper cannot run an interval sweep itself: the smoke run ran, then the sweep failed
    assert "model.lr=interval(0.1,0.2) cannot be enumerated: left at the config's value" in res.err, res.describe()
    (smoke,) = smoke_runs(embedded_uri(project))
    assert record_of(embedded_uri(project), smoke.info.run_id)["config"]["overrides"] == ["model.layers=1", "sleep=0"]
