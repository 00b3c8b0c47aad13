"""The Hydra command line passes through `reprotrain run` to a real Hydra app."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from helpers import (
    all_runs,
    artifact_json,
    artifact_text,
    commit_all,
    configure,
    embedded_uri,
    git_status,
    record_of,
    run_cli,
    run_ok,
    write_pyproject,
)


def test_override_forms(project):
    overrides = ["model.lr=0.3", "+extra=5", "++model.layers=7", "++newkey=abc", "~seed"]
    _, run = run_ok(project, *overrides)
    uri, run_id = embedded_uri(project), run.info.run_id
    params = run.data.params
    assert params["model.lr"] == "0.3"
    assert params["extra"] == "5"
    assert params["model.layers"] == "7"
    assert params["newkey"] == "abc"
    assert "seed" not in params, params
    record = record_of(uri, run_id)
    assert record["config"]["overrides"] == overrides
    assert json.loads(run.data.tags["reprotrain.overrides"]) == overrides
    resolved = record["config"]["resolved"]
    assert resolved["model"] == {"lr": 0.3, "layers": 7}
    assert resolved["extra"] == 5 and "seed" not in resolved
    assert yaml.safe_load(artifact_text(uri, run_id, ".hydra/overrides.yaml")) == overrides


def test_plus_experiment(project):
    _, run = run_ok(project, "+experiment=fast")
    assert run.data.params["model.lr"] == "0.5"
    assert run.data.params["model.layers"] == "2"
    record = record_of(embedded_uri(project), run.info.run_id)
    assert record["config"]["choices"].get("experiment") == "fast", record["config"]["choices"]
    assert json.loads(run.data.tags["reprotrain.overrides"]) == ["+experiment=fast"]


def test_other_primary_config_with_experiment_in_defaults(project):
    """`-cn other`, whose defaults list has `experiment: null`: there `experiment=fast` is right."""
    _, run = run_ok(project, "-cn", "other", "experiment=fast")
    params = run.data.params
    assert params["which"] == "other"
    assert params["model.layers"] == "3"
    assert params["model.lr"] == "0.5"
    record = record_of(embedded_uri(project), run.info.run_id)
    assert record["config"]["name"] == "other"
    assert record["config"]["choices"].get("experiment") == "fast"
    assert record["config"]["overrides"] == ["experiment=fast"]


def test_multirun_one_run_per_job(project):
    before = git_status(project)
    res = run_cli("run", "-m", "model.lr=0.1,0.2", cwd=project)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    everything = all_runs(uri)
    # the sweep's parent has the jobs' params too (swept ones as a list, for the MLflow UI)
    runs = [r for r in everything if "model.lr" in r.data.params and r.data.tags.get("reprotrain.sweep") != "true"]
    assert sorted(r.data.params["model.lr"] for r in runs) == ["0.1", "0.2"], "one run per job"
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
    others = {r.info.run_id for r in everything} - {r.info.run_id for r in runs}
    assert others <= parents, "any other run is the sweep's parent"
    assert {r.info.status for r in everything} == {"FINISHED"}
    for run in runs:
        record = record_of(uri, run.info.run_id)
        assert record["run_id"] == run.info.run_id
        assert record["config"]["resolved"]["model"]["lr"] == float(run.data.params["model.lr"])
        assert artifact_json(uri, run.info.run_id, "seen.json")["env"]["MLFLOW_RUN_ID"] == run.info.run_id
    assert not (project / "multirun").exists()
    assert git_status(project) == before


def test_cfg_job_prints_config_and_creates_no_run(project):
    before = git_status(project)
    res = run_cli("run", "--cfg", "job", "model.lr=0.4", cwd=project)
    assert res.code == 0, res.describe()
    assert "lr: 0.4" in res.out and "layers: 2" in res.out, res.out
    assert all_runs(embedded_uri(project)) == []
    assert git_status(project) == before


def test_hydra_app_help_creates_no_run(project):
    res = run_cli("run", "--help", cwd=project)
    assert res.code == 0, res.describe()
    assert "Powered by Hydra" in res.out, res.out
    assert "experiment" in res.out, "the app help lists the config groups"
    assert "lr: 0.1" in res.out, "the app help shows the config"
    assert all_runs(embedded_uri(project)) == []


@pytest.mark.parametrize(
    "args",
    [
        ["nosuchkey=1"],
        ["+experiment=nope"],
        ["-cn", "other", "experiment=nope"],
        ["-cn", "nosuchconfig"],
        ["model.lr=[1,"],
    ],
    ids=["unknown-key", "unknown-group-option", "unknown-option-in-defaults", "unknown-primary", "bad-syntax"],
)
def test_bad_command_line_exits_2_and_creates_no_run(project, args):
    res = run_cli("run", *args, cwd=project)
    assert res.code == 2, res.describe()
    assert "Traceback" not in res.err, res.err
    assert all_runs(embedded_uri(project)) == []


def test_bad_override_message_names_the_key(project):
    res = run_cli("run", "nosuchkey=1", cwd=project)
    assert res.code == 2, res.describe()
    assert "nosuchkey" in res.err, res.err


def test_config_dir_and_name_from_settings(project):
    (project / "configs").mkdir()
    shutil.move(project / "conf", project / "configs" / "train")
    (project / "configs" / "train" / "config.yaml").rename(project / "configs" / "train" / "main.yaml")
    configure(project, config_dir="configs/train", config_name="main")
    _, run = run_ok(project, "+experiment=fast")
    assert run.data.params["model.lr"] == "0.5"
    record = record_of(embedded_uri(project), run.info.run_id)
    assert record["config"]["name"] == "main"
    assert str(record["config"]["dir"]).rstrip("/").endswith("configs/train"), record["config"]


def test_missing_entrypoint_is_a_settings_error(project):
    write_pyproject(project)  # [tool.reprotrain] without entrypoint
    commit_all(project, "no entrypoint")
    res = run_cli("run", cwd=project)
    assert res.code == 2, res.describe()
    assert "entrypoint" in res.err, res.err
    assert all_runs(embedded_uri(project)) == []
