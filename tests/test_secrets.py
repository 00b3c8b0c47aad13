"""Secrets never reach the tracking store: not in tags, params, artifacts or captured console logs.

A secret is planted everywhere one can come from: the git remote URL, secret-named environment
variables, a config value under a secret-named key (in the YAML and as an override), and a config
value read with `${oc.env:...}` from a variable whose name says nothing. The training code prints
every one of them to stdout and stderr and writes them into an output file; it also checks that it
was given the real values (exit 9 otherwise). After a run, a rerun and a sweep, the SQLite file's
bytes and every file under the artifact root must hold none of them; keys stay, values are `****`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fault_helpers import setup_fault_project
from helpers import (
    all_runs,
    artifact_paths,
    artifact_text,
    client_for,
    commit_all,
    copy_project,
    embedded_uri,
    git,
    run_cli,
)

REMOTE_SECRET = "S3cretRemote"
REMOTE_URL = f"https://user:{REMOTE_SECRET}@example.invalid/r.git"
ENV_SECRETS = {
    "MY_API_TOKEN": "tok-EnvApiToken-1111",
    "AWS_SECRET_ACCESS_KEY": "AwsSecretKey/2222+abc",
    "MLFLOW_TRACKING_PASSWORD": "MlflowPassw0rd-3333",
    "DB_PASSWORD": "DbEnvPassw0rd-4444",
}
YAML_SECRET = "YamlDbPassw0rd-5555"  # db.password in conf/config.yaml
OVERRIDE_SECRET = "OverrideApiKey-6666"  # +api_key=... on the command line
ENV_INTERP_VAR = "SERVICE_HANDLE"  # not a secret-looking name
ENV_INTERP_SECRET = "EnvInterpHandle-7777"  # ... but read by ${oc.env:SERVICE_HANDLE}

ALL_SECRETS = [REMOTE_SECRET, *ENV_SECRETS.values(), YAML_SECRET, OVERRIDE_SECRET, ENV_INTERP_SECRET]

STRAIN_PY = '''\
"""Training that prints every secret it was given, and checks it was given the real values."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

cfg = yaml.safe_load(Path(os.environ["REPROTRAIN_CONFIG"]).read_text())
expected = json.loads(Path(os.environ["FT_EXPECT_FILE"]).read_text())
out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
remote = subprocess.run(["git", "remote", "get-url", "origin"], capture_output=True, text=True).stdout.strip()
seen = {
    "remote": remote,
    "env": {name: os.environ.get(name) for name in expected["env"]},
    "db.password": cfg["db"]["password"],
    "api_key": cfg.get("api_key"),
    "svc.handle": cfg["svc"]["handle"],
}
wrong = []
if seen["remote"] != expected["remote"]:
    wrong.append("remote")
wrong += [name for name, value in expected["env"].items() if seen["env"][name] != value]
if seen["db.password"] != expected["db.password"]:
    wrong.append("db.password")
if seen["svc.handle"] != expected["svc.handle"]:
    wrong.append("svc.handle")
if seen["api_key"] is not None and seen["api_key"] != expected["api_key"]:
    wrong.append("api_key")
text = json.dumps(seen, indent=1)
print("SECRETS-ON-STDOUT", text, flush=True)
print("SECRETS-ON-STDERR", text, file=sys.stderr, flush=True)
(out / "leak.txt").write_text(text + "\\n")
(out / "metrics.json").write_text(json.dumps({"acc": 1.0}))
with open(expected["log"], "a") as log:  # outside the project: what the code really saw
    log.write(json.dumps({"wrong": wrong, "api_key_given": seen["api_key"] is not None}) + "\\n")
