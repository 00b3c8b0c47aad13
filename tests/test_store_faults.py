"""The embedded store's file is damaged (garbage, truncated) or read-only (the file, or the
`.reprotrain/` directory SQLite writes its journal in): `run` refuses before any job starts,
`runs` and `show` name the file and the fix, and the damaged store is left exactly as it was.

Every test runs the real console script on a real git + DVC project; a store helper serving the
store (started by the first run) is running when the damage is done, so both the in-process path
and the helper's are exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fault_helpers import assert_one_line_error, setup_fault_project, statuses
from helpers import embedded_uri, run_cli, store_helpers, wait_for

NO_HANG = 60  # seconds: a refusal is quick, whatever the helper does


def _helper_serves(project: Path) -> bool:
    uri = embedded_uri(project)
    return uri in store_helpers(Path(os.environ["XDG_RUNTIME_DIR"])).values()


def _first_run(project: Path) -> str:
    setup_fault_project(project)
    res = run_cli("run", cwd=project)
    assert res.code == 0, res.describe()
    (run_id,) = statuses(embedded_uri(project))
    assert wait_for(lambda: _helper_serves(project), 90), "no store helper started for the store"
    return run_id


def _job_dirs(project: Path) -> set[Path]:
    return set((project / ".reprotrain" / "outputs").glob("*/*")) | set((project / ".reprotrain" / "runs").glob("*"))


def _damage(db: Path, damage: str) -> None:
    """In place: the same inode, so a helper that has the database open sees the damage too."""
    if damage == "first 4 KB garbage":
        with db.open("r+b") as fh:
            fh.write(os.urandom(4096))
    else:
        os.truncate(db, db.stat().st_size // 2)


@pytest.mark.parametrize("damage", ["first 4 KB garbage", "truncated to half"])
def test_damaged_store_is_named_and_left_as_it_was(project, tmp_path, damage):
    _first_run(project)
    db = project / ".reprotrain" / "mlflow.db"
    _damage(db, damage)
    damaged = db.read_bytes()
    jobs = _job_dirs(project)
    marker = tmp_path / "started"
    for args in (("run",), ("runs",), ("show", "last")):
        started = time.monotonic()
        res = run_cli(*args, cwd=project, env={"FT_MARKER": str(marker)}, timeout=NO_HANG * 2)
        assert time.monotonic() - started < NO_HANG, res.describe()
        assert res.code == 1, res.describe()
        assert_one_line_error(res, str(db), "is not a valid SQLite database", f"mv {db} ")
    assert not marker.exists(), "the training code started"
    assert _job_dirs(project) == jobs, "a Hydra job or a run's staging dir was started"
    assert db.read_bytes() == damaged, "the damaged store was changed"

    db.rename(db.with_name("mlflow.db.damaged"))  # the fix the error names
    res = run_cli("run", cwd=project)
    assert res.code == 0, res.describe()
    # asked through the CLI: this process's MLflow still has the moved file open
    listed = run_cli("runs", "--json", cwd=project)
    assert listed.code == 0, listed.describe()
    assert [row["status"] for row in json.loads(listed.out)["runs"]] == ["FINISHED"], "a new store, with the new run"


@contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """Read-only even for root (the tests run as root, whom file modes do not stop)."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"`chattr +i` is not available here ({done.stderr.strip()}): cannot make {path} read-only for root")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("read_only", ["mlflow.db", ".reprotrain/"])
def test_read_only_store_refuses_a_run_before_training(project, tmp_path, read_only):
    first = _first_run(project)
    db = project / ".reprotrain" / "mlflow.db"
    before = db.read_bytes()
    jobs = _job_dirs(project)
    marker = tmp_path / "started"
    with _immutable(db if read_only == "mlflow.db" else db.parent):
        started = time.monotonic()
        res = run_cli("run", cwd=project, env={"FT_MARKER": str(marker)}, timeout=NO_HANG * 2)
        assert time.monotonic() - started < NO_HANG, res.describe()
        assert res.code == 1, res.describe()
        named = str(db) if read_only == "mlflow.db" else str(db.parent)
        line = assert_one_line_error(res, named, "is read-only", "chattr -i")
        assert "MLFLOW_TRACKING_URI" in line, line
        for args in (("runs",), ("show", "last")):  # reading needs no write: they work
            shown = run_cli(*args, cwd=project, timeout=NO_HANG * 2)
            assert shown.code == 0 and first[:12] in shown.out, shown.describe()
    assert not marker.exists(), "the training code started"
    assert _job_dirs(project) == jobs, "a Hydra job or a run's staging dir was started"
    assert db.read_bytes() == before
    assert statuses(embedded_uri(project)) == {first: "FINISHED"}, "no run was created"
    res = run_cli("run", cwd=project)
    assert res.code == 0, "writable again, the store takes runs"
