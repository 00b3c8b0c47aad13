"""The team setup, with real servers on 127.0.0.1: `mlflow server` on PostgreSQL with its artifacts
in an S3-compatible object store (moto), and a DVC remote on that same store.

The same commands as on a laptop (`reprotrain run`, a sweep, `reprotrain rerun --verify` from a
second clone whose DVC cache is empty) work with only settings changed; artifacts land in the
bucket; and no secret (the S3 secret key, the database password, MLflow's tracking password) is
ever stored in a tag, a param, an artifact or any object of the bucket.

The stack is started once per session by ``team_services.team``; each test uses its own MLflow
experiment and its own DVC prefix in the bucket.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from helpers import DVC, client_for, commit_all, git, git_status, head_sha, run_cli
from team_services import (  # noqa: F401  (`team` is a fixture)
    BUCKET,
    expected_loss,
    run_cmd,
    runs_in,
    setup_sweep_project,
    team,
)


class TeamProject:
    def __init__(self, root: Path, stack, experiment: str, dvc_prefix: str, bare: Path) -> None:
        self.root = root
        self.stack = stack
        self.experiment = experiment
        self.dvc_prefix = dvc_prefix
        self.bare = bare
        self.env = stack.client_env(experiment)

    @property
    def uri(self) -> str:
        return self.stack.tracking_uri

    def dvc(self, cwd: Path, *args: str) -> str:
        return run_cmd([str(DVC), *args], cwd=cwd, env=dict(os.environ) | self.env)

    def reprotrain(self, cwd: Path, *args: str, timeout: int = 600):
        return run_cli(*args, cwd=cwd, env=self.env, timeout=timeout)

    def runs(self) -> list:
        return runs_in(self.uri, self.experiment)


@pytest.fixture
def team_project(project, team, tmp_path) -> TeamProject:  # noqa: F811
    """The template project set up as a team member would: DVC remote on the object store (the
    endpoint committed, credentials only in AWS_* variables), data pushed, code pushed to a shared
    bare git repository. The config reads the S3 secret from the environment and `dump_env=true`
    makes the training script print and save its whole environment: nothing of it may be stored."""
    root = project
    setup_sweep_project(root)
    config = root / "conf" / "config.yaml"
    text = config.read_text().replace("dump_env: false", "dump_env: true")
    config.write_text(
        text + "storage:\n  endpoint: http://example.invalid\n  key: ${oc.env:AWS_SECRET_ACCESS_KEY,none}\n"
    )
    prefix = f"dvc/{uuid.uuid4().hex[:12]}"
    experiment = f"team-{uuid.uuid4().hex[:12]}"
    tp = TeamProject(root, team, experiment, prefix, tmp_path / "shared.git")
    tp.dvc(root, "remote", "add", "-d", "s3store", f"s3://{BUCKET}/{prefix}")
    tp.dvc(root, "remote", "modify", "s3store", "endpointurl", team.s3_endpoint)
    commit_all(root, "team setup: DVC remote on the object store")
    dvc_config = (root / ".dvc" / "config").read_text()
    assert team.secrets["AWS_SECRET_ACCESS_KEY"] not in dvc_config
    assert not (root / ".dvc" / "config.local").exists()
    tp.dvc(root, "push", "-q")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(tp.bare))
    git(root, "remote", "add", "origin", str(tp.bare))
    git(root, "push", "-q", "origin", "main")
    assert git_status(root) == ""
    return tp


def _artifact_files(client, run_id: str, dest: Path) -> dict[str, bytes]:
    local = Path(client.download_artifacts(run_id, "", str(dest)))
    return {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}


def assert_no_secret_stored(tp: TeamProject) -> int:
    """Search every run of the experiment (tags, params, metric names, dataset inputs, run names,
    every artifact) and every object in the bucket for the secret values; returns how many run
    artifacts were searched."""
    client = client_for(tp.uri)
    searched = 0
    leaks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for summary in tp.runs():
            run = client.get_run(summary.info.run_id)
            rid = run.info.run_id
            texts = {
                "run name": run.info.run_name or "",
                **{f"tag {k}": f"{k}={v}" for k, v in run.data.tags.items()},
                **{f"param {k}": f"{k}={v}" for k, v in run.data.params.items()},
                "metric names": " ".join(run.data.metrics),
            }
            for d in run.inputs.dataset_inputs if run.inputs else []:
                texts[f"dataset {d.dataset.name}"] = f"{d.dataset.source} {d.dataset.profile} {d.dataset.digest}"
            files = _artifact_files(client, rid, Path(tmp) / rid)
            searched += len(files)
            for name, secret in tp.stack.secrets.items():
                leaks += [f"run {rid} {where}: {name}" for where, text in texts.items() if secret in text]
                leaks += [
                    f"run {rid} artifact {path}: {name}" for path, data in files.items() if secret.encode() in data
                ]
    for key in tp.stack.objects():
        data = tp.stack.object_bytes(key)
        leaks += [
            f"s3://{BUCKET}/{key}: {name}" for name, secret in tp.stack.secrets.items() if secret.encode() in data
        ]
    assert not leaks, "secrets stored:\n" + "\n".join(leaks)
    return searched


def assert_artifacts_in_bucket(tp: TeamProject, run) -> dict[str, int]:
    """The run's artifacts are objects under s3://BUCKET/mlflow/<experiment>/<run>/artifacts/."""
    prefix = f"mlflow/{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    objects = tp.stack.objects(prefix)
    names = {key[len(prefix) :] for key in objects}
    for expected in ("reprotrain/record.json", "reprotrain/config.yaml", "reprotrain/console.log", "metrics.json"):
        assert expected in names, f"{expected} not in the bucket under {prefix}: {sorted(names)}"
    stored = json.loads(tp.stack.object_bytes(prefix + "reprotrain/record.json"))
    assert stored["run_id"] == run.info.run_id
    return objects


