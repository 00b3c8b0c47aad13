"""Training code that uses MLflow itself runs unchanged, in both entrypoint kinds (issue 13).

Each pattern is one that real projects write (tests/mlflow_code.py imitates them): the code logs
params the config also has, opens its own run (named, nested), autologs, sets the tracking URI or
the experiment, makes runs with its own client, or uses a framework logger with its own client.
reprotrain's run is always closed with the right status, the config stays fully recorded, and
every run the code creates is found, linked both ways and named.
"""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import artifact_text, embedded_uri, record_of, run_cli, single_run
from mlflow_code import KINDS, own_and_others, runs_by_id, setup_mlcode


@pytest.fixture(params=list(KINDS))
def kind(request) -> str:
    return request.param


@pytest.fixture
def ml(project, kind):
    setup_mlcode(project, kind)
    return project


def run_ok(root, *args):
    res = run_cli("run", *args, cwd=root)
    assert res.code == 0, res.describe()
    return res


def linked_warnings(res) -> list[str]:
    return [line for line in res.err.splitlines() if "MLflow run(s) besides run" in line]


def show_json(root, run_id: str) -> dict:
    res = run_cli("show", run_id, "--json", cwd=root)
    assert res.code == 0, res.describe()
    return json.loads(res.out)


# --------------------------------------------------------------------------- params


def test_code_logging_config_params_itself_wins_and_nothing_fails(ml):
    """`log_param("alpha", 1.0)` after the config gave `alpha: 1` crashed the run before."""
    res = run_ok(ml, "pattern=own_params")
    run = single_run(embedded_uri(ml))
    params = run.data.params
    assert run.info.status == "FINISHED", res.describe()
    assert params["alpha"] == "1.0" and params["model.layers"] == "three", "the code's own values stand"
    assert params["seed"] == "0" and params["model.lr"] == "0.1", "same values: logged once"
    assert params["pattern"] == "own_params" and params["data.path"] == "data/train.csv", "the rest of the config"
    assert json.loads(run.data.tags["reprotrain.params.from_code"]) == ["alpha", "model.layers"]
    uri, run_id = embedded_uri(ml), run.info.run_id
    assert json.loads(artifact_text(uri, run_id, "reprotrain/params-from-code.json")) == ["alpha", "model.layers"]
    resolved = record_of(uri, run_id)["config"]["resolved"]
    assert resolved["alpha"] == 1 and resolved["model"]["layers"] == 2, "the record keeps the config's values"
    assert yaml.safe_load(artifact_text(uri, run_id, "reprotrain/config.yaml"))["alpha"] == 1
    assert show_json(ml, run_id)["params_from_code"] == ["alpha", "model.layers"]
    assert "the code's own value stands for: alpha, model.layers" in run_cli("show", run_id, cwd=ml).out


# --------------------------------------------------------------------------- the code's own runs


@pytest.mark.parametrize("pattern", ["start_run", "start_run_named"])
def test_fluent_start_run_attaches_to_reprotrains_run(ml, pattern):
    """`with mlflow.start_run():` failed in a callable with `Run ... is already active`."""
    res = run_ok(ml, f"pattern={pattern}")
    run = single_run(embedded_uri(ml))  # no second run
    assert run.info.status == "FINISHED"
    assert run.data.metrics["score"] == 0.51
    if pattern == "start_run_named":
        assert run.info.run_name == "my-training", "the code's run_name names the run"
    assert not linked_warnings(res) and "reprotrain.foreign_runs" not in run.data.tags


