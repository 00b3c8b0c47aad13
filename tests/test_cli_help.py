"""`reprotrain --help`: lists the commands, and stays cheap (no mlflow, dvc or hydra import)."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPROTRAIN, run_cli

HEAVY = {"mlflow", "dvc", "hydra"}


def test_help_lists_run_and_show(tmp_path):
    res = run_cli("--help", cwd=tmp_path)
    assert res.code == 0, res.describe()
    assert "run" in res.out and "show" in res.out, res.out


def test_help_imports_no_heavy_library(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPROTRAIN), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    roots = {name.split(".")[0] for name in imported}
    assert "reprotrain" in roots, "importtime did not see reprotrain itself: the measure is wrong"
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY)
    assert not heavy, f"`reprotrain --help` imported {heavy[:10]}"


def test_unknown_command_is_usage_error(tmp_path):
    res = run_cli("nosuchcommand", cwd=tmp_path)
    assert res.code == 2, res.describe()
