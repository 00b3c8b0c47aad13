"""The training code is called unchanged: a shell command, `module:function`, `file.py:function`,
an `@hydra.main` function; each gets the run, the env vars and one resolution of the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import (
    CALLABLE_MARKER,
    artifact_json,
    artifact_text,
    configure,
    embedded_uri,
    record_of,
    run_ok,
)


def check_env(seen: dict, run, root: Path) -> None:
    env = seen["env"]
    assert env["MLFLOW_RUN_ID"] == run.info.run_id
    assert env["MLFLOW_EXPERIMENT_ID"] == run.info.experiment_id
    assert env["MLFLOW_TRACKING_URI"], env
    assert env["REPROTRAIN_CONFIG"] and seen["config_file_text"], env
    assert env["REPROTRAIN_OUTPUT_DIR"], env


def test_command_with_interpolated_arguments(project):
    configure(project, entrypoint="python train.py --lr ${model.lr} --layers ${model.layers}")
    _, run = run_ok(project, "model.lr=0.7")
    seen = artifact_json(embedded_uri(project), run.info.run_id, "seen.json")
    assert seen["argv"] == ["--lr", "0.7", "--layers", "2"]
    assert "****" not in seen["cwd"], f"output file rewritten by masking: cwd {seen['cwd']!r}"
    assert Path(seen["cwd"]).resolve() == project.resolve(), "command runs in the repository root"
    check_env(seen, run, project)
    assert seen["env"]["MLFLOW_TRACKING_URI"].endswith(".reprotrain/mlflow.db"), seen["env"]
    assert run.info.status == "FINISHED"
    record = record_of(embedded_uri(project), run.info.run_id)
    assert "0.7" in str(record["command"]), record["command"]


def check_callable(project: Path, run, kind: str, lr: float) -> dict:
    uri = embedded_uri(project)
    assert run.info.status == "FINISHED"
    seen = artifact_json(uri, run.info.run_id, "seen.json")
    assert seen["kind"] == kind
    assert seen["is_dictconfig"], f"called with a {seen['cfg_type']}, not an omegaconf DictConfig"
    assert seen["active_run_id"] == run.info.run_id, "the code's first MLflow call must attach to the run"
    assert seen["lr"] == lr
    check_env(seen, run, project)
    assert run.data.metrics["callable_metric"] == 2.5, "the code's own log_metric lands in the run"
    assert run.data.metrics["acc"] == 0.75, "metrics.json is logged for callables too"
    return seen


def test_module_function(project):
    configure(project, entrypoint="demo_train:main")
    _, run = run_ok(project, "model.lr=0.25")
    check_callable(project, run, "module", 0.25)
    console = artifact_text(embedded_uri(project), run.info.run_id, "reprotrain/console.log")
    assert CALLABLE_MARKER in console, console[-2000:]


def test_file_path_function(project):
    configure(project, entrypoint="scripts/file_train.py:train")
    _, run = run_ok(project)
    check_callable(project, run, "file", 0.1)


def test_hydra_main_function_unchanged(project):
    configure(project, entrypoint="hydra_app.py:main")
    _, run = run_ok(project, "model.lr=0.9")
    check_callable(project, run, "hydra_main", 0.9)


@pytest.mark.parametrize("entrypoint", ["python train.py", "demo_train:main"])
def test_now_resolved_once(project, entrypoint):
    """${now:...} (microseconds) has one value everywhere: artifact, record, file, code, params."""
    configure(project, entrypoint=entrypoint)
    _, run = run_ok(project)
    uri, run_id = embedded_uri(project), run.info.run_id
    artifact_cfg = yaml.safe_load(artifact_text(uri, run_id, "reprotrain/config.yaml"))
    resolved = record_of(uri, run_id)["config"]["resolved"]
    seen = artifact_json(uri, run_id, "seen.json")
    assert "${" not in seen["config_file_text"], "REPROTRAIN_CONFIG must hold the resolved config"

    stamp = artifact_cfg["stamp"]
    assert stamp and "${" not in str(stamp), artifact_cfg
    assert resolved["stamp"] == stamp
    assert seen["file_stamp"] == stamp, "the REPROTRAIN_CONFIG file holds another ${now} value"
    assert seen["stamp"] == stamp, "the training code saw another ${now} value"
    assert run.data.params["stamp"] == stamp


def test_env_value_resolved_once(project):
    """${oc.env:...}: the code gets the real value; every stored copy holds one same value.

    The stored value may be the value itself or `****` (reprotrain masks values read from the
    environment, as possible secrets); it is never a second resolution, and the YAML stays valid.
    """
    _, run = run_ok(project, env={"REPROTRAIN_DEMO_ENV": "hello-env"})
    uri, run_id = embedded_uri(project), run.info.run_id
    stored = {
        "reprotrain/config.yaml": yaml.safe_load(artifact_text(uri, run_id, "reprotrain/config.yaml"))["env_value"],
        "record.json": record_of(uri, run_id)["config"]["resolved"]["env_value"],
        "params": run.data.params["env_value"],
    }
    assert len(set(stored.values())) == 1 and stored["params"] in ("hello-env", "****"), stored
    assert artifact_json(uri, run_id, "seen.json")["env_value_is_real"], "the code got another value"
