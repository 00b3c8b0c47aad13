"""What the MLflow UI shows of reprotrain's runs, as stored (scripts/ui_check.py looks at the UI
itself): run names, the description (`mlflow.note.content`), short digest tags, the dataset
inputs' DVC source, profile and schema, the experiment's mode, a rerun's link to its original and
branch, a sweep parent's params, datasets and best job."""

from __future__ import annotations

import json
import types

import pytest
from helpers import (
    TRACKED_DATA_DIR,
    TRACKED_DATA_FILE,
    client_for,
    commit_all,
    configure,
    copy_project,
    dvc,
    dvc_out,
    embedded_uri,
    git,
    head_sha,
    record_of,
    run_cli,
    run_ok,
)
from rerun_helpers import get_run, launch, rerun, setup_rerun_project, the_rerun_of
from team_services import expected_loss, setup_sweep_project, split_sweep

NOTE = "mlflow.note.content"
TRAINING_VIEW = "?workflowType=machine_learning"
DVC_REMOTE_WITH_TOKEN = "https://user:s3cr3tT0k@dvc.example.com/store"
DVC_REMOTE_CLEAN = "https://dvc.example.com/store"


@pytest.fixture(scope="module")
def shown(template_project, tmp_path_factory):
    """One run with overrides, a DVC remote whose URL holds a token, and a git remote."""
    root = copy_project(template_project, tmp_path_factory.mktemp("ui") / "demo")
    dvc(root, "remote", "add", "-d", "store", DVC_REMOTE_WITH_TOKEN)
    commit_all(root, "a DVC remote")
    _, run = run_ok(root, "+experiment=fast", "seed=3")
    uri = embedded_uri(root)
    return types.SimpleNamespace(root=root, uri=uri, run=run, run_id=run.info.run_id, sha=head_sha(root))


def test_run_is_named_by_its_overrides(shown):
    assert shown.run.info.run_name == "+experiment=fast seed=3"


def test_description_says_commit_pin_data_and_rerun_command(shown):
    note = shown.run.data.tags[NOTE]
    tags = shown.run.data.tags
    assert f"**commit** `{shown.sha[:12]}` on branch `main`" in note, note
    assert "**pinned** yes" in note
    assert f"**config digest** `{tags['reprotrain.config.digest'][:12]}`" in note
    assert f"**data digest** `{tags['reprotrain.data.digest'][:12]}`" in note
    train = dvc_out(shown.root, "data/train.csv.dvc")["md5"]
    assert f"`{TRACKED_DATA_FILE}`: `{train[:12]}`, from `data/train.csv.dvc`" in note
    assert f"DVC remote `{DVC_REMOTE_CLEAN}`" in note
    assert "**launched as** `reprotrain run +experiment=fast seed=3`" in note
    assert f"`reprotrain rerun {shown.run_id} --verify`" in note
    assert "s3cr3tT0k" not in note


def test_short_digest_tags_read_in_full_where_the_ui_cuts_keys(shown):
    tags = shown.run.data.tags
    assert tags["reprotrain.data"] == tags["reprotrain.data.digest"][:12]
    assert tags["reprotrain.config"] == tags["reprotrain.config.digest"][:12]


def test_datasets_name_their_dvc_source_remote_profile_and_schema(shown):
    inputs = {d.dataset.name: d.dataset for d in shown.run.inputs.dataset_inputs}
    assert set(inputs) == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}
    table, images = inputs[TRACKED_DATA_FILE], inputs[TRACKED_DATA_DIR]
    assert json.loads(table.source) == {
        "path": TRACKED_DATA_FILE,
        "hash": dvc_out(shown.root, "data/train.csv.dvc")["md5"],
        "dvc_file": "data/train.csv.dvc",
        "remote": DVC_REMOTE_CLEAN,
    }
    # the UI lists the profile as `key: value`; a single file counts one (DVC records no count)
    assert json.loads(table.profile) == {
        "size": dvc_out(shown.root, "data/train.csv.dvc")["size"],
        "nfiles": 1,
        "dvc_file": "data/train.csv.dvc",
        "dvc_remote": DVC_REMOTE_CLEAN,
        "format": "csv",  # the table's own (adapters/tables read it at the gate)
        "rows": 3,
        "columns": 2,
    }
    assert json.loads(images.profile)["nfiles"] == 3
    assert "null" not in table.profile + images.profile
    # from the whole CSV: its header and the types of its rows (a,b / 1,2 ...)
    columns = [{"type": "long", "name": "a"}, {"type": "long", "name": "b"}]
    assert json.loads(table.schema) == {"mlflow_colspec": columns}
    assert not images.schema
    assert "s3cr3tT0k" not in table.source + table.profile


