"""The bundled example, run the way the tutorial shows, on a fresh clone of this repository:
the @hydra.main app, a script reading REPROTRAIN_CONFIG, and an argparse script through a
command template. Each run is pinned, recorded and reproduces under `rerun --verify`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

ENTRYPOINTS = {
    "hydra-app": "examples/train.py:main",
    "config-file": "python examples/train_from_file.py",
    "argparse": "python examples/train_argparse.py --data ${data.path} --seed ${seed} "
    "--epochs ${train.epochs} --lr ${train.lr} --out $REPROTRAIN_OUTPUT_DIR",
}


def sh(cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository's committed HEAD with its data restored from the bundled remote."""
    root = tmp_path_factory.mktemp("example") / "repo"
    assert sh(REPO, "git", "clone", "-q", str(REPO), str(root)).returncode == 0
    pulled = sh(root, str(BIN / "dvc"), "pull", "-q")
    assert pulled.returncode == 0, pulled.stderr
    return root


@pytest.mark.parametrize("kind", list(ENTRYPOINTS))
def test_example_entrypoint_runs_pinned_and_reproduces(clone: Path, kind: str) -> None:
    text = (clone / "pyproject.toml").read_text()
    text = re.sub(r"^entrypoint = .*$", f"entrypoint = {json.dumps(ENTRYPOINTS[kind])}", text, flags=re.M)
    (clone / "pyproject.toml").write_text(text)
    committed = sh(clone, "git", "commit", "-q", "--allow-empty", "-am", f"example entrypoint: {kind}")
    assert committed.returncode == 0, committed.stdout + committed.stderr

    ran = sh(clone, str(BIN / "reprotrain"), "run", "+experiment=baseline")
    assert ran.returncode == 0, ran.stderr[-3000:]
    shown = json.loads(sh(clone, str(BIN / "reprotrain"), "show", "last", "--json").stdout)
    assert shown["status"] == "FINISHED" and shown["pinned"] is True
    assert shown["config"]["overrides"] == ["+experiment=baseline"]
    assert shown["data"][0]["path"] == "data/regression.csv"
    assert 0 < shown["metrics"]["val_mse"] < 0.05

    rerun = sh(clone, str(BIN / "reprotrain"), "rerun", "last", "--verify")
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "REPRODUCED" in rerun.stdout and "model.json" in rerun.stdout
    assert sh(clone, "git", "status", "--porcelain").stdout == ""


def test_readmes_run_lines_compose_on_the_bundled_example(clone: Path) -> None:
    """Every `reprotrain run ...` line of the README that names overrides composes here (--cfg job)."""
    lines = re.findall(r"^reprotrain run (\S.*?)(?:\s+#.*)?$", (clone / "README.md").read_text(), flags=re.M)
    tried = [line.split() for line in lines if "..." not in line and "=" in line]
    assert tried, lines
    for args in tried:
        done = sh(clone, str(BIN / "reprotrain"), "run", *args, "--cfg", "job")
        assert done.returncode == 0, f"README: reprotrain run {' '.join(args)}\n{done.stderr[-2000:]}"
