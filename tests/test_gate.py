"""The pin gate of `reprotrain run` (DESIGN.md §6-§7): exit 3 before any MLflow run is created,
every problem listed at once on stderr, each with its path and the command that fixes it."""

from __future__ import annotations

import shutil

import pytest
from gate_helpers import (
    add_pipeline,
    add_submodule,
    assert_problems,
    cache_dir,
    check,
    check_json,
    dvc_hash,
    make_repo,
    md5,
    object_path,
    refuse,
    run_ids,
)
from helpers import (
    IMAGE_FILES,
    TRACKED_DATA_DIR,
    TRACKED_DATA_FILE,
    artifact_paths,
    commit_all,
    configure,
    dvc,
    embedded_uri,
    git,
    record_of,
    run_ok,
    write_pyproject,
)

# --------------------------------------------------------------------------- git


def test_not_inside_a_git_repository(tmp_path):
    root = tmp_path / "nogit"
    root.mkdir()
    write_pyproject(root, entrypoint="python train.py")
    (root / "train.py").write_text("print('never runs')\n")
    res = refuse(root, expected=[(str(root.resolve()), "git init")])
    assert "not inside a git repository" in res.err
    assert not (root / ".reprotrain").exists()


def test_repository_without_a_commit(tmp_path):
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_pyproject(root, entrypoint="python train.py")
    (root / "train.py").write_text("print('never runs')\n")
    res = refuse(
        root,
        expected=[
            ("no commit", "git add -A && git commit"),
            ("train.py", "git add train.py && git commit"),
            ("pyproject.toml", "git add pyproject.toml && git commit"),
        ],
    )
    assert not (root / ".reprotrain").exists(), res.describe()


def test_modified_tracked_file(project):
    with (project / "train.py").open("a") as fh:
        fh.write("# an uncommitted edit\n")
    refuse(project, expected=[("train.py", "git commit train.py")])


def test_deleted_tracked_file(project):
    (project / "hydra_app.py").unlink()
    refuse(project, expected=[("hydra_app.py", "git commit hydra_app.py")])


def test_staged_new_file(project):
    (project / "helper.py").write_text("X = 1\n")
    git(project, "add", "helper.py")
    refuse(project, expected=[("helper.py", "git commit")])


def test_staged_modification(project):
    with (project / "conf" / "config.yaml").open("a") as fh:
        fh.write("extra: 1\n")
    git(project, "add", "conf/config.yaml")
    refuse(project, expected=[("conf/config.yaml", "git commit")])


def test_staged_rename(project):
    git(project, "mv", "hydra_app.py", "hydra_main.py")
    refuse(project, expected=[("hydra_main.py", "git commit")])


def test_paths_needing_quotes(project):
    """Names with spaces or non-ASCII letters are reported as they are, quoted in the fix."""
    (project / "my notes.txt").write_text("scratch\n")
    (project / "données.csv").write_text("x\n")
    refuse(
        project,
        expected=[
            ("my notes.txt", "git add 'my notes.txt' && git commit"),
            ("données.csv", "données.csv"),
        ],
    )


def test_untracked_file(project):
    (project / "notes.txt").write_text("scratch\n")
    (project / "conf" / "experiment").joinpath("wip.yaml").write_text("# @package _global_\n")
    refuse(
        project,
        expected=[
            ("notes.txt", "git add notes.txt && git commit"),
            ("conf/experiment/wip.yaml", "git add conf/experiment/wip.yaml && git commit"),
        ],
    )


def test_ignored_untracked_file_does_not_count(project):
    (project / ".gitignore").write_text("__pycache__/\n*.pyc\n*.log\n")
    commit_all(project, "ignore logs")
    (project / "debug.log").write_text("ignored\n")
    assert check(project).code == 0, check(project).describe()


def test_refused_from_a_subdirectory(project):
    (project / "notes.txt").write_text("scratch\n")
    refuse(project, expected=[("notes.txt", "git add notes.txt")], cwd=project / "conf")


def test_multirun_is_refused_too(project):
    (project / "notes.txt").write_text("scratch\n")
    refuse(project, "-m", "model.lr=0.1,0.2", expected=[("notes.txt", "git add notes.txt")])


def test_pinned_run_then_a_refusal_adds_no_run(project):
    """Positive control (a pinned project runs, recorded as pinned, with check's data digest), then
    a refusal against the now existing store leaves it with that one run."""
    _, report = check_json(project)
    _, first = run_ok(project)
    uri = embedded_uri(project)
    assert first.data.tags["reprotrain.pinned"] == "true"
    assert first.data.tags["reprotrain.data.digest"] == report["data_digest"]
    record = record_of(uri, first.info.run_id)
    assert record["pinned"] is True and not record["problems"], record["problems"]
    assert not any(p.startswith("reprotrain/unpinned") for p in artifact_paths(uri, first.info.run_id))
    assert run_ids(project) == {first.info.run_id}
    with (project / "train.py").open("a") as fh:
        fh.write("# edit\n")
    refuse(project, expected=[("train.py", "git commit train.py")])
    assert run_ids(project) == {first.info.run_id}


