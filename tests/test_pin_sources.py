"""What the gate must not call pinned: data that neither the DVC cache nor git keeps (`cache:
false`, outputs outside the repository) and configs that are in no commit (a config directory
outside the repository, `--config-dir`, `hydra.searchpath`, configs that git ignores).

Each case runs the console script on a real git + DVC project."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from gate_helpers import check_json, refuse
from helpers import (
    TRACKED_DATA_FILE,
    commit_all,
    dvc,
    embedded_uri,
    git,
    git_status,
    record_of,
    run_cli,
    run_ok,
)
from rerun_helpers import rerun


def _set_out(root: Path, dvc_file: str, **fields: object) -> None:
    path = root / dvc_file
    doc = yaml.safe_load(path.read_text())
    doc["outs"][0].update(fields)
    path.write_text(yaml.safe_dump(doc))


def _problem(report: dict, kind: str) -> dict:
    found = [p for p in report["problems"] if p["kind"] == kind]
    assert found, report["problems"]
    return found[0]


# --------------------------------------------------------------------------- data


def test_an_uncached_output_that_git_does_not_keep_is_refused(project):
    _set_out(project, f"{TRACKED_DATA_FILE}.dvc", cache=False)
    commit_all(project, "cache: false")  # data/.gitignore still lists train.csv: git does not keep it
    refuse(project, expected=[(TRACKED_DATA_FILE, "git add data/train.csv")])
    code, report = check_json(project)
    assert code == 3
    problem = _problem(report, "data-uncached")
    assert problem["path"] == TRACKED_DATA_FILE
    assert "cache: false" in problem["message"] and "dvc commit data/train.csv.dvc" in problem["fix"]


def test_an_uncached_output_that_git_keeps_is_pinned_recorded_and_rerun(project):
    _set_out(project, f"{TRACKED_DATA_FILE}.dvc", cache=False)
    (project / "data" / ".gitignore").write_text("/images\n")
    git(project, "add", TRACKED_DATA_FILE)
    commit_all(project, "keep train.csv in git")
    _, run = run_ok(project)
    data = {d["path"]: d for d in record_of(embedded_uri(project), run.info.run_id)["data"]}
    assert "in git" in data[TRACKED_DATA_FILE]["source"], data
    assert run.data.tags["reprotrain.pinned"] == "true"
    res = rerun(project, run.info.run_id, "--verify")
    assert res.code == 0, res.describe()
    assert git_status(project) == ""
    # and changed afterwards, the clean tree says so (git pins it)
    (project / TRACKED_DATA_FILE).write_text("a,b\n9,9\n")
    refuse(project, expected=[(TRACKED_DATA_FILE, "git commit")])


def test_an_uncached_pipeline_output_is_recorded_when_git_keeps_it_and_never_refused(project):
    (project / "prep.py").write_text("open('metrics_prep.json', 'w').write('{\"rows\": 3}')\n")
    dvc(project, "stage", "add", "-q", "-n", "prep", "-d", "prep.py", "-O", "metrics_prep.json", "python prep.py")
    dvc(project, "repro", "-q")
    commit_all(project, "a stage whose output git keeps")
    code, report = check_json(project)
    assert code == 0, report["problems"]
    assert any(d["path"] == "metrics_prep.json" for d in report["data"]), report["data"]
    git(project, "rm", "-q", "--cached", "metrics_prep.json")
    (project / ".gitignore").write_text("__pycache__/\n*.pyc\n/metrics_prep.json\n")
    commit_all(project, "no longer in git")
    code, report = check_json(project)  # a stage's product, made again by the pipeline: not refused
    assert code == 0, report["problems"]
    assert not any(d["path"] == "metrics_prep.json" for d in report["data"]), report["data"]


def test_a_dvc_output_outside_the_repository_is_refused_without_a_traceback(project, tmp_path):
    outside = tmp_path / "outside.csv"
    shutil.copy(project / TRACKED_DATA_FILE, outside)
    _set_out(project, f"{TRACKED_DATA_FILE}.dvc", path=str(outside))
    commit_all(project, "external output")
    res = refuse(project, expected=[(str(outside), "move it into the repository")])
    assert "Traceback" not in res.err and "AssertionError" not in res.err, res.describe()
    code, report = check_json(project)
    assert code == 3 and _problem(report, "data-outside-repo")
    res = run_cli("run", "--allow-unpinned", cwd=project)
    assert res.code == 0, res.describe()


# --------------------------------------------------------------------------- configs


def test_a_config_dir_outside_the_repository_is_not_pinned(project, tmp_path):
    elsewhere = tmp_path / "elsewhere-conf"
    shutil.copytree(project / "conf", elsewhere)
    text = (
        (project / "pyproject.toml")
        .read_text()
        .replace("[tool.reprotrain]", f'[tool.reprotrain]\nconfig_dir = "{elsewhere}"')
    )
    (project / "pyproject.toml").write_text(text)
    commit_all(project, "configs elsewhere")
    refuse(project, expected=[(str(elsewhere), "move the configs into the repository")])
    res = run_cli("run", "--allow-unpinned", cwd=project)
    assert res.code == 0, res.describe()
    record = record_of(embedded_uri(project), _last(project))
    assert record["pinned"] is False
    assert any(p["kind"] == "config-outside-repo" for p in record["problems"]), record["problems"]


def test_config_dirs_named_on_the_command_line_must_be_in_the_repository(project, tmp_path):
    extra = tmp_path / "extra-conf"
    (extra / "experiment").mkdir(parents=True)
    (extra / "experiment" / "secret_sauce.yaml").write_text("# @package _global_\nlr: 0.5\n")
    refuse(project, "-cd", str(extra), expected=[(str(extra), "--config-dir")])
    refuse(project, f"hydra.searchpath=[file://{extra}]", expected=[(str(extra), "hydra.searchpath")])
    # inside the repository, committed: pinned
    shutil.copytree(extra, project / "more-conf")
    commit_all(project, "more configs")
    res = run_cli("run", "-cd", "more-conf", "+experiment=secret_sauce", cwd=project)
    assert res.code == 0, res.describe()


def test_a_searchpath_in_the_committed_config_pointing_outside_is_not_pinned(project, tmp_path):
    extra = tmp_path / "shared-conf"
    extra.mkdir()
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text() + f"hydra:\n  searchpath:\n    - file://{extra}\n")
    commit_all(project, "shared configs")
    refuse(project, expected=[(str(extra), "hydra.searchpath in config.yaml")])


def test_a_config_file_that_git_ignores_is_not_pinned(project):
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "mine.yaml").write_text("lr: 0.9\n")
    (project / ".gitignore").write_text("__pycache__/\n*.pyc\nconf/local/\n")
    commit_all(project, "ignore local configs")
    res = refuse(project, expected=[("conf/local/mine.yaml", "git add -f conf/local/mine.yaml")])
    assert "ignores" in res.err


def test_a_bad_config_dir_on_the_command_line_is_one_line(project):
    res = run_cli("run", "-cd", "no/such/dir", cwd=project)
    assert res.code in (2, 3), res.describe()
    assert "Traceback" not in res.err, res.describe()


def _last(root: Path) -> str:
    return _only(root)


def _only(root: Path) -> str:
    from helpers import all_runs

    (run,) = all_runs(embedded_uri(root))
    return str(run.info.run_id)
