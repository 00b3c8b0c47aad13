"""`reprotrain rerun RUN_ID`: rebuild a recorded run's code, data and config in a separate git
worktree, after the repository has moved on, without touching the user's working copy.

Also: derived runs (`rerun RUN_ID key=value`), the worktree's lifecycle (--keep, SIGINT), unpinned
runs (refused, --force), unknown run IDs, and environment drift (--strict-env).
"""

from __future__ import annotations

import os
import signal
import types
from pathlib import Path

import pytest
from helpers import (
    artifact_json,
    artifact_paths,
    commit_all,
    copy_project,
    dvc,
    dvc_out,
    git,
    git_status,
    head_sha,
    pid_alive,
    record_of,
    run_cli,
    wait_for,
)
from rerun_helpers import (
    CODE_VERSION_LINE,
    assert_no_worktree_left,
    assert_same_identity,
    error_lines,
    get_run,
    interrupt_rerun,
    launch,
    repo_state,
    rerun,
    run_ids,
    running_runs,
    runs_tagged,
    set_recorded_environment,
    setup_rerun_project,
    store_of,
    the_rerun_of,
    worktrees,
)

ORIGINAL_CSV = "a,b\n1,2\n3,4\n5,6\n"  # the template's data/train.csv
NEW_CSV = "a,b\n10,20\n30,40\n50,60\n70,80\n"
# What rtrain.py computes at the original commit with `+experiment=fast` (lr 0.5, layers 2, v1).
ORIGINAL_METRICS = {
    "rows": 3.0,
    "total": 21.0,
    "image_bytes": 77.0,
    "lr": 0.5,
    "layers": 2.0,
    "code_version": 1.0,
    "score": 0.5 * 21 + 2 + 1,
}


@pytest.fixture(scope="module")
def moved(template_project, tmp_path_factory):
    """A run launched at one commit; then HEAD moved on in data, code and config, on a branch,
    and the working copy has uncommitted (modified, staged and untracked) changes."""
    root = copy_project(template_project, tmp_path_factory.mktemp("moved") / "demo")
    setup_rerun_project(root)
    git(root, "checkout", "-q", "-b", "feature")
    original_sha = head_sha(root)
    original_data = dvc_out(root, "data/train.csv.dvc")
    run_id = launch(root, "+experiment=fast")
    uri = store_of(root)
    original = get_run(uri, run_id)
    assert original.data.metrics == ORIGINAL_METRICS, "the training script computes what the test expects"

    # HEAD moves on: new data (file and directory), new code, new config (primary and group).
    (root / "data" / "train.csv").write_text(NEW_CSV)
    (root / "data" / "images" / "img3.bin").write_bytes(b"new image" * 5)
    dvc(root, "add", "-q", "data/train.csv", "data/images")
    rtrain = root / "rtrain.py"
    rtrain.write_text(rtrain.read_text().replace(CODE_VERSION_LINE, "CODE_VERSION = 2\n"))
    config = root / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("layers: 2", "layers: 5"))
    (root / "conf" / "experiment" / "fast.yaml").write_text("# @package _global_\nmodel:\n  lr: 0.9\n")
    new_sha = commit_all(root, "new data, code and config")
    assert new_sha != original_sha
    assert dvc_out(root, "data/train.csv.dvc")["md5"] != original_data["md5"]

    # uncommitted work the rerun must not touch
    rtrain.write_text(rtrain.read_text().replace("CODE_VERSION = 2\n", "CODE_VERSION = 3\n"))
    (root / "conf" / "other.yaml").write_text("seed: 7\n")
    git(root, "add", "conf/other.yaml")
    (root / "scratch.txt").write_text("work in progress\n")
    return types.SimpleNamespace(
        root=root,
        uri=uri,
        run_id=run_id,
        original=original,
        sha=original_sha,
        new_sha=new_sha,
        state=repo_state(root),
        files={p: (root / p).read_bytes() for p in ("rtrain.py", "conf/other.yaml", "scratch.txt", "data/train.csv")},
    )


def assert_untouched(m) -> None:
    """The user's branch, HEAD, refs, index, working copy and workspace data are as they were."""
    assert repo_state(m.root) == m.state
    for rel, content in m.files.items():
        assert (m.root / rel).read_bytes() == content, f"{rel} changed in the working copy"
    assert (m.root / "data" / "images" / "img3.bin").exists(), "the workspace's newer data was replaced"


