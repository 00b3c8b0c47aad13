"""What one run records: tags, reprotrain/record.json, dataset inputs, params, metrics, artifacts,
and an honest `pinned`."""

from __future__ import annotations

import json
import platform
import types

import pytest
import yaml
from helpers import (
    CHILD_LOGS,
    STDERR_MARKER,
    STDOUT_MARKER,
    TRACKED_DATA_DIR,
    TRACKED_DATA_FILE,
    all_runs,
    artifact_json,
    artifact_paths,
    artifact_text,
    commit_all,
    configure,
    copy_project,
    dvc_out,
    embedded_uri,
    git,
    head_sha,
    record_of,
    run_ok,
)

REMOTE_WITH_TOKEN = "https://user:tok3n@example.com/x.git"
REMOTE_CLEAN = "https://example.com/x.git"


@pytest.fixture(scope="module")
def recorded(template_project, tmp_path_factory):
    """One ordinary run (remote with a token in its URL, one override), shared by this module."""
    root = copy_project(template_project, tmp_path_factory.mktemp("record") / "demo")
    git(root, "remote", "add", "origin", REMOTE_WITH_TOKEN)
    result, run = run_ok(root, "seed=3", env=CHILD_LOGS)
    uri = embedded_uri(root)
    return types.SimpleNamespace(
        root=root,
        uri=uri,
        result=result,
        run=run,
        run_id=run.info.run_id,
        sha=head_sha(root),
        record=record_of(uri, run.info.run_id),
    )


def test_tags(recorded):
    tags = recorded.run.data.tags
    assert tags["mlflow.source.git.commit"] == recorded.sha
    assert tags["reprotrain.git.commit"] == recorded.sha
    assert tags["reprotrain.git.branch"] == "main"
    assert tags["reprotrain.git.remote"] == REMOTE_CLEAN
    assert tags["reprotrain.pinned"] == "true"
    assert tags["reprotrain.data.digest"].strip()
    assert tags["reprotrain.config.digest"].strip()
    assert json.loads(tags["reprotrain.overrides"]) == ["seed=3"]
    assert tags["reprotrain.exit_code"] == "0"


def test_no_credential_anywhere(recorded):
    run = recorded.run
    stored = json.dumps([run.data.tags, run.data.params, recorded.record])
    stored += artifact_text(recorded.uri, recorded.run_id, "reprotrain/console.log")
    assert "tok3n" not in stored


def test_record_fields(recorded):
    record = recorded.record
    assert record["schema"]
    assert record["run_id"] == recorded.run_id
    assert record["pinned"] is True
    assert record["problems"] == []
    git_part = {key: record["git"].get(key) for key in ("commit", "branch", "remote")}
    assert git_part == {"commit": recorded.sha, "branch": "main", "remote": REMOTE_CLEAN}
    config = record["config"]
    assert config["name"] == "config"
    assert str(config["dir"]).rstrip("/").endswith("conf")
    assert config["overrides"] == ["seed=3"]
    assert isinstance(config["choices"], dict)
    assert config["resolved"]["model"] == {"lr": 0.1, "layers": 2}
    assert config["resolved"]["seed"] == 3
    artifact_cfg = yaml.safe_load(artifact_text(recorded.uri, recorded.run_id, "reprotrain/config.yaml"))
    assert config["resolved"] == artifact_cfg
    assert record["command"]
    env = record["environment"]
    assert platform.python_version() in str(env["python"]), env["python"]
    assert env["platform"]
    assert "mlflow" in json.dumps(env["packages"]).lower()
    assert record["reprotrain_version"]


def test_record_data_matches_dvc_files(recorded):
    by_path = {entry["path"]: entry for entry in recorded.record["data"]}
    assert set(by_path) == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}, by_path
    file_out = dvc_out(recorded.root, "data/train.csv.dvc")
    assert by_path[TRACKED_DATA_FILE]["hash"] == file_out["md5"]
    assert by_path[TRACKED_DATA_FILE]["size"] == file_out["size"]
    assert str(by_path[TRACKED_DATA_FILE]["source"]).endswith("train.csv.dvc")
    dir_out = dvc_out(recorded.root, "data/images.dvc")
    assert dir_out["md5"].endswith(".dir")
    assert by_path[TRACKED_DATA_DIR]["hash"] == dir_out["md5"]
    assert by_path[TRACKED_DATA_DIR]["size"] == dir_out["size"]
    assert by_path[TRACKED_DATA_DIR]["nfiles"] == dir_out["nfiles"] == 3
    assert str(by_path[TRACKED_DATA_DIR]["source"]).endswith("images.dvc")


def test_dataset_inputs_carry_dvc_hashes(recorded):
    run = recorded.run
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert inputs == {
        TRACKED_DATA_FILE: dvc_out(recorded.root, "data/train.csv.dvc")["md5"],
        TRACKED_DATA_DIR: dvc_out(recorded.root, "data/images.dvc")["md5"],
    }


