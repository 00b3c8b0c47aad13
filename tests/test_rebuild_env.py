"""`reprotrain rerun --rebuild-env` (issue 19): the code of a run reruns in the Python environment its
record names, rebuilt (uv, else pip) from local wheels (no index: no network) into a cache keyed by the
record's digest, from a second clone whose own environment has moved on; what cannot be rebuilt is
refused before anything runs, one line each with its fix."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import commit_all, git, git_status, record_of, write_pyproject
from rerun_helpers import assert_no_worktree_left, dvc_remote, get_run, launch, rerun, run_ids, store_of

REPO = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or str(REPO / ".venv-uv" / "bin" / "uv")

ENVTRAIN_PY = """\
import json, os, rtpin
out = os.environ["REPROTRAIN_OUTPUT_DIR"]
with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"rtpin": float(rtpin.__version__)}, f)
"""

pytestmark = pytest.mark.skipif(not os.access(UV, os.X_OK), reason="uv is not installed (scripts/_venv.sh installs it)")


def wheel(directory: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module whose __version__ is ``version`` (no build backend needed)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(text.encode())}")
    rows.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(rows) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return target


def uv_install(venv: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run([UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *args], check=True, env=env)


def packages_of(venv: Path) -> dict[str, str]:
    proc = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json, importlib.metadata as m; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.fixture
def setup(project, tmp_path):
    """The project with a code environment of its own (a venv with rtpin 1.0, from local wheels), a
    git remote and a DVC remote; the variables every command gets (no index, the wheels, the cache)."""
    links = tmp_path / "wheels"
    wheel(links, "rtpin", "1.0")
    wheel(links, "rtpin", "2.0")
    venv = tmp_path / "user-venv"
    env = os.environ | {"UV_NO_INDEX": "1", "PIP_NO_INDEX": "1", "UV_FIND_LINKS": str(links)}
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    uv_install(venv, "rtpin==1.0", env=env)
    (project / "envtrain.py").write_text(ENVTRAIN_PY)
    write_pyproject(project, entrypoint="python envtrain.py")
    commit_all(project, "code that reads rtpin")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(project, "remote", "add", "origin", str(bare))
    dvc_remote(project, tmp_path / "dvc-store")
    git(project, "push", "-q", "origin", "main")
    cli = {
        "UV_NO_INDEX": "1",
        "PIP_NO_INDEX": "1",
        "UV_FIND_LINKS": str(links),
        "REPROTRAIN_ENV_CACHE": str(tmp_path / "env-cache"),
        "PATH": f"{Path(UV).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'shared.db'}",
    }
    active = cli | {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{cli['PATH']}"}
    return project, venv, links, cli, active, env


def test_rerun_rebuilds_the_recorded_environment_from_a_second_clone(setup, tmp_path):
    project, venv, links, cli, active, env = setup
    run_id = launch(project, env=active)
    uri = store_of(project, cli)
    recorded = record_of(uri, run_id)["environment"]
    assert recorded["packages"]["rtpin"] == "1.0" and str(links) in recorded["find_links"]
    assert get_run(uri, run_id).data.metrics["rtpin"] == 1.0

    uv_install(venv, "rtpin==2.0", env=env)  # the user's environment moves on
    clone = tmp_path / "clone-b"
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(clone))

    plain = rerun(clone, run_id, "--verify", env=active)
    assert plain.code == 4 and "rtpin" in plain.err and "1.0 -> 2.0" in plain.err, plain.describe()

    res = rerun(clone, run_id, "--rebuild-env", "--verify", env=active)
    assert res.code == 0, res.describe()
    out = res.out.strip().splitlines()
    assert "REPRODUCED" in out, res.describe()
    assert out[-1].startswith("environment: the same Python and packages as the original"), res.describe()
    new_ids = run_ids(uri) - {run_id}
    rebuilt = [get_run(uri, i) for i in new_ids if get_run(uri, i).data.tags.get("reprotrain.env.rebuilt")]
    assert len(rebuilt) == 1 and rebuilt[0].data.metrics["rtpin"] == 1.0
    assert rebuilt[0].data.tags["reprotrain.env_drift"] == "0"
    assert record_of(uri, rebuilt[0].info.run_id)["environment"]["packages"] == recorded["packages"]
    assert packages_of(venv)["rtpin"] == "2.0", "the user's own environment is untouched"

    cache = Path(cli["REPROTRAIN_ENV_CACHE"])
    built = [p for p in cache.iterdir() if p.is_dir()]
    assert len(built) == 1 and (built[0] / ".reprotrain-env.json").is_file()
    stamp = (built[0] / ".reprotrain-env.json").stat().st_mtime_ns
    again = rerun(clone, run_id, "--rebuild-env", "--verify", env=active)
    assert again.code == 0 and "REPRODUCED" in again.out, again.describe()
    assert [p for p in cache.iterdir() if p.is_dir()] == built, "the second rerun reuses the cached environment"
    assert (built[0] / ".reprotrain-env.json").stat().st_mtime_ns == stamp
    for root in (project, clone):
        assert git_status(root) == ""
        assert_no_worktree_left(root)


def test_a_sweep_reruns_in_the_rebuilt_environment(setup):
    project, venv, _links, cli, active, env = setup
    res = launch_sweep(project, active)
    uv_install(venv, "rtpin==2.0", env=env)
    again = rerun(project, res, "--rebuild-env", "--verify", env=active)
    assert again.code == 0, again.describe()
    assert "(2 of 2 jobs reproduced)" in again.out, again.describe()
    uri = store_of(project, cli)
    jobs = [get_run(uri, i) for i in run_ids(uri)]
    rebuilt = [r for r in jobs if r.data.tags.get("reprotrain.env.rebuilt")]
    assert len(rebuilt) == 2 and all(r.data.metrics["rtpin"] == 1.0 for r in rebuilt)


def launch_sweep(project: Path, env: dict[str, str]) -> str:
    from helpers import run_cli

    res = run_cli("run", "-m", "model.lr=0.1,0.2", cwd=project, env=env)
    assert res.code == 0, res.describe()
    return "last"


def test_what_cannot_be_rebuilt_is_named_before_anything_runs(setup, tmp_path):
    project, venv, links, cli, active, env = setup
    local = wheel(tmp_path / "local-wheels", "rtlocal", "0.3")
    uv_install(venv, str(local), env=env)
    run_id = launch(project, env=active)
    uri = store_of(project, cli)
    assert record_of(uri, run_id)["environment"]["sources"]["rtlocal"]["archive"] is True
    local.unlink()
    (links / "rtpin-1.0-py3-none-any.whl").unlink()  # the index no longer serves the recorded version
    before = run_ids(uri)

    res = rerun(project, run_id, "--rebuild-env", env=active)
    assert res.code == 1, res.describe()
    assert "rtlocal was installed from" in res.err and "which is not here any more" in res.err, res.describe()
    assert "--force to go on without rtlocal" in res.err, res.describe()
    assert run_ids(uri) == before, "nothing ran"

    res = rerun(project, run_id, "--rebuild-env", "--python", "3.1.99", env=active)
    assert res.code == 1 and "not on this machine" in res.err and "--python" in res.err, res.describe()

    wheel(tmp_path / "local-wheels", "rtlocal", "0.3")  # back: now only rtpin 1.0 is missing
    res = rerun(project, run_id, "--rebuild-env", env=active)
    assert res.code == 1, res.describe()
    assert "rtpin: the package indexes do not serve the recorded version any more" in res.err, res.describe()
    assert run_ids(uri) == before, "nothing ran"

    forced = rerun(project, run_id, "--rebuild-env", "--force", env=active)
    new = run_ids(uri) - before
    assert len(new) == 1, forced.describe()
    assert "rtpin" in forced.err and "1.0 -> (absent)" in forced.err, forced.describe()
    tags = get_run(uri, new.pop()).data.tags
    assert tags["reprotrain.env_drift"] == "1" and tags["reprotrain.env.rebuilt"]
    assert forced.code != 0, "the code cannot import rtpin without it: its own failure, passed through"
    assert git_status(project) == ""


def test_pip_builds_it_when_uv_is_not_there(setup, tmp_path):
    project, venv, _links, cli, active, env = setup
    run_id = launch(project, env=active)
    uv_install(venv, "rtpin==2.0", env=env)
    no_uv = os.pathsep.join(p for p in active["PATH"].split(os.pathsep) if p != str(Path(UV).parent))
    res = rerun(project, run_id, "--rebuild-env", "--verify", env=active | {"PATH": no_uv})
    assert res.code == 0 and "REPRODUCED" in res.out, res.describe()
    marker = next(Path(cli["REPROTRAIN_ENV_CACHE"]).glob("*/.reprotrain-env.json"))
    assert json.loads(marker.read_text())["installer"] == "pip"


def test_a_python_or_a_platform_that_is_not_here_is_refused_with_the_fix(setup):
    from rerun_helpers import stored_artifact

    project, _venv, _links, cli, active, _env = setup
    run_id = launch(project, env=active)
    uri = store_of(project, cli)
    stored = stored_artifact(uri, run_id, "reprotrain/record.json")
    record = json.loads(stored.read_text())
    record["environment"] |= {"python": "3.4.1", "machine": "riscv128"}
    stored.write_text(json.dumps(record))
    before = run_ids(uri)

    res = rerun(project, run_id, "--rebuild-env", env=active)
    assert res.code == 1, res.describe()
    assert "Python 3.4.1 (the recorded interpreter) is not on this machine" in res.err, res.describe()
    assert "uv python install 3.4.1" in res.err and "--python VERSION|PATH" in res.err, res.describe()
    assert "riscv128" in res.err and "--force to build it for this one" in res.err, res.describe()
    assert run_ids(uri) == before and git_status(project) == ""
    assert_no_worktree_left(project)

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    ok = rerun(project, run_id, "--rebuild-env", "--python", python, "--force", "--verify", env=active)
    assert ok.code == 0, ok.describe()
    assert "python" in ok.err and "3.4.1 -> " in ok.err, ok.describe()
    new = (run_ids(uri) - before).pop()
    assert "machine" in ok.err and "riscv128 -> " in ok.err, ok.describe()
    assert get_run(uri, new).data.tags["reprotrain.env_drift"] == "2"  # the Python and the machine