def test_rerun_reproduces_original_after_data_code_and_config_moved_on(moved):
    m = moved
    set_recorded_environment(m.uri, m.run_id)  # no drift: whatever was installed since, as recorded
    before = run_ids(m.uri)
    res = rerun(m.root, m.run_id, "--verify")
    assert res.code == 0, res.describe()
    assert res.out.strip().splitlines()[-1] == "REPRODUCED", res.describe()

    new = the_rerun_of(m.uri, m.run_id, res)
    assert run_ids(m.uri) - before == {new.info.run_id}, "exactly one new run"
    assert new.info.status == "FINISHED"
    assert new.info.experiment_id == m.original.info.experiment_id, "the rerun lands in the original's experiment"
    assert_same_identity(m.original, new)
    assert new.data.tags["reprotrain.git.commit"] == m.sha != m.new_sha
    assert new.data.tags["reprotrain.overrides"] == m.original.data.tags["reprotrain.overrides"]
    assert new.data.tags["reprotrain.reproduced"] == "true"
    assert new.data.tags.get("reprotrain.env_drift") == "0"
    assert "reprotrain.derived_from" not in new.data.tags
    # the original code (v1), data (3 rows, 3 images) and config (lr 0.5, layers 2) ran again
    assert new.data.metrics == ORIGINAL_METRICS

    rec, orig_rec = record_of(m.uri, new.info.run_id), record_of(m.uri, m.run_id)
    assert rec["git"]["commit"] == m.sha
    assert [(d["path"], d["hash"]) for d in rec["data"]] == [(d["path"], d["hash"]) for d in orig_rec["data"]]
    assert rec["config"]["overrides"] == ["+experiment=fast"]
    verification = artifact_json(m.uri, new.info.run_id, "reprotrain/verification.json")
    assert verification["reproduced"] is True
    assert verification["original"] == m.run_id and verification["rerun"] == new.info.run_id

    assert_untouched(m)
    assert_no_worktree_left(m.root)
    assert m.original.info.status == get_run(m.uri, m.run_id).info.status == "FINISHED"


def test_derived_run_changes_config_but_keeps_code_and_data(moved):
    m = moved
    res = rerun(m.root, m.run_id, "model.lr=0.25", "--verify")
    assert res.code == 0, res.describe()
    assert "REPRODUCED" not in res.out, "a derived run is never verified"
    found = runs_tagged(m.uri, "reprotrain.derived_from", m.run_id)
    assert len(found) == 1, res.describe()
    new = get_run(m.uri, found[0].info.run_id)
    tags = new.data.tags
    assert "reprotrain.rerun_of" not in tags
    assert "reprotrain.reproduced" not in tags
    assert "reprotrain/verification.json" not in artifact_paths(m.uri, new.info.run_id)
    assert tags["reprotrain.git.commit"] == m.original.data.tags["reprotrain.git.commit"]
    assert tags["reprotrain.data.digest"] == m.original.data.tags["reprotrain.data.digest"]
    assert tags["reprotrain.config.digest"] != m.original.data.tags["reprotrain.config.digest"]
    assert record_of(m.uri, new.info.run_id)["config"]["overrides"] == ["+experiment=fast", "model.lr=0.25"]
    # the recorded code (v1) and data, with the changed learning rate
    assert new.data.metrics == ORIGINAL_METRICS | {"lr": 0.25, "score": 0.25 * 21 + 2 + 1}
    assert new.info.status == "FINISHED"
    assert_untouched(m)
    assert_no_worktree_left(m.root)


def test_keep_leaves_the_worktree_at_the_recorded_commit(moved):
    m = moved
    res = rerun(m.root, "last", "--keep")  # `last`: the newest `reprotrain run` here is the original
    assert res.code == 0, res.describe()
    assert runs_tagged(m.uri, "reprotrain.rerun_of", m.run_id), res.describe()
    printed = [line.split(" at ", 1)[1].strip() for line in res.err.splitlines() if "kept the worktree at " in line]
    kept = [Path(p) for p in worktrees(m.root) if Path(p).resolve() != m.root.resolve()]
    try:
        assert len(kept) == 1, f"expected one kept worktree: {worktrees(m.root)}\n{res.describe()}"
        wt = kept[0]
        assert [Path(p).resolve() for p in printed] == [wt.resolve()], f"the kept worktree's path is printed: {res.err}"
        assert wt.resolve().parent == (m.root / ".reprotrain" / "worktrees").resolve()
        assert head_sha(wt) == m.sha
        assert (wt / "data" / "train.csv").read_text() == ORIGINAL_CSV, "the recorded data is restored"
        assert not (wt / "data" / "images" / "img3.bin").exists()
        assert CODE_VERSION_LINE in (wt / "rtrain.py").read_text()
        assert_untouched(m)
        assert git_status(m.root) == m.state["status"], "the kept worktree does not show in git status"
    finally:
        for wt in kept:
            git(m.root, "worktree", "remove", "--force", "--force", str(wt))
    assert_no_worktree_left(m.root)


def test_sigint_during_rerun_leaves_no_worktree(moved, tmp_path):
    m = moved
    before = run_ids(m.uri)
    code, child, log = interrupt_rerun(m.root, m.run_id, tmp_path, signal.SIGINT)
    try:
        assert code == 130, f"exit {code}:\n{log[-3000:]}"
        assert wait_for(lambda: not pid_alive(child), 5), f"training process {child} still runs"
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)
    assert_no_worktree_left(m.root)
    new = run_ids(m.uri) - before
    assert len(new) == 1, log[-3000:]
    run = get_run(m.uri, new.pop())
    assert run.info.status == "KILLED", run.info.status
    assert run.data.tags.get("reprotrain.rerun_of") == m.run_id
    assert running_runs(m.uri) == []
    assert_untouched(m)


