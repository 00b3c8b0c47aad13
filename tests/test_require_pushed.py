"""`require_pushed` (setting) / `--require-pushed` (flag on run and check): the commit must be on a
remote-tracking branch and every pinned object in the default DVC remote, checked object by object."""

from __future__ import annotations

import subprocess

import pytest
from gate_helpers import (
    check,
    check_json,
    dvc_cloud_status,
    dvc_hash,
    json_problem,
    md5,
    object_path,
    refuse,
    setup_remotes,
)
from helpers import (
    IMAGE_FILES,
    TRACKED_DATA_DIR,
    TRACKED_DATA_FILE,
    commit_all,
    configure,
    dvc,
    git,
    run_ok,
)


@pytest.fixture
def pushed(project, tmp_path):
    """The template with a bare git remote and a local default DVC remote, everything pushed."""
    bare, store = setup_remotes(project, tmp_path)
    return project, bare, store


def test_everything_pushed_passes(pushed):
    root, _, _ = pushed
    code, report = check_json(root, "--require-pushed")
    assert code == 0, report["problems"]
    res = check(root, "--require-pushed")
    assert res.code == 0 and "pinned" in res.out.lower(), res.describe()


def test_require_pushed_setting_passes_when_pushed(pushed):
    root, _, _ = pushed
    configure(root, require_pushed=True)
    git(root, "push", "-q", "origin", "main")
    assert check(root).code == 0, check(root).describe()
    run_ok(root)


def test_no_git_remote(project):
    code, report = check_json(project, "--require-pushed")
    assert code == 3
    problem = json_problem(report, "", "git remote add origin")
    assert "git push" in problem["fix"], problem
    assert check_json(project)[0] == 0, "without --require-pushed the same project is pinned"


def test_no_git_remote_refuses_run(project):
    refuse(project, "--require-pushed", expected=[("remote", "git remote add origin")])


def test_local_commit_not_pushed(pushed):
    root, _, _ = pushed
    (root / "notes.md").write_text("a new local commit\n")
    commit_all(root, "not pushed")
    code, report = check_json(root, "--require-pushed")
    assert code == 3
    json_problem(report, "", "git push", kind="commit-not-pushed")
    assert not [p for p in report["problems"] if p["kind"] != "commit-not-pushed"], report["problems"]
    refuse(root, "--require-pushed", expected=[("remote branch", "git push -u origin main")])
    assert check_json(root)[0] == 0, "without --require-pushed a local commit is fine"
    git(root, "push", "-q", "origin", "main")
    assert check_json(root, "--require-pushed")[0] == 0


def test_require_pushed_setting_refuses_unpushed_commit(pushed):
    root, _, _ = pushed
    configure(root, require_pushed=True)  # a new commit, not pushed
    code, report = check_json(root)
    assert code == 3
    json_problem(report, "", "git push", kind="commit-not-pushed")
    refuse(root, expected=[("remote branch", "git push -u origin main")])


@pytest.mark.parametrize("which", ["entry", "manifest"])
def test_directory_object_deleted_from_dvc_remote(pushed, which):
    """One object of a directory output gone from the remote: reprotrain must notice it even
    though it never re-reads the remote index the way `dvc status -c` does."""
    root, _, store = pushed
    oid = md5(IMAGE_FILES["img1.bin"]) if which == "entry" else dvc_hash(root, f"{TRACKED_DATA_DIR}.dvc")
    target = object_path(store, oid)
    assert target.exists(), f"pushed object expected at {target}"
    target.unlink()
    cloud = dvc_cloud_status(root)
    if which == "entry":  # the point of the check: DVC's own cloud status misses this
        assert "in sync" in cloud, f"precondition: dvc status -c was expected to miss it, said:\n{cloud}"
    code, report = check_json(root, "--require-pushed")
    assert code == 3, f"dvc status -c says:\n{cloud}"
    json_problem(report, TRACKED_DATA_DIR, f"dvc push {TRACKED_DATA_DIR}", kind="data-not-pushed")
    assert [p["path"] for p in report["problems"]] == [TRACKED_DATA_DIR], report["problems"]
    refuse(root, "--require-pushed", expected=[(TRACKED_DATA_DIR, f"dvc push {TRACKED_DATA_DIR}")])
    assert check_json(root)[0] == 0, "without --require-pushed the remote is not consulted"


@pytest.mark.parametrize("which", ["entry", "manifest"])
def test_the_fix_for_a_deleted_remote_object_works(pushed, which):
    """DESIGN §6: each problem comes with the command that fixes it. Run that command as given."""
    root, _, store = pushed
    oid = md5(IMAGE_FILES["img1.bin"]) if which == "entry" else dvc_hash(root, f"{TRACKED_DATA_DIR}.dvc")
    target = object_path(store, oid)
    target.unlink()
    _, report = check_json(root, "--require-pushed")
    fix = json_problem(report, TRACKED_DATA_DIR, "dvc push", kind="data-not-pushed")["fix"]
    done = subprocess.run(["bash", "-c", fix], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, f"{fix!r} failed:\n{done.stdout}\n{done.stderr}"
    code, after = check_json(root, "--require-pushed")
    assert code == 0, (
        f"after running the suggested fix {fix!r} (it printed {done.stdout.strip()!r}), "
        f"{target.name} is {'back' if target.exists() else 'still missing'} on the remote and "
        f"check --require-pushed still reports {after['problems']}"
    )


def test_file_object_deleted_from_dvc_remote_refuses_with_setting(pushed):
    root, _, store = pushed
    configure(root, require_pushed=True)
    git(root, "push", "-q", "origin", "main")
    object_path(store, dvc_hash(root, f"{TRACKED_DATA_FILE}.dvc")).unlink()
    refuse(root, expected=[(TRACKED_DATA_FILE, f"dvc push {TRACKED_DATA_FILE}")])


def test_new_data_never_pushed(pushed):
    root, _, _ = pushed
    (root / "data" / "extra.csv").write_text("e\n1\n")
    dvc(root, "add", "-q", "data/extra.csv")
    commit_all(root, "new data, dvc push forgotten")
    git(root, "push", "-q", "origin", "main")
    code, report = check_json(root, "--require-pushed")
    assert code == 3
    json_problem(report, "data/extra.csv", "dvc push data/extra.csv", kind="data-not-pushed")
    assert len(report["problems"]) == 1, report["problems"]


def test_every_push_problem_at_once(pushed):
    root, _, store = pushed
    (root / "data" / "extra.csv").write_text("e\n1\n")
    dvc(root, "add", "-q", "data/extra.csv")
    commit_all(root, "new data, nothing pushed")
    object_path(store, md5(IMAGE_FILES["img0.bin"])).unlink()
    refuse(
        root,
        "--require-pushed",
        expected=[
            ("remote branch", "git push -u origin main"),
            ("data/extra.csv", "dvc push data/extra.csv"),
            (TRACKED_DATA_DIR, f"dvc push {TRACKED_DATA_DIR}"),
        ],
    )


def test_no_dvc_remote(project, tmp_path):
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(project, "remote", "add", "origin", str(bare))
    git(project, "push", "-q", "-u", "origin", "main")
    code, report = check_json(project, "--require-pushed")
    assert code == 3
    assert any("dvc remote add" in p["fix"] for p in report["problems"]), report["problems"]