def test_nested_runs_are_linked_both_ways_and_listed(ml):
    res = run_ok(ml, "pattern=nested")
    own, others = own_and_others(ml)
    own_id = own.info.run_id
    assert own.data.metrics["score"] == 0.51 and own.info.status == "FINISHED"
    assert len(others) == 2
    roles = {o.data.tags["reprotrain.role"]: o for o in others}
    assert set(roles) == {"nested:fold-0", "nested:fold-1"}, roles
    for other in others:
        assert other.data.tags["mlflow.parentRunId"] == own_id
        assert other.data.tags["reprotrain.launched_by"] == own_id
        assert other.data.tags["reprotrain.opened_during"] == own_id
    assert roles["nested:fold-1"].data.metrics == {"fold_score": 1.51}
    assert sorted(json.loads(own.data.tags["reprotrain.foreign_runs"])) == sorted(o.info.run_id for o in others)
    (warning,) = linked_warnings(res)
    assert own_id in warning and all(o.info.run_id in warning for o in others) and "nested in it" in warning

    shown = show_json(ml, own_id)
    assert {r["role"] for r in shown["linked_runs"]} == {"nested:fold-0", "nested:fold-1"}
    text = run_cli("show", own_id, cwd=ml).out
    assert "linked runs" in text and "nested:fold-0" in text, text
    listed = json.loads(run_cli("runs", "--json", cwd=ml).out)["runs"]
    assert [r["run_id"] for r in listed] == [own_id], "the code's own runs are listed by `show`, not `runs`"
    other_id = others[0].info.run_id
    refused = run_cli("show", other_id, cwd=ml)
    assert refused.code == 1 and f"reprotrain show {own_id}" in refused.err, refused.describe()


def test_autolog_logs_into_reprotrains_run(ml):
    """`mlflow.autolog()`: the estimator's params and training metrics land in reprotrain's run; the
    estimator's `alpha` (0.5) stands beside the config's `alpha: 1`."""
    res = run_ok(ml, "pattern=autolog")
    own, others = own_and_others(ml)
    assert own.info.status == "FINISHED", res.describe()
    assert own.data.tags.get("mlflow.autologging") == "sklearn"
    assert "training_r2_score" in own.data.metrics
    assert own.data.params["alpha"] == "0.5"
    assert "alpha" in json.loads(own.data.tags["reprotrain.params.from_code"])
    assert record_of(embedded_uri(ml), own.info.run_id)["config"]["resolved"]["alpha"] == 1
    # autolog ends the run it used after fit; the code's next log_metric opens a run, as in MLflow
    (after,) = others
    assert after.data.tags["reprotrain.opened_during"] == own.info.run_id and "score" in after.data.metrics
    (warning,) = linked_warnings(res)
    assert "experiment_name" not in warning, "the run is in reprotrain's own experiment: no hint to change it"


# --------------------------------------------------------------------------- tracking URI and experiment


def test_set_tracking_uri_to_the_same_store_spelled_otherwise(ml):
    res = run_ok(ml, "pattern=tracking_uri", "tracking_uri='sqlite:///.reprotrain/mlflow.db'")
    run = single_run(embedded_uri(ml))
    assert run.data.metrics["score"] == 0.51 and run.info.status == "FINISHED"
    assert not linked_warnings(res)


def test_set_tracking_uri_to_another_store(ml, tmp_path):
    """Before: the code crashed (command) or reprotrain's own closing call did (callable), and
    `show last` said no run was launched."""
    other = f"sqlite:///{tmp_path / 'other.db'}"
    res = run_ok(ml, "pattern=tracking_uri", f"tracking_uri='{other}'")
    own = single_run(embedded_uri(ml))
    assert own.info.status == "FINISHED" and "score" not in own.data.metrics
    (theirs,) = runs_by_id(other).values()
    assert theirs.data.metrics == {"score": 0.51}
    assert theirs.data.tags["reprotrain.launched_by"] == own.info.run_id
    assert theirs.data.tags["reprotrain.opened_during"] == own.info.run_id
    assert json.loads(own.data.tags["reprotrain.foreign_runs"]) == [theirs.info.run_id]
    (warning,) = linked_warnings(res)
    assert f"in another store {other}" in warning and theirs.info.run_id in warning, warning
    (row,) = show_json(ml, "last")["linked_runs"]
    assert row["store"] == other and row["metrics"] == {"score": 0.51} and row["role"].startswith("Default in ")


