"""Where runs go: the embedded store, an external store, settings; the working tree stays as it was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import (
    REPROTRAIN,
    RUN_TIMEOUT,
    all_runs,
    artifact_json,
    cli_env,
    client_for,
    configure,
    copy_project,
    embedded_uri,
    git_status,
    local_path,
    record_of,
    run_cli,
    run_ok,
    single_run,
)

LITTER = ("mlruns", "outputs", "multirun", "mlflow.db")


def assert_no_litter(root: Path) -> None:
    for name in LITTER:
        assert not (root / name).exists(), f"{name} appeared in the working tree"


def assert_artifacts_outside_tree(root: Path, artifact_uri: str) -> None:
    """Artifacts may live in reprotrain's state dir or outside the repository, nowhere else in it."""
    path = local_path(artifact_uri)
    root = root.resolve()
    if path.is_relative_to(root):
        assert path.is_relative_to(root / ".reprotrain"), f"artifacts in the working tree: {path}"


def test_embedded_store_and_unchanged_git_status(project):
    before = git_status(project)
    assert before == ""
    _, run = run_ok(project)
    assert (project / ".reprotrain" / "mlflow.db").is_file()
    artifacts = local_path(run.info.artifact_uri)
    assert artifacts.is_relative_to((project / ".reprotrain").resolve()), artifacts
    assert (artifacts / "reprotrain" / "record.json").is_file()
    assert client_for(embedded_uri(project)).get_experiment(run.info.experiment_id).name == "demo"
    assert_no_litter(project)
    assert git_status(project) == before


def test_dirty_tree_git_status_unchanged(project):
    with (project / "train.py").open("a") as handle:
        handle.write("\n# edit\n")
    (project / "notes.txt").write_text("untracked\n")
    before = git_status(project)
    run_ok(project, "--allow-unpinned")
    assert_no_litter(project)
    assert git_status(project) == before


def test_external_sqlite_store_from_env(project, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    before = git_status(project)
    res = run_cli("run", cwd=project, env={"MLFLOW_TRACKING_URI": other})
    assert res.code == 0, res.describe()
    run = single_run(other)
    assert all_runs(embedded_uri(project)) == [], "MLFLOW_TRACKING_URI must win over the default"
    assert record_of(other, run.info.run_id)["run_id"] == run.info.run_id
    assert_artifacts_outside_tree(project, run.info.artifact_uri)
    assert_no_litter(project)
    assert git_status(project) == before


def test_tracking_uri_setting_and_env_wins(project, tmp_path):
    uri = f"sqlite:///{tmp_path / 'settings.db'}"
    configure(project, tracking_uri=uri)
    res = run_cli("run", cwd=project)
    assert res.code == 0, res.describe()
    run = single_run(uri)
    assert all_runs(embedded_uri(project)) == []
    assert_artifacts_outside_tree(project, run.info.artifact_uri)
    assert_no_litter(project)
    assert git_status(project) == ""

    env_uri = f"sqlite:///{tmp_path / 'env.db'}"
    res = run_cli("run", cwd=project, env={"MLFLOW_TRACKING_URI": env_uri})
    assert res.code == 0, res.describe()
    single_run(env_uri)
    assert len(all_runs(uri)) == 1, "MLFLOW_TRACKING_URI wins over the tracking_uri setting"


def test_experiment_name_setting_and_env(project):
    configure(project, experiment_name="team-exp")
    run_ok(project)
    res = run_cli("run", cwd=project, env={"MLFLOW_EXPERIMENT_NAME": "env-exp"})
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    client = client_for(uri)
    names = sorted(client.get_experiment(r.info.experiment_id).name for r in all_runs(uri))
    assert names == ["env-exp", "team-exp"]


def test_experiment_defaults_to_repo_dir_name(template_project, tmp_path):
    root = copy_project(template_project, tmp_path / "my-repo")
    configure(root, name=None)  # no [project] table
    _, run = run_ok(root)
    assert client_for(embedded_uri(root)).get_experiment(run.info.experiment_id).name == "my-repo"


def test_concurrent_runs_on_a_fresh_store(project):
    """Two launches at once on a store that does not exist yet (the schema migration race)."""
    procs = [
        subprocess.Popen(
            [str(REPROTRAIN), "run", f"seed={seed}"],
            cwd=project,
            env=cli_env(project),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [proc.communicate(timeout=RUN_TIMEOUT)[0] for proc in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    runs = all_runs(embedded_uri(project))
    assert sorted(r.data.params["seed"] for r in runs) == ["1", "2"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_run_from_subdirectory(project):
    subdir = project / "conf" / "experiment"
    _, run = run_ok(project, "+experiment=fast", cwd=subdir)
    assert run.data.params["model.lr"] == "0.5"
    seen = artifact_json(embedded_uri(project), run.info.run_id, "seen.json")
    assert Path(seen["cwd"]).resolve() == project.resolve(), "the command runs in the repository root"
    assert not (subdir / ".reprotrain").exists()
    assert_no_litter(subdir)
    assert_no_litter(project)
    assert git_status(project) == ""
    assert json.loads(run.data.tags["reprotrain.overrides"]) == ["+experiment=fast"]


def test_new_stores_are_copied_from_a_kept_empty_store(template_project: Path, tmp_path: Path) -> None:
    """The first new store is migrated by MLflow and kept empty in the cache dir; the next ones are
    copies, each with its own Default experiment; a damaged copy in the cache is made again."""
    import sqlite3

    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    roots = [copy_project(template_project, tmp_path / name) for name in ("one", "two", "three")]
    run_ok(roots[0], env=env)
    (template,) = (cache / "reprotrain").glob("empty-store-mlflow-*.db")
    with sqlite3.connect(template) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,), "kept before anything is logged"
    _, run = run_ok(roots[1], env=env)
    db = roots[1] / ".reprotrain" / "mlflow.db"
    with sqlite3.connect(db) as conn:
        ((location,),) = conn.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0")
    assert location == f"{roots[1]}/mlruns/0", "the Default experiment is the new store's, as MLflow makes it"
    assert run.info.status == "FINISHED"
    template.write_bytes(b"not a database")
    _, again = run_ok(roots[2], env=env)
    assert again.info.status == "FINISHED"
    assert template.read_bytes().startswith(b"SQLite format 3"), "made again from MLflow's migration"