# --------------------------------------------------------------------------- submodules


@pytest.fixture
def with_submodule(project, tmp_path):
    source = make_repo(tmp_path / "subsrc", {"lib.py": "VALUE = 1\n"})
    (source / "lib.py").write_text("VALUE = 2\n")
    commit_all(source, "second")
    add_submodule(project, source, "sub")
    return project


def test_clean_submodule_is_pinned(with_submodule):
    assert check(with_submodule).code == 0, check(with_submodule).describe()


def test_submodule_moved_to_another_commit(with_submodule):
    git(with_submodule / "sub", "checkout", "-q", "HEAD~1")
    refuse(with_submodule, expected=[("sub", "git submodule update sub")])


def test_submodule_with_a_new_commit(with_submodule):
    sub = with_submodule / "sub"
    (sub / "lib.py").write_text("VALUE = 3\n")
    git(sub, "commit", "-q", "-am", "inside the submodule")
    refuse(with_submodule, expected=[("sub", "git add sub && git commit")])


@pytest.mark.parametrize("change", ["modified", "untracked"])
def test_submodule_with_uncommitted_changes(with_submodule, change):
    sub = with_submodule / "sub"
    if change == "modified":
        (sub / "lib.py").write_text("VALUE = 99\n")
    else:
        (sub / "new_module.py").write_text("NEW = 1\n")
    refuse(with_submodule, expected=[("sub", "inside sub")])


