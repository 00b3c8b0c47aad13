"""`reprotrain check`: the pin gate alone, as text (exit 0 / 3) and as JSON."""

from __future__ import annotations

from gate_helpers import (
    assert_problems,
    check,
    check_json,
    full_status,
    json_problem,
    tree,
)
from helpers import (
    TRACKED_DATA_DIR,
    TRACKED_DATA_FILE,
    all_runs,
    dvc,
    dvc_out,
    embedded_uri,
    git,
    head_sha,
    run_cli,
    write_pyproject,
)

PROBLEM_KEYS = {"kind", "path", "message", "fix"}


def dirty(project):
    """Three problems of three kinds: a modified file, an untracked file, a deleted DVC output."""
    with (project / "train.py").open("a") as fh:
        fh.write("# edit\n")
    (project / "notes.txt").write_text("scratch\n")
    (project / TRACKED_DATA_FILE).unlink()
    return [
        ("train.py", "git commit train.py"),
        ("notes.txt", "git add notes.txt && git commit"),
        (TRACKED_DATA_FILE, f"dvc checkout {TRACKED_DATA_FILE}"),
    ]


def test_check_pinned_project(project):
    res = check(project)
    assert res.code == 0, res.describe()
    assert "pinned" in res.out.lower(), res.describe()
    assert "not pinned" not in res.out.lower(), res.describe()
    assert head_sha(project)[:12] in res.out, "the pinned commit is shown"
    for path in (TRACKED_DATA_FILE, TRACKED_DATA_DIR):
        assert path in res.out, f"{path} is listed among the pinned data"


def test_check_json_pinned_project(project):
    code, report = check_json(project)
    assert code == 0
    assert report["pinned"] is True
    assert report["problems"] == []
    assert report["git"]["commit"] == head_sha(project)
    assert report["git"]["branch"] == "main"
    data = {d["path"]: d for d in report["data"]}
    assert set(data) == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}
    assert data[TRACKED_DATA_FILE]["hash"] == dvc_out(project, f"{TRACKED_DATA_FILE}.dvc")["md5"]
    assert data[TRACKED_DATA_DIR]["hash"] == dvc_out(project, f"{TRACKED_DATA_DIR}.dvc")["md5"]
    assert data[TRACKED_DATA_DIR]["nfiles"] == 3
    assert data[TRACKED_DATA_FILE]["source"] == f"{TRACKED_DATA_FILE}.dvc"
    assert isinstance(report["data_digest"], str) and report["data_digest"]


def test_check_unpinned_text(project):
    expected = dirty(project)
    res = check(project)
    assert res.code == 3, res.describe()
    report = res.out + res.err
    blocks = assert_problems(report, expected)
    assert len(blocks) == len(expected), report
    assert "not pinned" in report.lower(), report


def test_check_unpinned_json(project):
    expected = dirty(project)
    res = run_cli("check", "--json", cwd=project)
    assert res.code == 3, res.describe()
    _, report = check_json(project)
    assert report["pinned"] is False
    for problem in report["problems"]:
        assert set(problem) == PROBLEM_KEYS, problem
        assert all(isinstance(v, str) for v in problem.values()), problem
    for path, fix in expected:
        json_problem(report, path, fix)
    assert len(report["problems"]) == len(expected), report["problems"]
    assert report["git"]["commit"] == head_sha(project)


def test_check_and_run_report_the_same_problems(project):
    dirty(project)
    _, report = check_json(project)
    res = run_cli("run", cwd=project)
    assert res.code == 3, res.describe()
    assert_problems(res.err, [(p["path"], p["fix"]) for p in report["problems"]])
    text = check(project)
    assert_problems(text.out + text.err, [(p["path"], p["fix"]) for p in report["problems"]])


def test_check_writes_nothing(project):
    dirty(project)
    status, files = full_status(project), tree(project)
    assert check(project).code == 3
    assert check_json(project)[0] == 3
    assert full_status(project) == status
    assert tree(project) == files
    assert all_runs(embedded_uri(project)) == []


def test_check_from_a_subdirectory(project):
    (project / "notes.txt").write_text("scratch\n")
    code, report = check_json(project, cwd=project / "conf")
    assert code == 3
    json_problem(report, "notes.txt", "git add notes.txt", kind="untracked")


def test_check_outside_git(tmp_path):
    root = tmp_path / "nogit"
    root.mkdir()
    write_pyproject(root, entrypoint="python train.py")
    code, report = check_json(root)
    assert code == 3
    assert any("git init" in p["fix"] for p in report["problems"]), report["problems"]
    res = check(root)
    assert res.code == 3 and "git init" in res.out + res.err, res.describe()


def test_check_without_a_commit(tmp_path):
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_pyproject(root, entrypoint="python train.py")
    code, report = check_json(root)
    assert code == 3
    assert any(p["kind"] == "no-commit" or "no commit" in p["message"] for p in report["problems"]), report
    json_problem(report, "pyproject.toml", "git add pyproject.toml")


def test_check_warns_when_no_dvc_remote_is_configured(project, tmp_path):
    """Pinned all the same (DESIGN §6), but a rerun from another clone could not fetch the data:
    said before, with the fix, instead of failing late on the other machine."""
    res = check(project)
    assert res.code == 0, res.describe()
    assert "warning: no default DVC remote" in res.out, res.out
    assert "fix: dvc remote add -d" in res.out, res.out
    _, report = check_json(project)
    assert [w["kind"] for w in report["warnings"]] == ["no-dvc-remote"], report
    assert report["pinned"] is True and report["schema"] == 1

    dvc(project, "remote", "add", "--local", "-d", "mine", str(tmp_path / "mine"))
    local = check(project)
    assert local.code == 0 and "'mine' is set only in" in local.out and "config.local" in local.out, local.out

    dvc(project, "remote", "add", "-d", "store", str(tmp_path / "store"))
    dvc(project, "remote", "default", "--unset", "--local")
    git(project, "commit", "-qam", "DVC remote")
    after = check(project)
    assert after.code == 0 and "warning" not in after.out, after.describe()
    assert check_json(project)[1]["warnings"] == []