def test_run_records_on_the_tracking_server_with_artifacts_in_the_bucket(team_project):
    tp = team_project
    root = tp.root
    res = tp.reprotrain(root, "run", "seed=3")
    assert res.code == 0, res.describe()
    assert not (root / ".reprotrain" / "mlflow.db").exists(), "nothing in the embedded store"
    (summary,) = tp.runs()
    run = client_for(tp.uri).get_run(summary.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    tags = run.data.tags
    assert tags["reprotrain.git.commit"] == head_sha(root)
    assert tags["mlflow.source.git.commit"] == head_sha(root)
    assert tags["reprotrain.pinned"] == "true"
    assert tags["reprotrain.git.remote"] == str(tp.bare)
    assert run.data.params["seed"] == "3"
    assert run.data.params["storage.key"] == "****", "a value read from the environment is masked"
    assert run.data.metrics["loss"] == expected_loss(0.1, 3)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"data/train.csv", "data/images"}
    objects = assert_artifacts_in_bucket(tp, run)
    dump_key = next((k for k in objects if k.endswith("/artifacts/env-dump.json")), None)
    assert dump_key, f"the job's own outputs are in the bucket too: {sorted(objects)}"
    dumped = json.loads(tp.stack.object_bytes(dump_key))
    assert dumped["AWS_SECRET_ACCESS_KEY"] == "****", "the script did dump its environment; the upload masked it"
    assert dumped["MLFLOW_TRACKING_PASSWORD"] == "****"
    assert assert_no_secret_stored(tp) >= 8
    assert git_status(root) == ""


def test_sweep_on_the_tracking_server(team_project):
    tp = team_project
    res = tp.reprotrain(tp.root, "run", "-m", "seed=1,2")
    assert res.code == 0, res.describe()
    runs = tp.runs()
    parents = [r for r in runs if r.data.tags.get("reprotrain.sweep") == "true"]
    assert len(parents) == 1, [r.info.run_id for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.params["seed"] for c in children) == ["1", "2"]
    assert {c.info.status for c in children} == {"FINISHED"}
    sweep_key = f"mlflow/{parent.info.experiment_id}/{parent.info.run_id}/artifacts/reprotrain/sweep.json"
    sweep = json.loads(tp.stack.object_bytes(sweep_key))
    assert sorted(j["run_id"] for j in sweep["jobs"]) == sorted(c.info.run_id for c in children)
    for child in children:
        assert_artifacts_in_bucket(tp, child)
    assert_no_secret_stored(tp)


