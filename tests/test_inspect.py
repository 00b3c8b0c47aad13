"""Inspect, compare and adopt (issue 7): `runs` and its filters, `diff`, `init`, `ui`, and progress
lines that show on a terminal and stay quiet in a pipe. Real projects, real stores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import (
    MLFLOW_SERVER,
    REPROTRAIN,
    TRACKED_DATA_DIR,
    cli_env,
    commit_all,
    dvc,
    git,
    git_status,
    head_sha,
    run_cli,
    wait_for,
)


def _run(root: Path, *args: str) -> str:
    res = run_cli("run", *args, cwd=root)
    assert res.code == 0, res.describe()
    return json.loads(run_cli("show", "last", "--json", cwd=root).out)["run_id"]


def test_runs_table_json_and_filters(project: Path) -> None:
    first = _run(project, "model.lr=0.3")
    first_commit = head_sha(project)
    failed = run_cli("run", "exit_code=3", cwd=project)
    assert failed.code == 3
    (project / TRACKED_DATA_DIR / "img9.bin").write_bytes(b"new image")
    dvc(project, "add", "-q", TRACKED_DATA_DIR)
    commit_all(project, "more images")
    second = _run(project)

    table = run_cli("runs", cwd=project)
    assert table.code == 0, table.describe()
    assert first[:12] in table.out and second[:12] in table.out and "FAILED" in table.out
    assert "model.lr=0.3" in table.out

    rows = json.loads(run_cli("runs", "--json", cwd=project).out)["runs"]
    assert [r["run_id"] for r in rows][0] == second  # newest first
    assert {"run_id", "status", "start_time", "overrides", "commit", "data_digest", "metrics", "reproduced"} <= set(
        rows[0]
    )

    def ids(*args: str) -> set[str]:
        res = run_cli("runs", "--json", *args, cwd=project)
        assert res.code == 0, res.describe()
        return {r["run_id"] for r in json.loads(res.out)["runs"]}

    assert ids("--status", "failed") and first not in ids("--status", "failed")
    assert ids("--commit", first_commit[:8]) >= {first} and second not in ids("--commit", first_commit[:8])
    old_hash = json.loads(run_cli("show", first, "--json", cwd=project).out)["data"]
    old_dir = next(o["hash"] for o in old_hash if o["path"] == TRACKED_DATA_DIR)
    assert first in ids("--data", TRACKED_DATA_DIR, "--data-hash", old_dir)
    assert second not in ids("--data", TRACKED_DATA_DIR, "--data-hash", old_dir)
    assert {first, second} <= ids("--data", TRACKED_DATA_DIR)


def test_runs_of_a_sweep(project: Path) -> None:
    res = run_cli("run", "-m", "seed=1,2", cwd=project)
    assert res.code == 0, res.describe()
    rows = json.loads(run_cli("runs", "--json", cwd=project).out)["runs"]
    parent = next(r for r in rows if r["parent"] is None and len(r["overrides"]) == 1 and "," in r["overrides"][0])
    jobs = json.loads(run_cli("runs", "--json", "--sweep", parent["run_id"], cwd=project).out)["runs"]
    assert len(jobs) == 2 and all(j["parent"] == parent["run_id"] for j in jobs)


def test_diff_config_data_code_metrics(project: Path) -> None:
    a = _run(project)
    (project / TRACKED_DATA_DIR / "img0.bin").write_bytes(b"changed")
    (project / TRACKED_DATA_DIR / "img1.bin").unlink()
    (project / TRACKED_DATA_DIR / "img7.bin").write_bytes(b"added")
    dvc(project, "add", "-q", TRACKED_DATA_DIR)
    (project / "notes.md").write_text("a code change\n")
    commit_all(project, "data and code move on")
    b = _run(project, "model.lr=0.7")

    res = run_cli("diff", a, b, "--json", cwd=project)
    assert res.code == 0, res.describe()
    diff = json.loads(res.out)
    assert {"key": "model.lr", "a": 0.1, "b": 0.7} in diff["config"]
    (images,) = [d for d in diff["data"] if d["path"] == TRACKED_DATA_DIR]
    assert images["files"] == {"added": ["img7.bin"], "removed": ["img1.bin"], "changed": ["img0.bin"]}
    assert diff["code"]["commits_a_to_b"] == 1
    assert {"status": "A", "path": "notes.md"} in diff["code"]["files"]
    assert diff["metrics"] == []  # the training logs the same metrics whatever the config: no difference

    text = run_cli("diff", a, b, cwd=project)
    assert text.code == 0 and "added 1: img7.bin" in text.out and "model.lr: 0.1 -> 0.7" in text.out


def test_init_in_an_existing_repository(tmp_path: Path) -> None:
    root = tmp_path / "existing"
    (root / "src").mkdir(parents=True)
    (root / "configs" / "train").mkdir(parents=True)
    (root / "src" / "train.py").write_text(
        "import hydra\n\n@hydra.main(config_path='../configs/train', config_name='main', version_base=None)\n"
        "def fit(cfg):\n    print(cfg)\n"
    )
    (root / "configs" / "train" / "main.yaml").write_text("defaults:\n  - _self_\nlr: 0.1\n")
    (root / "pyproject.toml").write_text('[project]\nname = "existing"\n')
    git(root.parent, "init", "-q", "-b", "main", str(root))

    first = run_cli("init", cwd=root)
    assert first.code == 0, first.describe()
    text = (root / "pyproject.toml").read_text()
    assert 'entrypoint = "src/train.py:fit"' in text
    assert 'config_dir = "configs/train"' in text and 'config_name = "main"' in text
    assert "dvc init" in first.out and "git add" in first.out  # what is missing, as commands

    again = run_cli("init", cwd=root)
    assert again.code == 0 and (root / "pyproject.toml").read_text() == text
    assert "already configured" in again.out
    shown = run_cli("run", "--cfg", "job", cwd=root)
    assert shown.code == 0 and "lr: 0.1" in shown.out
    assert not (root / ".reprotrain").exists() or git_status(root).count(".reprotrain") == 0


def _group(pgid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if entry.name.isdigit() and int(stat[2]) == pgid and stat[0] != "Z":
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return kids


@pytest.mark.skipif(not MLFLOW_SERVER.exists(), reason="needs the full mlflow (scripts/test.sh provides it)")
def test_ui_serves_the_projects_store_with_one_worker_and_stops_on_sigterm(project: Path, tmp_path: Path) -> None:
    _run(project)
    env = cli_env(project, {"PATH": f"{MLFLOW_SERVER.parent}{os.pathsep}{os.environ['PATH']}"})
    port = 20000 + os.getpid() % 20000
    proc = subprocess.Popen(
        [str(REPROTRAIN), "ui", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # cleaned up as a group should the test fail
    )
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    assert answer.read() == b"OK"
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(1)
        else:
            pytest.fail("reprotrain ui did not serve /health within 120 s")
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10
        ) as answer:
            names = [e["name"] for e in json.loads(answer.read())["experiments"]]
        assert "demo" in names
        servers = _children(proc.pid)
        assert len(servers) == 1, servers
        group = _group(servers[0])
        assert any("--workers 1" in cmd for _, cmd in group), group
        assert len(group) <= 2, f"one worker: mlflow ui and its uvicorn, no worker pool: {group}"

        proc.send_signal(signal.SIGTERM)  # to reprotrain alone, as a service manager sends it
        assert proc.wait(60) == 143
        assert wait_for(lambda: not _group(servers[0]), 30), f"the server outlived reprotrain: {_group(servers[0])}"
    finally:
        for pgid in (proc.pid, *servers):
            try:
                os.killpg(pgid, signal.SIGKILL)  # whatever is left, should an assertion have failed
            except ProcessLookupError:
                pass
        proc.wait(30)


@pytest.mark.skipif(not MLFLOW_SERVER.exists(), reason="needs the full mlflow (scripts/test.sh provides it)")
def test_ui_before_any_run_creates_no_store(project: Path) -> None:
    env = {"PATH": f"{MLFLOW_SERVER.parent}{os.pathsep}{os.environ['PATH']}"}
    res = run_cli("ui", "--port", "1", cwd=project, env=env)
    assert res.code == 1 and "no tracking store" in res.err and res.err.count("\n") == 1, res.describe()
    assert git_status(project) == "", "no untracked database for the next run's gate to refuse"


def test_ui_without_the_full_mlflow_says_what_to_install(project: Path) -> None:
    _run(project)
    res = run_cli("ui", "--port", "1", cwd=project)  # the test venv, like a default install: mlflow-skinny
    assert res.code == 1, res.describe()
    assert res.err.strip().count("\n") == 0 and "Traceback" not in res.err, res.describe()
    assert "pip install 'reprotrain[server]'" in res.err and "mlflow-skinny" in res.err
    assert "MLflow UI for" not in res.out, "nothing announced that will not be served"


def test_progress_on_a_terminal_only(project: Path) -> None:
    run_id = _run(project)
    quiet = run_cli("rerun", run_id, cwd=project)
    assert quiet.code == 0, quiet.describe()
    assert "checking out" not in quiet.err and "restoring" not in quiet.err

    if shutil.which("script") is None:
        pytest.fail("util-linux `script` is needed to give reprotrain a terminal")
    tty = subprocess.run(
        ["script", "-qec", f"{REPROTRAIN} rerun {run_id}", "/dev/null"],
        cwd=project,
        env=cli_env(project, None),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tty.returncode == 0, tty.stdout[-3000:]
    assert "checking out" in tty.stdout and "restoring" in tty.stdout and "uploading" in tty.stdout