sys.exit(9 if wrong else 0)
'''


@pytest.fixture(scope="module")
def secret_runs(template_project, tmp_path_factory):
    """One project, every secret planted; `run`, `rerun last` (twice: after a run given a secret
    override, and after one without) and a sweep."""
    base = tmp_path_factory.mktemp("secrets")
    root = copy_project(template_project, base / "demo")
    (root / "strain.py").write_text(STRAIN_PY)
    config = root / "conf" / "config.yaml"
    config.write_text(
        config.read_text()
        + f"db:\n  host: db.internal\n  password: {YAML_SECRET}\n"
        + f"svc:\n  handle: ${{oc.env:{ENV_INTERP_VAR}}}\n"
    )
    git(root, "remote", "add", "origin", REMOTE_URL)
    setup_fault_project(root, entrypoint="python strain.py")
    commit_all(root, "secrets")
    seen_log = base / "seen.jsonl"
    expected = {
        "remote": REMOTE_URL,
        "env": ENV_SECRETS,
        "db.password": YAML_SECRET,
        "api_key": OVERRIDE_SECRET,
        "svc.handle": ENV_INTERP_SECRET,
        "log": str(seen_log),
    }
    expected_file = base / "expected.json"
    expected_file.write_text(json.dumps(expected))
    env = {**ENV_SECRETS, ENV_INTERP_VAR: ENV_INTERP_SECRET, "FT_EXPECT_FILE": str(expected_file)}
    results = {
        # a secret given as an override is never stored: an exact rerun is refused (exit 1, before
        # any run), naming the key; the code never starts
        "run": run_cli("run", f"+api_key={OVERRIDE_SECRET}", "model.lr=0.3", cwd=root, env=env),
        "rerun": run_cli("rerun", "last", cwd=root, env=env, timeout=240),
        # every other secret comes from the config or the environment: a rerun has them all
        "run-plain": run_cli("run", "model.lr=0.3", cwd=root, env=env),
        "rerun-plain": run_cli("rerun", "last", cwd=root, env=env, timeout=240),
        "sweep": run_cli("run", "-m", "seed=1,2", f"+api_key={OVERRIDE_SECRET}", cwd=root, env=env, timeout=240),
    }
    return root, results, seen_log


def _seen(seen_log: Path) -> list[dict]:
    return [json.loads(line) for line in seen_log.read_text().splitlines()] if seen_log.exists() else []


def _store_files(root: Path) -> list[Path]:
    state = root / ".reprotrain"
    files = sorted(state.glob("mlflow.db*"))
    assert files, f"no SQLite store in {state}"
    artifacts = state / "artifacts"
    assert artifacts.is_dir(), f"no artifact root at {artifacts}"
    files += sorted(p for p in artifacts.rglob("*") if p.is_file())
    return files


def _runs(root: Path) -> list:
    return [client_for(embedded_uri(root)).get_run(r.info.run_id) for r in all_runs(embedded_uri(root))]


def _job_runs(root: Path) -> list:
    """Runs of jobs (not sweep parents)."""
    return [r for r in _runs(root) if r.data.tags.get("reprotrain.sweep") != "true"]


@pytest.mark.parametrize("step", ["run", "rerun", "run-plain", "rerun-plain", "sweep"])
def test_each_step_succeeds_and_the_code_sees_the_real_values(secret_runs, step):
    root, results, seen_log = secret_runs
    res = results[step]
    if step == "rerun":
        assert res.code == 1 and "api_key" in res.err and OVERRIDE_SECRET not in res.err, res.describe()
        return
    assert res.code == 0, f"`reprotrain {step}` failed (9 = the code was given a masked value):\n{res.describe()}"
    wrong = [entry["wrong"] for entry in _seen(seen_log) if entry["wrong"]]
    assert not wrong, f"the training code was given masked or missing values: {wrong}"


@pytest.mark.parametrize("secret", ALL_SECRETS)
def test_no_secret_in_the_store_or_its_artifacts(secret_runs, secret):
    root, _, _ = secret_runs
    needle = secret.encode()
    leaks = [str(p.relative_to(root)) for p in _store_files(root) if needle in p.read_bytes()]
    assert not leaks, f"secret {secret!r} stored in: {leaks}"


def test_secret_keys_kept_with_masked_values(secret_runs):
    root, _, _ = secret_runs
    uri = embedded_uri(root)
    jobs = _job_runs(root)
    assert jobs, "no runs recorded"
    for run in jobs:
        params = run.data.params
        assert params.get("db.password") == "****", params
        assert params.get("db.host") == "db.internal", "ordinary values are not masked"
        assert params.get("svc.handle") == "****", "a value from ${oc.env:...} is masked whatever the name"
        assert params.get("model.lr") in {"0.3", "0.1"}, params
        config = yaml.safe_load(artifact_text(uri, run.info.run_id, "reprotrain/config.yaml"))
        assert config["db"]["password"] == "****", config["db"]
        assert config["svc"]["handle"] == "****", config["svc"]
        record = json.loads(artifact_text(uri, run.info.run_id, "reprotrain/record.json"))
        assert record["config"]["resolved"]["db"]["password"] == "****"
        remote = run.data.tags["reprotrain.git.remote"]
        assert "example.invalid/r.git" in remote and REMOTE_SECRET not in remote, remote
        assert record["git"]["remote"] == remote
        console = artifact_text(uri, run.info.run_id, "reprotrain/console.log")
        assert "SECRETS-ON-STDOUT" in console and "SECRETS-ON-STDERR" in console, "the console log is kept"
        assert '"db.password": "****"' in console, console[:3000]
        assert "leak.txt" in {Path(p).name for p in artifact_paths(uri, run.info.run_id)}


def test_secret_override_masked_key_kept(secret_runs):
    root, _, _ = secret_runs
    with_key = [r for r in _job_runs(root) if "api_key" in r.data.params]
    assert with_key, "no run recorded the api_key param"
    for run in with_key:
        assert run.data.params["api_key"] == "****"
        overrides = json.loads(run.data.tags["reprotrain.overrides"])
        assert "+api_key=****" in overrides, overrides
    sweep_parents = [r for r in _runs(root) if r.data.tags.get("reprotrain.sweep") == "true"]
    assert len(sweep_parents) == 1
    assert "+api_key=****" in json.loads(sweep_parents[0].data.tags["reprotrain.overrides"])


def test_what_a_launcher_worker_is_given_and_what_the_launcher_record_keeps_hold_no_secret(monkeypatch):
    """The launch's variables pickled to launcher workers (some pickle them to disk) and a job's
    launcher settings in its record: a password in a URL is never among them."""
    from reprotrain.core.secrets import Masker
    from reprotrain.job import _masked_launcher
    from reprotrain.launch import _job_environment

    monkeypatch.setenv("REPROTRAIN_TEST_PLAIN", "kept")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "https://AKIAEXAMPLE:pw123456789@minio:9000")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-abcdefgh12345")
    monkeypatch.setenv("DVC_SOMETHING_URL", "https://user:hunter2hunter2@dvc.example/x")
    given = _job_environment()
    assert given["REPROTRAIN_TEST_PLAIN"] == "kept"
    assert not {"MLFLOW_S3_ENDPOINT_URL", "MLFLOW_TRACKING_TOKEN", "DVC_SOMETHING_URL"} & set(given)
    assert not any(s in v for v in given.values() for s in ("pw123456789", "tok-abcdefgh12345", "hunter2hunter2"))

    launcher = {
        "name": "ray",
        "config": {
            "ray": {
                "init": {"address": "127.0.0.1:6379"},
                "remote": {"runtime_env": {"env_vars": {"DB_URL": "postgresql://u:pw12345678@db/x", "API_KEY": "k"}}},
            }
        },
    }
    kept = _masked_launcher(launcher, Masker())
    text = json.dumps(kept)
    assert "pw12345678" not in text and '"API_KEY": "****"' in text, text
    assert kept["config"]["ray"]["init"]["address"] == "127.0.0.1:6379" and kept["name"] == "ray"