def test_experiment_is_made_in_model_training_mode(shown):
    experiment = client_for(shown.uri).get_experiment(shown.run.info.experiment_id)
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"


def test_experiment_mode_is_set_on_reprotrains_own_experiment_never_on_a_users(project):
    uri = embedded_uri(project)
    run_ok(project)
    client = client_for(uri)
    ours = client.get_experiment_by_name("demo")
    client.delete_experiment_tag(ours.experiment_id, "mlflow.experimentKind")  # as made before this release
    theirs = client.create_experiment("theirs", artifact_location=str(project.parent / "their-artifacts"))
    chosen = client.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    assert run_cli("run", cwd=project).code == 0
    for name in ("theirs", "chosen"):
        assert run_cli("run", cwd=project, env={"MLFLOW_EXPERIMENT_NAME": name}).code == 0
    assert client.get_experiment(ours.experiment_id).tags.get("mlflow.experimentKind") == "custom_model_development"
    assert "mlflow.experimentKind" not in client.get_experiment(theirs).tags
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"


def test_a_job_name_the_user_gave_names_the_run_and_unpinned_is_described(project):
    (project / "train.py").write_text((project / "train.py").read_text() + "\n# edited\n")
    _, run = run_ok(project, "--allow-unpinned", "hydra.job.name=my-job")
    assert run.info.run_name == "my-job"
    note = run.data.tags[NOTE]
    assert "**pinned** no: launched with --allow-unpinned" in note, note
    assert "train.py" in note


def test_rerun_is_named_after_and_links_its_original_with_its_branch_and_verdict(project):
    setup_rerun_project(project)
    uri = embedded_uri(project)
    original = launch(project, "+experiment=fast")
    git(project, "checkout", "-q", "-b", "elsewhere")  # the user's tree moved on; the rerun is detached
    res = rerun(project, original, "--verify")
    assert res.code == 0, res.describe()
    new = the_rerun_of(uri, original, res)
    experiment = new.info.experiment_id
    assert new.info.run_name == "rerun of +experiment=fast"
    note = new.data.tags[NOTE]
    assert f"**rerun of** [+experiment=fast](#/experiments/{experiment}/runs/{original}{TRAINING_VIEW})" in note, note
    assert "**verdict** reproduced" in note
    assert f"`reprotrain rerun {new.info.run_id} --verify`" in note
    # the commit came from the original's branch: the rerun's worktree is detached at it
    assert new.data.tags["reprotrain.git.branch"] == "main"
    assert new.data.tags["mlflow.source.git.branch"] == "main"
    assert record_of(uri, new.info.run_id)["git"]["branch"] == "main"
    assert "on branch `main`" in note

    res = rerun(project, original, "seed=5")
    assert res.code == 0, res.describe()
    (derived,) = [r for r in client_for(uri).search_runs([experiment]) if r.data.tags.get("reprotrain.derived_from")]
    assert derived.info.run_name == "rerun of +experiment=fast with seed=5"
    assert f"**derived from** [+experiment=fast](#/experiments/{experiment}/runs/{original}" in derived.data.tags[NOTE]