def test_uninitialised_submodule(with_submodule, tmp_path):
    """A clone whose submodule was never checked out (`git submodule status` shows `-`): git status
    is clean, but the workspace does not hold the code the commit pins, just as a DVC output
    missing from the workspace is refused."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(with_submodule), str(clone))
    shutil.copytree(cache_dir(with_submodule), cache_dir(clone), dirs_exist_ok=True)
    dvc(clone, "checkout", "-q")
    assert not any((clone / "sub").iterdir()), "precondition: the submodule is not checked out"
    assert git(clone, "submodule", "status").startswith("-")
    refuse(clone, expected=[("sub", "git submodule update --init sub")])


# --------------------------------------------------------------------------- DVC outputs (.dvc files)


def test_dvc_file_output_deleted(project):
    (project / TRACKED_DATA_FILE).unlink()
    refuse(project, expected=[(TRACKED_DATA_FILE, f"dvc checkout {TRACKED_DATA_FILE}")])


def test_dvc_file_output_modified(project):
    (project / TRACKED_DATA_FILE).write_text("a,b\n9,9\n")
    refuse(
        project,
        expected=[(TRACKED_DATA_FILE, f"dvc add {TRACKED_DATA_FILE} && git commit {TRACKED_DATA_FILE}.dvc")],
    )


def test_dvc_directory_deleted(project):
    shutil.rmtree(project / TRACKED_DATA_DIR)
    refuse(project, expected=[(TRACKED_DATA_DIR, f"dvc checkout {TRACKED_DATA_DIR}")])


@pytest.mark.parametrize("change", ["added", "removed", "changed"])
def test_dvc_directory_content_changed(project, change):
    images = project / TRACKED_DATA_DIR
    if change == "added":
        (images / "img9.bin").write_bytes(b"new image")
    elif change == "removed":
        (images / "img1.bin").unlink()
    else:
        target = images / "img2.bin"
        target.chmod(0o644)
        target.write_bytes(b"y" * 7)
    refuse(
        project,
        expected=[(TRACKED_DATA_DIR, f"dvc add {TRACKED_DATA_DIR} && git commit {TRACKED_DATA_DIR}.dvc")],
    )


# --------------------------------------------------------------------------- DVC pipeline (dvc.lock)


@pytest.fixture
def with_pipeline(project):
    add_pipeline(project)
    return project


def test_clean_pipeline_is_pinned(with_pipeline):
    code, report = check_json(with_pipeline)
    assert code == 0, report["problems"]
    prepared = [d for d in report["data"] if d["path"] == "data/prepared.csv"]
    assert prepared and "dvc.lock" in prepared[0]["source"], report["data"]


def test_stale_dvc_lock_after_committed_dependency_change(with_pipeline):
    """prep.py changed and committed: git is clean and the output is unchanged, but dvc.lock no
    longer describes how data/prepared.csv is made."""
    with (with_pipeline / "prep.py").open("a") as fh:
        fh.write("# a committed change that dvc.lock does not know about\n")
    commit_all(with_pipeline, "change prep.py, forget dvc repro")
    refuse(with_pipeline, expected=[("prep.py", "dvc repro prep && git commit dvc.lock")])


def test_pipeline_output_modified(with_pipeline):
    (with_pipeline / "data" / "prepared.csv").write_text("x,y\n0,0\n")
    refuse(with_pipeline, expected=[("data/prepared.csv", "dvc repro prep && git commit dvc.lock")])


def test_pipeline_output_deleted(with_pipeline):
    (with_pipeline / "data" / "prepared.csv").unlink()
    refuse(with_pipeline, expected=[("data/prepared.csv", "dvc checkout data/prepared.csv")])


# --------------------------------------------------------------------------- DVC cache


def test_file_object_missing_from_cache(project):
    object_path(cache_dir(project), dvc_hash(project, f"{TRACKED_DATA_FILE}.dvc")).unlink()
    refuse(project, expected=[(TRACKED_DATA_FILE, f"dvc pull {TRACKED_DATA_FILE}")])


@pytest.mark.parametrize("which", ["entry", "manifest"])
def test_directory_object_missing_from_cache(project, which):
    if which == "entry":
        oid = md5(IMAGE_FILES["img1.bin"])
    else:
        oid = dvc_hash(project, f"{TRACKED_DATA_DIR}.dvc")
        assert oid.endswith(".dir")
    target = object_path(cache_dir(project), oid)
    assert target.exists(), f"expected cache object {target}"
    target.unlink()
    refuse(project, expected=[(TRACKED_DATA_DIR, f"dvc pull {TRACKED_DATA_DIR}")])


def test_missing_cache_objects_are_each_reported_once(project):
    """One missing object is one problem: the report must not list the same output twice for it."""
    object_path(cache_dir(project), dvc_hash(project, f"{TRACKED_DATA_FILE}.dvc")).unlink()
    object_path(cache_dir(project), md5(IMAGE_FILES["img1.bin"])).unlink()
    code, report = check_json(project)
    assert code == 3
    paths = [p["path"] for p in report["problems"]]
    assert sorted(paths) == [TRACKED_DATA_DIR, TRACKED_DATA_FILE], report["problems"]


def test_pipeline_output_missing_from_cache(with_pipeline):
    oid = md5(b"x,y\n1,1\n2,4\n")
    object_path(cache_dir(with_pipeline), oid).unlink()
    refuse(with_pipeline, expected=[("data/prepared.csv", "dvc pull data/prepared.csv")])


# --------------------------------------------------------------------------- data policy


@pytest.fixture
def without_data(project):
    """The template with its DVC outputs removed (the files stay in git, tracked plainly)."""
    git(project, "rm", "-q", f"{TRACKED_DATA_FILE}.dvc", f"{TRACKED_DATA_DIR}.dvc", "data/.gitignore")
    commit_all(project, "no DVC data")
    return project


def test_no_dvc_tracked_data(without_data):
    refuse(without_data, expected=[("no DVC-tracked data", "has_data = false")])


def test_no_dvc_tracked_data_allowed_by_has_data_false(without_data):
    configure(without_data, has_data=False)
    run_ok(without_data)


def test_not_a_dvc_repository(tmp_path):
    root = make_repo(
        tmp_path / "plain", {"train.py": "print('ok')\n", "data.csv": "a\n1\n", "conf/config.yaml": "seed: 0\n"}
    )
    configure(root)
    refuse(root, expected=[("DVC", "dvc init")])
    configure(root, has_data=False)
    assert check(root).code == 0, check(root).describe()


def test_declared_input_not_tracked_by_dvc(project):
    (project / "data" / "raw.csv").write_text("r\n1\n")
    git(project, "add", "-f", "data/raw.csv")
    configure(project, inputs=["data/raw.csv", "extra/missing.parquet", TRACKED_DATA_FILE])
    res = refuse(
        project,
        expected=[
            ("data/raw.csv", "dvc add data/raw.csv"),
            ("extra/missing.parquet", "dvc add extra/missing.parquet"),
        ],
    )
    assert TRACKED_DATA_FILE not in res.err, "a DVC-tracked input is not a problem"


def test_declared_inputs_inside_dvc_outputs_pass(project):
    configure(project, inputs=[TRACKED_DATA_FILE, TRACKED_DATA_DIR, f"{TRACKED_DATA_DIR}/img0.bin"])
    assert check(project).code == 0, check(project).describe()


# --------------------------------------------------------------------------- every problem at once


def test_every_problem_is_listed_at_once(with_pipeline):
    root = with_pipeline
    configure(root, inputs=["data/raw.csv"])
    with (root / "train.py").open("a") as fh:
        fh.write("# edit\n")
    (root / "staged.py").write_text("S = 1\n")
    git(root, "add", "staged.py")
    (root / "notes.txt").write_text("scratch\n")
    (root / TRACKED_DATA_FILE).unlink()
    (root / TRACKED_DATA_DIR / "img9.bin").write_bytes(b"new")
    (root / "data" / "prepared.csv").write_text("changed\n")
    expected = [
        ("train.py", "git commit train.py"),
        ("staged.py", "git commit"),
        ("notes.txt", "git add notes.txt && git commit"),
        (TRACKED_DATA_FILE, f"dvc checkout {TRACKED_DATA_FILE}"),
        (TRACKED_DATA_DIR, f"dvc add {TRACKED_DATA_DIR} && git commit {TRACKED_DATA_DIR}.dvc"),
        ("data/prepared.csv", "dvc repro prep && git commit dvc.lock"),
        ("data/raw.csv", "dvc add data/raw.csv"),
    ]
    res = refuse(root, expected=expected)
    blocks = assert_problems(res.err, expected)
    assert len(blocks) == len(expected), res.err
    assert f"{len(expected)} problems" in res.err, res.err