def test_failing_code_after_switching_the_store_leaves_a_failed_run(ml, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    res = run_cli("run", "pattern=tracking_uri", f"tracking_uri='{other}'", "fail=true", cwd=ml)
    assert res.code == 1, res.describe()
    assert "MLCODE-TRAINING-FAILED" in res.err
    own = single_run(embedded_uri(ml))
    assert own.info.status == "FAILED" and own.data.tags["reprotrain.exit_code"] == "1"
    shown = show_json(ml, "last")
    assert shown["status"] == "FAILED" and len(shown["linked_runs"]) == 1


def test_set_experiment_before_start_run(ml):
    """MLflow itself refuses (`active experiment ID does not match environment run ID`): the code's
    run goes to the experiment it asked for, and is linked."""
    res = run_ok(ml, "pattern=set_experiment")
    own, others = own_and_others(ml)
    (theirs,) = others
    names = {e.experiment_id: e.name for e in _experiments(ml)}
    assert names[theirs.info.experiment_id] == "my-experiment"
    assert theirs.info.run_name == "in-my-experiment" and theirs.data.metrics == {"score": 0.51}
    assert theirs.data.tags["reprotrain.role"] == "my-experiment:in-my-experiment"
    assert own.info.status == "FINISHED"
    (warning,) = linked_warnings(res)
    assert "experiment 'my-experiment'" in warning and 'set experiment_name = "my-experiment"' in warning


def test_set_experiment_to_reprotrains_own_experiment_attaches(ml):
    res = run_ok(ml, "pattern=set_experiment", "mlflow_experiment=demo")
    run = single_run(embedded_uri(ml))
    assert run.data.metrics["score"] == 0.51 and run.info.run_name == "in-my-experiment"
    assert not linked_warnings(res)


def _experiments(root):
    from helpers import client_for
    from mlflow.entities import ViewType

    return client_for(embedded_uri(root)).search_experiments(view_type=ViewType.ALL)


# --------------------------------------------------------------------------- clients of its own


def test_client_create_run_in_another_experiment_is_found(ml):
    """`MlflowClient().create_run(...)` ignores MLFLOW_RUN_ID: before, its run was not found at all."""
    res = run_ok(ml, "pattern=client_run")
    own, others = own_and_others(ml)
    (theirs,) = others
    assert theirs.data.metrics == {"score": 0.51}
    assert theirs.data.tags["reprotrain.launched_by"] == own.info.run_id
    assert theirs.data.tags["reprotrain.role"] == "client-exp#1"
    assert json.loads(own.data.tags["reprotrain.foreign_runs"]) == [theirs.info.run_id]
    assert len(linked_warnings(res)) == 1


def test_framework_logger_with_its_own_client_is_linked(ml):
    res = run_ok(ml, "pattern=logger")
    own, others = own_and_others(ml)
    (theirs,) = others
    assert theirs.data.tags["source"] == "framework" and theirs.data.params == {"alpha": "1"}
    assert theirs.data.tags["reprotrain.role"] == "lightning_logs#1"
    assert own.info.status == "FINISHED"
    assert 'set experiment_name = "lightning_logs"' in linked_warnings(res)[0]


@pytest.mark.parametrize("spelling", ["${reprotrain:run_id}", "${oc.env:MLFLOW_RUN_ID}"])
def test_framework_logger_pointed_at_reprotrains_run_from_the_command_line(ml, spelling):
    """The run ID is known when the config resolves, so the logger attaches (before, resolving
    `${oc.env:MLFLOW_RUN_ID}` failed: the run did not exist yet)."""
    res = run_ok(ml, "pattern=logger", f"logger.run_id={spelling}")
    run = single_run(embedded_uri(ml))  # the logger made no run of its own
    run_id = run.info.run_id
    assert run.data.metrics["score"] == 0.51 and run.data.params["alpha"] == "1"
    assert run.data.params["logger.run_id"] == run_id
    record = record_of(embedded_uri(ml), run_id)
    assert record["config"]["resolved"]["logger"]["run_id"] == run_id
    assert "logger.run_id" in record["config"]["volatile"], "a rerun's own ID must not count as a change"
    assert record["config"]["overrides"] == ["pattern=logger", f"logger.run_id={spelling}"]
    assert not linked_warnings(res) and run.info.status == "FINISHED"


def test_names_bound_when_the_module_is_imported_are_hooked_too(ml):
    """`from mlflow import start_run, set_experiment` at the top of the code's module."""
    run_ok(ml, "pattern=bound_names")
    own, others = own_and_others(ml)
    (theirs,) = others
    names = {e.experiment_id: e.name for e in _experiments(ml)}
    assert names[theirs.info.experiment_id] == "my-experiment" and theirs.data.metrics == {"score": 0.51}
    assert theirs.data.tags["reprotrain.opened_during"] == own.info.run_id


def test_a_run_without_reprotrains_tags_is_not_claimed_when_the_hook_was_there(ml):
    """Another process (without the hook) writes a run into the same store while the job runs: it is
    not the code's, as far as anyone can tell, and is left alone."""
    res = run_ok(ml, "pattern=colleague")
    own, others = own_and_others(ml)
    (colleague,) = others
    assert not any(k.startswith("reprotrain.") for k in colleague.data.tags), colleague.data.tags
    assert "reprotrain.foreign_runs" not in own.data.tags and not linked_warnings(res)


def test_a_pool_of_workers_runs_share_one_role_and_are_closed_when_the_job_ends(ml):
    """Workers' runs that overlap in time have no order; runs left RUNNING get the job's status."""
    res = run_ok(ml, "pattern=pool")
    own, others = own_and_others(ml)
    assert own.data.metrics["score"] == 0.51
    assert len(others) == 2, res.describe()
    assert {o.data.tags["reprotrain.role"] for o in others} == {"demo#1-2"}
    assert {o.info.status for o in others} == {"FINISHED"}, "left RUNNING by the workers, closed by reprotrain"
    assert all("left RUNNING" in o.data.tags["reprotrain.status_reason"] for o in others)
    assert sorted(o.data.metrics["score"] for o in others) == [0.5, 1.5]


def test_run_without_the_hook_is_found_by_its_time(project):
    """`python -E` ignores PYTHONPATH, so reprotrain's hook is not in the code's process: a client's
    run in the embedded store is still found (by when it was created) and linked."""
    setup_mlcode(project, "command", entrypoint="python -E mlcode.py")
    res = run_ok(project, "pattern=client_run")
    assert "reprotrain's MLflow hook will not be in the training code's process: it runs Python with -E" in res.err
    own, others = own_and_others(project)
    (theirs,) = others
    assert "reprotrain.launched_by" not in theirs.data.tags, "the hook was not there to tag it"
    assert theirs.data.tags["reprotrain.opened_during"] == own.info.run_id
    (row,) = show_json(project, own.info.run_id)["linked_runs"]
    assert row["found_by"] == "time" and row["role"] == "client-exp#1"
    assert len(linked_warnings(res)) == 1


def test_jobs_in_one_process_do_not_leak_mlflow_state(project):
    """A sweep runs its jobs in one process (Hydra's basic launcher; a reused joblib worker): the
    experiment, autologging and last run one callable job left must not reach the next."""
    setup_mlcode(project, "callable")
    res = run_cli("run", "-m", "pattern=set_experiment,autolog,fit_only", cwd=project, timeout=300)
    assert res.code == 0, res.describe()
    runs = runs_by_id(embedded_uri(project))
    jobs = {r.data.params.get("pattern"): r for r in runs.values() if "reprotrain.config.digest" in r.data.tags}
    assert set(jobs) == {"set_experiment", "autolog", "fit_only"}, jobs
    last = jobs["fit_only"]
    assert last.data.metrics == {"score": 0.51, "saw_last_active_run": 0.0}, "autolog or the last run leaked"
    assert last.info.experiment_id == jobs["set_experiment"].info.experiment_id
    assert "reprotrain.foreign_runs" not in last.data.tags
    assert "training_r2_score" in jobs["autolog"].data.metrics
    assert all(r.info.status == "FINISHED" for r in jobs.values())