def test_sweep_parent_shows_its_params_datasets_and_best_job(project):
    setup_sweep_project(project)
    configure(project, entrypoint="python strain.py", objective="loss")
    res = run_cli("run", "-m", "+experiment=fast", "model.lr=0.1,0.3", cwd=project)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    parent, children = split_sweep(uri)
    pid = parent.info.run_id
    assert parent.info.run_name == "sweep: +experiment=fast model.lr=0.1,0.3"
    assert [c.info.run_name for c in children] == ["+experiment=fast: model.lr=0.1", "+experiment=fast: model.lr=0.3"]
    # the jobs' params: a shared value as it is, a swept one as the values the jobs took
    assert parent.data.params["model.lr"] == "0.1, 0.3"
    assert parent.data.params["seed"] == "0"
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}
    best = children[1]  # loss (lr - 0.3)^2: the job with model.lr=0.3
    assert best.data.metrics["loss"] == expected_loss(0.3, 0) < children[0].data.metrics["loss"]
    tags = parent.data.tags
    assert tags["reprotrain.sweep.best"] == best.info.run_id
    assert float(tags["reprotrain.sweep.best_value"]) == best.data.metrics["loss"]
    assert tags["reprotrain.sweep.objective"] == "minimize loss"
    note = tags[NOTE]
    route = f"#/experiments/{parent.info.experiment_id}/runs/{best.info.run_id}{TRAINING_VIEW}"
    assert f"**best job** by `loss` (minimized, 2 job(s)): [+experiment=fast: model.lr=0.3]({route})" in note, note
    assert f"`reprotrain rerun {pid} --verify`" in note
    parent_route = f"#/experiments/{parent.info.experiment_id}/runs/{pid}"
    assert f"**sweep** [sweep: +experiment=fast model.lr=0.1,0.3]({parent_route}" in children[0].data.tags[NOTE]
    assert get_run(uri, pid).data.tags["mlflow.source.git.branch"] == "main"


def test_reprotrain_ui_names_the_experiment_page_in_model_training_mode(shown, tmp_path):
    from reprotrain.query import _experiment_page

    experiment = shown.run.info.experiment_id
    assert _experiment_page(shown.uri, shown.root) == f"#/experiments/{experiment}{TRAINING_VIEW}"
    assert _experiment_page(f"sqlite:///{tmp_path}/none.db", shown.root) == f"#/experiments{TRAINING_VIEW}"


def test_rerun_of_a_sweep_shows_its_params_datasets_and_best_job(project):
    setup_sweep_project(project)
    configure(project, entrypoint="python strain.py", objective="loss")
    res = run_cli("run", "-m", "model.lr=0.1,0.3", cwd=project)
    assert res.code == 0, res.describe()
    uri = embedded_uri(project)
    sweep, _ = split_sweep(uri)
    res = rerun(project, sweep.info.run_id)
    assert res.code == 0, res.describe()
    client = client_for(uri)
    runs = client.search_runs([sweep.info.experiment_id], "tags.`reprotrain.sweep` = 'true'")
    (again,) = [r for r in runs if r.data.tags.get("reprotrain.rerun_of") == sweep.info.run_id]
    assert again.info.run_name == "rerun of sweep: model.lr=0.1,0.3"
    assert again.data.params["model.lr"] == "0.1, 0.3"
    assert {d.dataset.name for d in again.inputs.dataset_inputs} == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}
    jobs = client.search_runs([sweep.info.experiment_id], f"tags.`mlflow.parentRunId` = '{again.info.run_id}'")
    best = next(j for j in jobs if j.data.params["model.lr"] == "0.3")
    assert best.info.run_name == "rerun of model.lr=0.3"
    assert again.data.tags["reprotrain.sweep.best"] == best.info.run_id
    note = again.data.tags[NOTE]
    assert f"[sweep: model.lr=0.1,0.3](#/experiments/{sweep.info.experiment_id}/runs/{sweep.info.run_id}" in note
    assert "**best job** by `loss` (minimized, 2 job(s)): [rerun of model.lr=0.3]" in note, note
