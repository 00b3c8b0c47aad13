"""`rerun --rebuild-env` where the environment is reprotrain's own (issue 19): a callable entrypoint
and a `dvc repro` pipeline run in reprotrain's process, so the rerun goes on in the reprotrain the
rebuilt environment holds. And packages the commit holds (a monorepo's library installed editable
from the repository, built by a backend of its own: no [project] table to name it) are installed
from the rerun's worktree, not from the live checkout.

The original runs from a venv of its own: reprotrain from this checkout (editable, as the test
venv has it), its dependencies from uv's cache (as scripts/_venv.sh installs them), rtpin 1.0 from a
local wheel. The venv then moves to rtpin 2.0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli_env, commit_all, git, git_status, record_of, write_pyproject
from rerun_helpers import assert_no_worktree_left, get_run, run_ids, store_of
from test_pipeline import new_pipeline
from test_rebuild_env import REPO, UV, packages_of, uv_install, wheel

pytestmark = pytest.mark.skipif(not os.access(UV, os.X_OK), reason="uv is not installed (scripts/_venv.sh installs it)")


def _uv_cache() -> str:
    """uv's cache as the developer's shell has it (the tests' HOME is an empty one)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    try:
        proc = subprocess.run([UV, "cache", "dir"], capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return proc.stdout.strip()


UV_CACHE = _uv_cache()  # at import: before conftest isolates HOME

CALLTRAIN_PY = """\
import json, os, time, rtpin


def main(cfg):
    if cfg.pidfile:
        with open(cfg.pidfile, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(cfg.sleep)
    with open(os.path.join(os.environ["REPROTRAIN_OUTPUT_DIR"], "metrics.json"), "w") as f:
        json.dump({"rtpin": float(rtpin.__version__), "lr": float(cfg.model.lr)}, f)
"""

STAGE_PY = """\
import json, yaml
try:
    import rtpin
    version = float(rtpin.__version__)
except ImportError:  # the first `dvc repro`, by the test's own Python
    version = 0.0
p = yaml.safe_load(open("params.yaml"))["train"]
json.dump({"rtpin": version, "scaled": p["scale"] * 3}, open("metrics.json", "w"))
"""

STAGE_DVC_YAML = """\
stages:
  train:
    cmd: python stage.py
    deps: [stage.py, data/raw.csv]
    params: [train.scale]
    metrics:
      - metrics.json:
          cache: false
"""

# a PEP 517 backend in the library's own tree: no build requirement, nothing to download
BACKEND_PY = """\
import base64, hashlib, os, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(HERE, "VERSION")).read().strip()


def _wheel(directory, files):
    dist = f"rtlib-{VERSION}.dist-info"
    files = dict(files)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\\nName: rtlib\\nVersion: {VERSION}\\n"
    files[f"{dist}/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\\n".join(rows + [f"{dist}/RECORD,,"]) + "\\n"
    name = f"rtlib-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"rtlib/__init__.py": open(os.path.join(HERE, "rtlib", "__init__.py")).read()})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"rtlib.pth": HERE + "\\n"})
"""

LIBTRAIN_PY = """\
import json, os, rtlib
with open(os.path.join(os.environ["REPROTRAIN_OUTPUT_DIR"], "metrics.json"), "w") as f:
    json.dump({"rtlib": rtlib.VALUE}, f)
"""


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    """A venv with reprotrain and its dependencies (uv's cache), rtpin from local wheels; the
    variables a user's shell with it activated has."""
    base = tmp_path_factory.mktemp("launcher")
    links = base / "wheels"
    wheel(links, "rtpin", "1.0")
    wheel(links, "rtpin", "2.0")
    venv = base / "venv"
    env = os.environ | {"UV_FIND_LINKS": str(links), **({"UV_CACHE_DIR": UV_CACHE} if UV_CACHE else {})}
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    uv_install(venv, "-c", str(REPO / "scripts" / "constraints.txt"), "-e", str(REPO), "rtpin==1.0", env=env)
    active = {
        "UV_FIND_LINKS": str(links),
        **({"UV_CACHE_DIR": UV_CACHE} if UV_CACHE else {}),
        "REPROTRAIN_ENV_CACHE": str(base / "env-cache"),
        "VIRTUAL_ENV": str(venv),
        "PATH": os.pathsep.join([str(venv / "bin"), str(Path(UV).parent), os.environ["PATH"]]),
    }
    return venv, env, active


def reprotrain(venv: Path, cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The launcher venv's own console script, as its user runs it."""
    return subprocess.run(
        [str(venv / "bin" / "reprotrain"), *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"


def launched(venv: Path, root: Path, env: dict[str, str], *args: str) -> str:
    uri = store_of(root, env)
    before = run_ids(uri)
    proc = reprotrain(venv, root, "run", *args, env=env)
    assert proc.returncode == 0, describe(proc)
    new = run_ids(uri) - before
    assert len(new) == 1, describe(proc)
    return new.pop()


def rebuilt_runs(uri: str, original: str) -> list:
    runs = [get_run(uri, i) for i in run_ids(uri) - {original}]
    return [r for r in runs if r.data.tags.get("reprotrain.env.rebuilt")]


def check_reruns(venv: Path, root: Path, env: dict[str, str], run_id: str, metric: str, env_line: bool) -> None:
    """The plain rerun sees rtpin 2.0 (NOT REPRODUCED); --rebuild-env reruns in rtpin 1.0, in the
    rebuilt environment's reprotrain, and the user's venv keeps 2.0."""
    uri = store_of(root, env)
    plain = reprotrain(venv, root, "rerun", run_id, "--verify", env=env)
    assert plain.returncode == 4 and "1.0 -> 2.0" in plain.stderr, describe(plain)

    res = reprotrain(venv, root, "rerun", run_id, "--rebuild-env", "--verify", env=env)
    assert res.returncode == 0, describe(res)
    out = res.stdout.strip().splitlines()
    assert "REPRODUCED" in out, describe(res)
    if env_line:
        assert out[-1].startswith("environment: the same Python and packages as the original"), describe(res)
    rebuilt = rebuilt_runs(uri, run_id)
    assert len(rebuilt) == 1 and rebuilt[0].data.metrics[metric] == 1.0, describe(res)
    recorded = record_of(uri, run_id)["environment"]
    now = record_of(uri, rebuilt[0].info.run_id)["environment"]
    cache = Path(env["REPROTRAIN_ENV_CACHE"])
    assert now["executable"].startswith(str(cache)), "the rerun's reprotrain ran in the rebuilt environment"
    assert now["packages"] == recorded["packages"]
    assert packages_of(venv)["rtpin"] == "2.0", "the user's own environment is untouched"
    assert git_status(root) == ""
    assert_no_worktree_left(root)


def test_a_callable_reruns_in_the_rebuilt_environments_reprotrain(launcher, project, tmp_path):
    venv, env, active = launcher
    uv_install(venv, "rtpin==1.0", env=env)
    (project / "calltrain.py").write_text(CALLTRAIN_PY)
    write_pyproject(project, entrypoint="calltrain:main")
    commit_all(project, "a callable that reads rtpin")
    active = active | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store.db'}"}
    run_id = launched(venv, project, active)
    uri = store_of(project, active)
    assert get_run(uri, run_id).data.metrics["rtpin"] == 1.0
    assert record_of(uri, run_id)["environment"]["executable"] == str(venv / "bin" / "python")

    uv_install(venv, "rtpin==2.0", env=env)  # the user's environment moves on
    check_reruns(venv, project, active, run_id, "rtpin", env_line=True)

    # a derived rerun passes its overrides on; --keep keeps the inner rerun's worktree only
    derived = reprotrain(venv, project, "rerun", run_id, "--rebuild-env", "--keep", "model.lr=0.5", env=active)
    assert derived.returncode == 0, describe(derived)
    assert derived.stderr.count("kept the worktree") == 1, describe(derived)
    kept = [line.rsplit(" ", 1)[1] for line in derived.stderr.splitlines() if "kept the worktree" in line]
    newest = max(rebuilt_runs(uri, run_id), key=lambda r: r.info.start_time)
    assert newest.data.metrics["lr"] == 0.5 and newest.data.metrics["rtpin"] == 1.0
    git(project, "worktree", "remove", "--force", kept[0])

    # Ctrl-C (SIGINT to reprotrain alone) reaches the rerun going on inside: it stops, 130
    pidfile = tmp_path / "code.pid"
    before = run_ids(uri)
    outer = subprocess.Popen(
        [str(venv / "bin" / "reprotrain"), "rerun", run_id, "--rebuild-env", "sleep=60", f"pidfile={pidfile}"],
        cwd=project,
        env=cli_env(project, active),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not pidfile.exists() and time.monotonic() < deadline and outer.poll() is None:
        time.sleep(0.2)
    assert pidfile.exists(), outer.communicate()
    outer.send_signal(signal.SIGINT)
    out, err = outer.communicate(timeout=60)
    assert outer.returncode == 130, f"exit {outer.returncode}\n{out}\n{err}"
    (stopped,) = [get_run(uri, i) for i in run_ids(uri) - before]
    assert stopped.info.status == "KILLED", err
    assert_no_worktree_left(project)

    # an environment without reprotrain cannot go on with a callable's rerun: said before it runs
    from rerun_helpers import stored_artifact

    stored = stored_artifact(uri, run_id, "reprotrain/record.json")
    record = json.loads(stored.read_text())
    del record["environment"]["packages"]["reprotrain"]
    record["environment"]["digest"] = "edited"
    stored.write_text(json.dumps(record))
    before = run_ids(uri)
    refused = reprotrain(venv, project, "rerun", run_id, "--rebuild-env", env=active)
    assert refused.returncode == 1, describe(refused)
    assert "runs in reprotrain's own process, and the rebuilt environment has no reprotrain" in refused.stderr
    assert run_ids(uri) == before and git_status(project) == ""
    assert_no_worktree_left(project)


def test_a_command_run_from_reprotrains_own_venv_reruns_with_the_recorded_reprotrain(launcher, project, tmp_path):
    """`python train.py` from the venv reprotrain itself is in: the record's environment holds
    reprotrain, so the rerun goes on in the rebuilt environment's (the recorded version) too."""
    from test_rebuild_env import ENVTRAIN_PY

    venv, env, active = launcher
    uv_install(venv, "rtpin==1.0", env=env)
    (project / "envtrain.py").write_text(ENVTRAIN_PY)
    write_pyproject(project, entrypoint="python envtrain.py")
    commit_all(project, "a command that reads rtpin")
    active = active | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store.db'}"}
    run_id = launched(venv, project, active)
    uri = store_of(project, active)
    assert "reprotrain" in record_of(uri, run_id)["environment"]["packages"]
    uv_install(venv, "rtpin==2.0", env=env)
    check_reruns(venv, project, active, run_id, "rtpin", env_line=True)
    (rebuilt,) = rebuilt_runs(uri, run_id)
    assert rebuilt.data.tags["reprotrain.env.rebuilt"], "tagged by the rebuilt environment's reprotrain"


def test_a_dvc_pipeline_reruns_in_the_rebuilt_environment(launcher, tmp_path):
    venv, env, active = launcher
    uv_install(venv, "rtpin==1.0", env=env)
    root = new_pipeline(
        tmp_path / "pipe", {"stage.py": STAGE_PY, "dvc.yaml": STAGE_DVC_YAML}, {"train": {"scale": 2}}, "dvc repro"
    )
    active = active | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store.db'}"}
    run_id = launched(venv, root, active, "train.scale=3")  # a change: the stage runs (not dvc.lock's)
    uri = store_of(root, active)
    metrics = get_run(uri, run_id).data.metrics
    assert metrics["rtpin"] == 1.0 and metrics["scaled"] == 9.0, metrics

    uv_install(venv, "rtpin==2.0", env=env)
    check_reruns(venv, root, active, run_id, "rtpin", env_line=False)


def test_the_commits_own_library_comes_from_the_worktree(launcher, project, tmp_path):
    """A library of the repository installed editable: a plain rerun of an older commit imports
    the live checkout's (newer) library; with --rebuild-env it is built from the commit."""
    venv, env, active = launcher
    lib = project / "libs" / "rtlib"
    (lib / "rtlib").mkdir(parents=True)
    (lib / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "rtbackend"\nbackend-path = ["."]\n'
    )
    (lib / "rtbackend.py").write_text(BACKEND_PY)
    (lib / "VERSION").write_text("1\n")
    (lib / "rtlib" / "__init__.py").write_text("VALUE = 1.0\n")
    (project / "libtrain.py").write_text(LIBTRAIN_PY)
    write_pyproject(project, entrypoint="python libtrain.py")
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + "__pycache__/\n")
    commit_all(project, "a library of the repository")
    code_venv = tmp_path / "code-venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(code_venv)], check=True, env=env)
    uv_install(code_venv, "-e", str(lib), env=env)
    active = active | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "VIRTUAL_ENV": str(code_venv),
        "PATH": os.pathsep.join([str(code_venv / "bin"), active["PATH"]]),
    }
    run_id = launched(venv, project, active)
    uri = store_of(project, active)
    record = record_of(uri, run_id)
    assert record["git"]["root"] == str(project)
    assert record["environment"]["sources"]["rtlib"]["editable"] is True

    (lib / "VERSION").write_text("2\n")
    (lib / "rtlib" / "__init__.py").write_text("VALUE = 2.0\n")
    commit_all(project, "the library moves on")
    uv_install(code_venv, "-e", str(lib), env=env)  # the live checkout, now at version 2

    plain = reprotrain(venv, project, "rerun", run_id, "--verify", env=active)
    assert plain.returncode == 4, describe(plain)
    res = reprotrain(venv, project, "rerun", run_id, "--rebuild-env", "--verify", env=active)
    assert res.returncode == 0 and "REPRODUCED" in res.stdout, describe(res)
    rebuilt = rebuilt_runs(uri, run_id)
    assert len(rebuilt) == 1 and rebuilt[0].data.metrics["rtlib"] == 1.0
    assert record_of(uri, rebuilt[0].info.run_id)["environment"]["packages"]["rtlib"] == "1"
    assert packages_of(code_venv)["rtlib"] == "2", "the user's own environment is untouched"
    assert git_status(project) == ""
    assert json.loads((lib / "VERSION").read_text()) == 2

    # the rerun's record names its worktree as its root, and rtlib as installed from there: a rerun
    # of the rerun builds rtlib from its own worktree again
    again = reprotrain(venv, project, "rerun", rebuilt[0].info.run_id, "--rebuild-env", "--verify", env=active)
    assert again.returncode == 0 and "REPRODUCED" in again.stdout, describe(again)
    assert_no_worktree_left(project)
