"""`reprotrain rerun` against shared infrastructure: a second clone on the same tracking store and
DVC remote (its commit and data only on the remotes), and data that is found nowhere."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from helpers import (
    IMAGE_FILES,
    TRACKED_DATA_DIR,
    commit_all,
    dvc,
    dvc_out,
    git,
    git_status,
    head_sha,
    record_of,
)
from rerun_helpers import (
    assert_no_worktree_left,
    assert_same_identity,
    dvc_remote,
    error_lines,
    get_run,
    launch,
    object_path,
    repo_state,
    rerun,
    run_ids,
    running_runs,
    setup_rerun_project,
    store_of,
    the_rerun_of,
    worktrees,
)

NEW_CSV = "a,b\n2,3\n4,5\n6,7\n8,9\n"


def has_commit(root, sha) -> bool:
    proc = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=root, capture_output=True)
    return proc.returncode == 0


def test_rerun_from_a_second_clone_fetches_commit_and_data(project, tmp_path):
    a = project
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(a, "remote", "add", "origin", str(bare))
    dvc_remote(a, tmp_path / "dvc-store")
    git(a, "push", "-q", "origin", "main")

    b = tmp_path / "clone-b"  # cloned before the run's commit exists
    git(tmp_path, "clone", "-q", str(bare), str(b))
    b_state = repo_state(b)
    b_heads = git(b, "for-each-ref", "refs/heads")

    # A commits new code and new data, pushes both, and runs there
    setup_rerun_project(a)
    (a / "data" / "train.csv").write_text(NEW_CSV)
    dvc(a, "add", "-q", "data/train.csv")
    sha = commit_all(a, "new data")
    dvc(a, "push", "-q")
    git(a, "push", "-q", "origin", "main")
    md5 = dvc_out(a, "data/train.csv.dvc")["md5"]
    env = {"MLFLOW_TRACKING_URI": store_of(a)}
    run_id = launch(a, "model.lr=0.3", env=env)
    uri = env["MLFLOW_TRACKING_URI"]
    original = get_run(uri, run_id)

    assert not has_commit(b, sha), "the run's commit is only on the shared git remote"
    assert not object_path(b / ".dvc" / "cache", md5).exists()

    res = rerun(b, run_id, "--verify", env=env)
    assert res.code == 0, res.describe()
    assert res.out.strip().splitlines()[-1] == "REPRODUCED", res.describe()
    new = the_rerun_of(uri, run_id, res)
    assert new.info.status == "FINISHED"
    assert new.info.experiment_id == original.info.experiment_id
    assert_same_identity(original, new)
    assert new.data.tags["reprotrain.git.commit"] == sha
    assert new.data.tags["reprotrain.reproduced"] == "true"
    assert new.data.metrics == original.data.metrics
    assert new.data.metrics["rows"] == 4 and new.data.metrics["lr"] == 0.3, "the new data and config were used"
    rec = record_of(uri, new.info.run_id)
    assert [(d["path"], d["hash"]) for d in rec["data"]] == [
        (d["path"], d["hash"]) for d in record_of(uri, run_id)["data"]
    ]

    # B's working copy, branch and HEAD are untouched (fetching may update remote-tracking refs)
    after = repo_state(b)
    for key in ("head", "branch", "status", "diff"):
        assert after[key] == b_state[key], key
    assert git(b, "for-each-ref", "refs/heads") == b_heads, "no local branch moved"
    assert head_sha(b) != sha
    assert git_status(b) == ""
    assert (b / "rtrain.py").exists() is False, "B's working copy stays at its own commit"
    assert object_path(b / ".dvc" / "cache", md5).is_file(), "the data was pulled into B's own DVC cache"
    assert_no_worktree_left(b)
    assert_no_worktree_left(a)
    assert len(run_ids(uri)) == 2


def test_data_missing_from_cache_and_remote(project, tmp_path):
    store = tmp_path / "dvc-store"
    dvc_remote(project, store)
    setup_rerun_project(project)
    run_id = launch(project)
    uri = store_of(project)
    state = repo_state(project)

    md5 = dvc_out(project, "data/train.csv.dvc")["md5"]
    for base in (project / ".dvc" / "cache", store):
        obj = object_path(base, md5)
        assert obj.is_file(), obj
        obj.chmod(0o644)
        obj.unlink()

    res = rerun(project, run_id, "--verify")
    assert res.code == 1, res.describe()
    assert "Traceback" not in res.err
    assert run_ids(uri) == {run_id}, "no run is created for a rerun whose data cannot be restored"
    assert running_runs(uri) == []
    assert get_run(uri, run_id).info.status == "FINISHED"
    assert_no_worktree_left(project)
    assert repo_state(project) == state
    lines = error_lines(res.err)
    assert len(lines) == 1, f"not a one-line error:\n{res.err}"
    assert "data/train.csv" in lines[0], lines[0]


def test_one_object_of_a_directory_missing_from_the_cache_is_fetched(project, tmp_path):
    """The directory's manifest is in the cache but one of its files is not: the rerun fetches it
    from the DVC remote and restores the whole directory byte for byte."""
    dvc_remote(project, tmp_path / "dvc-store")
    setup_rerun_project(project)
    run_id = launch(project)
    lost = object_path(project / ".dvc" / "cache", hashlib.md5(IMAGE_FILES["img1.bin"]).hexdigest())
    lost.chmod(0o644)
    lost.unlink()

    res = rerun(project, run_id, "--verify", "--keep")
    kept = [Path(p) for p in worktrees(project) if Path(p).resolve() != project.resolve()]
    try:
        assert res.code == 0, res.describe()
        assert res.out.strip().splitlines()[-1] == "REPRODUCED", res.describe()
        assert lost.is_file(), "the object was fetched into the cache"
        assert len(kept) == 1, worktrees(project)
        restored = kept[0] / TRACKED_DATA_DIR
        assert {f.name: f.read_bytes() for f in restored.iterdir()} == IMAGE_FILES
    finally:
        for wt in kept:
            git(project, "worktree", "remove", "--force", "--force", str(wt))
    assert_no_worktree_left(project)