def test_rerun_refuses_when_the_recomposed_config_differs(moved):
    """`${oc.env:REPROTRAIN_DEMO_ENV,unset}` resolved to `unset` in the original: a different value
    now would not be the same run, so nothing runs and nothing is recorded."""
    m = moved
    before = run_ids(m.uri)
    res = rerun(m.root, m.run_id, "--verify", env={"REPROTRAIN_DEMO_ENV": "changed"})
    assert res.code == 1, res.describe()
    assert "env_value" in res.err and "changed" in res.err, res.describe()
    assert "Traceback" not in res.err
    assert run_ids(m.uri) == before, "no run for a rerun whose config cannot be rebuilt"
    assert running_runs(m.uri) == []
    assert_no_worktree_left(m.root)
    assert_untouched(m)


def test_unknown_run_id(moved):
    m = moved
    before = run_ids(m.uri)
    res = rerun(m.root, "0123456789abcdef0123456789abcdef", "--verify")
    assert res.code == 1, res.describe()
    lines = error_lines(res.err)
    assert len(lines) == 1, res.err
    assert "0123456789abcdef0123456789abcdef" in lines[0]
    assert "Traceback" not in res.err
    assert run_ids(m.uri) == before
    assert_no_worktree_left(m.root)
    assert_untouched(m)


def test_unknown_run_id_in_a_project_without_store(project):
    """Nothing ever ran here: exit 1, one line, and no store or state dir appearing in git status."""
    res = rerun(project, "0123456789abcdef0123456789abcdef")
    assert res.code == 1, res.describe()
    assert len(worktrees(project)) == 1
    problems = []
    if git_status(project) != "":
        problems.append(f"git status is not clean:\n{git_status(project)}")
    if len(error_lines(res.err)) != 1:
        problems.append(f"not a one-line error:\n{res.err}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- unpinned runs


def test_unpinned_run_is_refused_unless_forced(project):
    setup_rerun_project(project)
    (project / "notes.txt").write_text("untracked: makes the tree unpinned\n")
    res = run_cli("run", "--allow-unpinned", cwd=project)
    assert res.code == 0, res.describe()
    uri = store_of(project)
    (run_id,) = run_ids(uri)
    assert get_run(uri, run_id).data.tags["reprotrain.pinned"] == "false"

    res = rerun(project, run_id, "--verify")
    assert res.code == 3, res.describe()
    assert len(error_lines(res.err)) == 1, res.err
    assert "--force" in res.err, "the refusal names the way out"
    assert run_ids(uri) == {run_id}, "a refused rerun creates no run"
    assert_no_worktree_left(project)

    res = rerun(project, run_id, "--force")
    assert res.code == 0, res.describe()
    new = the_rerun_of(uri, run_id, res)
    assert new.info.status == "FINISHED"
    assert new.data.tags["reprotrain.git.commit"] == get_run(uri, run_id).data.tags["reprotrain.git.commit"]
    assert (project / "notes.txt").exists()
    assert_no_worktree_left(project)


# --------------------------------------------------------------------------- environment drift


def test_env_drift_is_reported_recorded_and_strict_env_refuses(project):
    setup_rerun_project(project)
    run_id = launch(project)
    uri = store_of(project)
    # as if recorded in another environment: one version differs, one package is gone since
    now = set_recorded_environment(uri, run_id, pyyaml="0.0.1", **{"only-in-the-old-env": "1.2.3"})
    current_yaml = now["pyyaml"]

    res = rerun(project, run_id, "--strict-env")
    assert res.code == 1, res.describe()
    assert "pyyaml" in res.err and "0.0.1" in res.err and current_yaml in res.err, res.err
    assert "only-in-the-old-env" in res.err
    assert "--strict-env" in res.err
    assert run_ids(uri) == {run_id}, "a refused rerun creates no run"
    assert_no_worktree_left(project)

    res = rerun(project, run_id, "--verify")
    assert res.code == 0, res.describe()
    assert "pyyaml" in res.err and "0.0.1" in res.err
    assert res.err.index("0.0.1") < res.err.index("reprotrain: run "), "drift is printed before the rerun"
    new = the_rerun_of(uri, run_id, res)
    assert new.data.tags["reprotrain.env_drift"] == "2"
    assert new.data.tags["reprotrain.reproduced"] == "true", "drift alone does not fail verification"
    rows = artifact_json(uri, new.info.run_id, "reprotrain/env-drift.json")
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"pyyaml", "only-in-the-old-env"}, rows
    assert by_name["pyyaml"]["recorded"] == "0.0.1"
    assert by_name["pyyaml"]["current"] == current_yaml
    assert by_name["only-in-the-old-env"]["current"] is None
    assert_no_worktree_left(project)