def test_rerun_verify_from_a_second_clone_pulls_the_data_from_the_object_store(team_project, tmp_path):
    tp = team_project
    res = tp.reprotrain(tp.root, "run", "seed=2", "model.lr=0.4")
    assert res.code == 0, res.describe()
    (original,) = tp.runs()
    run_id = original.info.run_id

    clone = tmp_path / "second-clone"
    git(tmp_path, "clone", "-q", str(tp.bare), str(clone))
    cache = clone / ".dvc" / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), "the clone's DVC cache is empty"
    assert not (clone / "data" / "train.csv").exists()

    res = tp.reprotrain(clone, "rerun", run_id, "--verify")
    assert res.code == 0, res.describe()
    assert "REPRODUCED" in res.out.splitlines(), res.describe()
    runs = {r.info.run_id: r for r in tp.runs()}
    reruns = [r for r in runs.values() if r.data.tags.get("reprotrain.rerun_of") == run_id]
    assert len(reruns) == 1, list(runs)
    new = client_for(tp.uri).get_run(reruns[0].info.run_id)
    assert new.info.status == "FINISHED"
    assert new.data.tags["reprotrain.reproduced"] == "true"
    for key in ("reprotrain.git.commit", "reprotrain.data.digest", "reprotrain.config.digest"):
        assert new.data.tags[key] == original.data.tags[key], key
    assert new.data.metrics == client_for(tp.uri).get_run(run_id).data.metrics
    assert new.data.params["model.lr"] == "0.4"
    assert any(p.is_file() for p in cache.rglob("*")), "the data came from the object store into the clone's cache"
    assert git_status(clone) == ""
    assert_artifacts_in_bucket(tp, new)
    assert_no_secret_stored(tp)


def test_training_code_that_uses_mlflow_itself_on_the_tracking_server(project, team, tmp_path):  # noqa: F811
    """The MLflow patterns of tests/test_mlflow_code.py against `mlflow server`, with the tracking
    password inside the tracking URI (as some teams set it): the code's own runs are found through
    the hook (no time-window search on a server), verified by role, and the password is stored nowhere."""
    from mlflow.entities import ViewType
    from mlflow_code import setup_mlcode

    setup_mlcode(project, "callable")
    experiment = f"team-{uuid.uuid4().hex[:12]}"
    password = team.secrets["MLFLOW_TRACKING_PASSWORD"]
    url = team.tracking_uri.replace("http://", f"http://rt-team-member:{password}@")
    env = team.client_env(experiment) | {"MLFLOW_TRACKING_URI": url}
    res = run_cli("run", "-m", "pattern=nested,client_run,logger", cwd=project, env=env, timeout=600)
    assert res.code == 0, res.describe()
    own_lines = [line for line in (res.out + res.err).splitlines() if line.startswith("reprotrain")]
    assert not [line for line in own_lines if password in line], "reprotrain printed the password"
    client = client_for(team.tracking_uri)
    jobs = [r for r in runs_in(team.tracking_uri, experiment) if "reprotrain.config.digest" in r.data.tags]
    assert {j.data.params["pattern"] for j in jobs} == {"nested", "client_run", "logger"}
    linked = {j.data.params["pattern"]: json.loads(j.data.tags.get("reprotrain.foreign_runs", "[]")) for j in jobs}
    assert len(linked["nested"]) == 2 and len(linked["client_run"]) == 1 and len(linked["logger"]) == 1, linked
    roles = {client.get_run(rid).data.tags["reprotrain.role"] for ids in linked.values() for rid in ids}
    assert roles == {"nested:fold-0", "nested:fold-1", "client-exp#1", "lightning_logs#1"}
    assert res.err.count("MLflow run(s) besides run") == 3, "one warning line per job that made runs"

    parent = next(r for r in runs_in(team.tracking_uri, experiment) if r.data.tags.get("reprotrain.sweep") == "true")
    rerun = run_cli("rerun", parent.info.run_id, "--verify", cwd=project, env=env, timeout=600)
    assert rerun.code == 0, rerun.describe()
    assert "[lightning_logs#1] score" in rerun.out and "[client-exp#1] score" in rerun.out, rerun.out

    leaks = []
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    for run in client.search_runs(experiments, max_results=1000):
        texts = [run.info.run_name or "", *(f"{k}={v}" for k, v in {**run.data.tags, **run.data.params}.items())]
        leaks += [f"run {run.info.run_id}: {t[:80]}" for t in texts if password in t]
        local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        files = [p for p in local.rglob("*") if p.is_file()]
        leaks += [f"run {run.info.run_id} artifact {p.name}" for p in files if password.encode() in p.read_bytes()]
    assert not leaks, "the password in the tracking URI was stored:\n" + "\n".join(leaks)
    assert git_status(project) == ""