def test_params_are_the_flattened_config(recorded):
    params = recorded.run.data.params
    assert params["model.lr"] == "0.1"
    assert params["model.layers"] == "2"
    assert params["seed"] == "3"
    assert params["data.path"] == TRACKED_DATA_FILE
    assert params["stamp"] == recorded.record["config"]["resolved"]["stamp"]
    assert params["child_param"] == "from-child", "the child's own log_param lands in the run"


def test_metrics_from_file_and_from_child_in_one_run(recorded):
    metrics = recorded.run.data.metrics
    assert metrics["acc"] == 0.9 and metrics["loss"] == 0.25
    assert metrics["child_metric"] == 1.5
    assert len(all_runs(recorded.uri)) == 1, "the child must not open a run of its own"


def test_artifacts_and_console(recorded):
    paths = artifact_paths(recorded.uri, recorded.run_id)
    expected = {
        "reprotrain/record.json",
        "reprotrain/config.yaml",
        "reprotrain/console.log",
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "metrics.json",
        "seen.json",
        "model/weights.txt",
    }
    assert expected <= paths, f"missing: {sorted(expected - paths)}"
    console = artifact_text(recorded.uri, recorded.run_id, "reprotrain/console.log")
    assert STDOUT_MARKER in console and STDERR_MARKER in console, console[-2000:]
    terminal = recorded.result.out + recorded.result.err
    assert STDOUT_MARKER in terminal and STDERR_MARKER in terminal, "console output streams to the terminal"


def test_console_log_keeps_lines_whole(recorded):
    """stdout and stderr lines of the training code must not be spliced into one another."""
    lines = artifact_text(recorded.uri, recorded.run_id, "reprotrain/console.log").splitlines()
    assert STDOUT_MARKER in lines and STDERR_MARKER in lines, lines[-20:]


def test_ordinary_values_are_not_masked(project):
    """A config value read from the environment (`${oc.env:SPLIT,train}`-like) is no secret: the
    same word elsewhere (data paths, the command, the code's own output files) stays as it is."""
    _, run = run_ok(project, env={"REPROTRAIN_DEMO_ENV": "train"})
    uri, run_id = embedded_uri(project), run.info.run_id
    record = record_of(uri, run_id)
    assert {entry["path"] for entry in record["data"]} == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}
    assert run.data.params["data.path"] == TRACKED_DATA_FILE
    assert "train.py" in json.dumps(record["command"]), record["command"]


def test_working_directory_is_not_masked(project):
    """A shell sets PWD to the directory the user is in (the repo root): a path, not a password."""
    _, run = run_ok(project, env={"PWD": str(project)})
    seen = artifact_json(embedded_uri(project), run.info.run_id, "seen.json")
    assert seen["cwd"] == str(project), "output files are logged as the code wrote them"
    assert seen["env"]["MLFLOW_TRACKING_URI"].startswith(f"sqlite:///{project}/"), seen["env"]


def test_long_config_value_never_fails_the_run(project):
    big = "x" * (100 * 1024)
    (project / "conf" / "experiment" / "big.yaml").write_text(f'# @package _global_\nbig: "{big}"\n')
    commit_all(project, "big value")
    _, run = run_ok(project, "+experiment=big")
    assert run.info.status == "FINISHED"
    param = run.data.params["big"]
    assert 0 < len(param) < len(big) and big.startswith(param)
    uri = embedded_uri(project)
    assert yaml.safe_load(artifact_text(uri, run.info.run_id, "reprotrain/config.yaml"))["big"] == big
    assert record_of(uri, run.info.run_id)["config"]["resolved"]["big"] == big
    assert run.data.params["model.lr"] == "0.1", "the other params are still logged"


def test_metrics_files_setting(project):
    configure(project, metrics_files=["extra_metrics.json"])
    _, run = run_ok(project)
    assert run.data.metrics["f1"] == 0.8
    assert run.data.metrics["acc"] == 0.9


def test_detached_head_records_empty_branch(project):
    sha = head_sha(project)
    git(project, "checkout", "-q", "--detach")
    _, run = run_ok(project)
    tags = run.data.tags
    assert tags["reprotrain.git.commit"] == sha
    assert tags.get("reprotrain.git.branch", "") == ""
    assert record_of(embedded_uri(project), run.info.run_id)["git"]["branch"] in ("", None)


def test_unpinned_run_names_the_modified_file(project):
    with (project / "train.py").open("a") as handle:
        handle.write("\n# a local edit\n")
    _, run = run_ok(project, "--allow-unpinned")
    assert run.data.tags["reprotrain.pinned"] == "false"
    record = record_of(embedded_uri(project), run.info.run_id)
    assert record["pinned"] is False
    assert record["problems"], record
    assert "train.py" in json.dumps(record["problems"]), record["problems"]


def test_unpinned_run_names_changed_data_and_untracked_file(project):
    (project / TRACKED_DATA_FILE).write_text("a,b\n9,9\n")
    (project / "notes.txt").write_text("not committed\n")
    _, run = run_ok(project, "--allow-unpinned")
    assert run.data.tags["reprotrain.pinned"] == "false"
    problems = json.dumps(record_of(embedded_uri(project), run.info.run_id)["problems"])
    assert TRACKED_DATA_FILE in problems, problems
    assert "notes.txt" in problems, problems
