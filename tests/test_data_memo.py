"""The gate's memo of the last DVC check that passed (reprotrain/adapters/data_memo.py).

An unchanged workspace is vouched for by file stats without importing DVC; any change to what
DVC reads (data, the cache, DVC's config) must send the gate through DVC's full check again.
Whether the memo was trusted is observed from outside: a `dvc` package that cannot be imported
is put first on PYTHONPATH, so a gate that needs DVC fails and one that trusts the memo passes.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from gate_helpers import cache_dir, check, check_json, dvc_hash, object_path
from helpers import TRACKED_DATA_DIR, TRACKED_DATA_FILE, Result, commit_all, run_cli, run_ok

MEMO = ".reprotrain/data-memo.json"


def settle() -> None:
    """The memo is written only for files last changed more than 2 s before the check."""
    time.sleep(2.2)


def check_without_dvc(root, tmp_path) -> Result:
    fake = tmp_path / "no-dvc"
    (fake / "dvc").mkdir(parents=True, exist_ok=True)
    (fake / "dvc" / "__init__.py").write_text("raise ImportError('the gate imported dvc')\n")
    return run_cli("check", cwd=root, env={"PYTHONPATH": str(fake)})


@pytest.fixture()
def memoised(project, tmp_path):
    """A project whose last gate passed with settled files, so the memo is on disk."""
    run_ok(project)  # makes the state directory, where the memo lives
    settle()
    res = check(project)
    assert res.code == 0, res.describe()
    assert (project / MEMO).is_file()
    trusted = check_without_dvc(project, tmp_path)
    assert trusted.code == 0, trusted.describe()
    return project


def test_unchanged_workspace_is_vouched_for_without_dvc(memoised, tmp_path):
    code, report = check_json(memoised)
    assert code == 0
    paths = {o["path"] for o in report["data"]}
    assert {TRACKED_DATA_FILE, TRACKED_DATA_DIR} <= paths
    hashes = {o["path"]: o["hash"] for o in report["data"]}
    assert hashes[TRACKED_DATA_FILE] == dvc_hash(memoised, f"{TRACKED_DATA_FILE}.dvc")


def test_just_written_files_are_not_memoised(project):
    run_ok(project)
    (project / MEMO).unlink(missing_ok=True)
    target = project / TRACKED_DATA_FILE
    # changed "just now" as the check sees it (its ctime within the settle time of the check's
    # start): the memo could not tell a second write in the same tick. The file is touched until
    # the check is done, since a loaded machine can take longer than the settle time to start it
    done = threading.Event()

    def touch() -> None:
        while not done.wait(0.05):
            os.utime(target)

    toucher = threading.Thread(target=touch, daemon=True)
    toucher.start()
    try:
        res = check(project)
    finally:
        done.set()
        toucher.join()
    assert res.code == 0, res.describe()
    assert not (project / MEMO).exists()


def test_rewrite_with_same_size_and_mtime_is_not_trusted(memoised, tmp_path):
    target = memoised / TRACKED_DATA_FILE
    st = target.stat()
    data = target.read_bytes()
    target.chmod(0o644)
    target.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only ctime tells
    # the memo is not trusted (ctime moved). DVC's own state database keys on inode, size and
    # mtime only, so DVC's status then still reports the file unchanged: that part is DVC's.
    assert check_without_dvc(memoised, tmp_path).code != 0


def test_rewrite_is_caught(memoised, tmp_path):
    target = memoised / TRACKED_DATA_FILE
    target.chmod(0o644)
    target.write_text("a,b\n9,9\n")
    assert check_without_dvc(memoised, tmp_path).code != 0
    code, report = check_json(memoised)
    assert code == 3
    assert any(p["path"] == TRACKED_DATA_FILE for p in report["problems"]), report


@pytest.mark.parametrize("change", ["added", "removed"])
def test_directory_entries_added_or_removed_are_caught(memoised, tmp_path, change):
    images = memoised / TRACKED_DATA_DIR
    if change == "added":
        (images / "img9.bin").write_bytes(b"new image")
    else:
        next(p for p in sorted(images.iterdir()) if p.is_file()).unlink()
    assert check_without_dvc(memoised, tmp_path).code != 0
    code, report = check_json(memoised)
    assert code == 3
    assert any(p["path"] == TRACKED_DATA_DIR for p in report["problems"]), report


def test_object_removed_from_the_cache_is_caught(memoised, tmp_path):
    oid = dvc_hash(memoised, f"{TRACKED_DATA_FILE}.dvc")
    obj = object_path(cache_dir(memoised), oid)
    obj.chmod(0o644)
    obj.unlink()
    assert check_without_dvc(memoised, tmp_path).code != 0
    code, report = check_json(memoised)
    assert code == 3
    assert any(p["kind"] == "data-not-cached" for p in report["problems"]), report


def test_dvc_config_change_sends_the_gate_through_dvc(memoised, tmp_path):
    local = memoised / ".dvc" / "config.local"
    local.write_text("[core]\n    autostage = false\n")
    assert check_without_dvc(memoised, tmp_path).code != 0
    assert check(memoised).code == 0


def test_new_commit_sends_the_gate_through_dvc(memoised, tmp_path):
    (memoised / "notes.txt").write_text("a new commit\n")
    commit_all(memoised, "notes")
    assert check_without_dvc(memoised, tmp_path).code != 0
    assert check(memoised).code == 0


def test_refusal_drops_the_memo(memoised):
    target = memoised / TRACKED_DATA_FILE
    target.chmod(0o644)
    target.write_text("a,b\n9,9\n")
    assert check(memoised).code == 3
    assert not (memoised / MEMO).exists()


def _same_size_rewrite(path) -> None:
    """Other bytes, same size, the mtime put back: DVC's stored stamps still match."""
    st = path.stat()
    data = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("target", [TRACKED_DATA_FILE, f"{TRACKED_DATA_DIR}/img1.bin"])
def test_check_hash_catches_a_same_size_rewrite_that_dvc_trusts(project, target):
    run_ok(project)  # DVC's state database now holds the stamps of every file
    _same_size_rewrite(project / target)
    code, report = check_json(project)
    assert code == 0, "DVC's status trusts size and mtime (documented; this is what --hash is for)"
    code, report = check_json(project, "--hash")
    assert code == 3, report
    output = TRACKED_DATA_FILE if target == TRACKED_DATA_FILE else TRACKED_DATA_DIR
    (problem,) = [p for p in report["problems"] if p["path"] == output]
    assert "when hashed" in problem["message"] and "dvc checkout" in problem["fix"], problem


def test_hash_data_setting_makes_every_run_hash_its_inputs(project):
    text = (project / "pyproject.toml").read_text().replace("[tool.reprotrain]", "[tool.reprotrain]\nhash_data = true")
    (project / "pyproject.toml").write_text(text)
    commit_all(project, "hash the data")
    run_ok(project)
    again = run_cli("run", cwd=project)  # unchanged: passes, every file hashed
    assert again.code == 0, again.describe()
    _same_size_rewrite(project / TRACKED_DATA_FILE)
    res = run_cli("run", cwd=project)
    assert res.code == 3, res.describe()
    assert "when hashed" in res.err, res.describe()


def test_check_hash_ignores_what_dvcignore_leaves_out(project):
    (project / ".dvcignore").write_text("*.tmp\n")
    commit_all(project, "dvcignore")
    (project / TRACKED_DATA_DIR / "scratch.tmp").write_text("scratch")
    code, report = check_json(project, "--hash")
    assert code == 0, report["problems"]
