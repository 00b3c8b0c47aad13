"""Bad input is refused with one clear line and the documented exit code, before any run exists;
unusual but valid input (detached HEAD, shallow clone, odd paths, huge configs) just works."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from fault_helpers import FTRAIN_PY, assert_one_line_error, only_run, setup_fault_project
from helpers import (
    all_runs,
    artifact_paths,
    artifact_text,
    commit_all,
    copy_project,
    dvc,
    dvc_out,
    embedded_uri,
    git,
    head_sha,
    record_of,
    run_cli,
    sh,
    write_pyproject,
)


def assert_nothing_ran(root, marker=None) -> None:
    """No run was created (so none is RUNNING or half-written) and the code never started."""
    runs = all_runs(embedded_uri(root))
    assert runs == [], [(r.info.run_id, r.info.status) for r in runs]
    assert not (root / ".reprotrain" / "runs").exists() or not any((root / ".reprotrain" / "runs").iterdir())
    if marker is not None:
        assert not marker.exists(), "the training code started"


# --------------------------------------------------------------------------- refused: exit 2


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("a==b=", "a==b="),
        ("key=[unclosed", "key=[unclosed"),
        ("+experiment=nosuch", "nosuch"),  # a config group option that does not exist
    ],
)
def test_bad_override_or_group_option(project, tmp_path, override, named):
    setup_fault_project(project)
    marker = tmp_path / "started"
    res = run_cli("run", override, cwd=project, env={"FT_MARKER": str(marker)})
    assert res.code == 2, res.describe()
    assert_nothing_ran(project, marker)
    assert "Traceback" not in res.err, res.describe()
    assert_one_line_error(res, named)


def test_missing_config_dir(project, tmp_path):
    setup_fault_project(project, config_dir="nowhere")
    marker = tmp_path / "started"
    res = run_cli("run", cwd=project, env={"FT_MARKER": str(marker)})
    assert res.code == 2, res.describe()
    assert_one_line_error(res, str(project / "nowhere"), "config_dir")
    assert_nothing_ran(project, marker)


def test_missing_entrypoint_setting(project):
    (project / "ftrain.py").write_text(FTRAIN_PY)
    write_pyproject(project, config_dir="conf")  # no entrypoint
    commit_all(project, "no entrypoint")
    res = run_cli("run", cwd=project)
    assert res.code == 2, res.describe()
    assert_one_line_error(res, "no entrypoint", "entrypoint =")
    assert_nothing_ran(project)


@pytest.mark.parametrize(
    ("entrypoint", "named"),
    [("nosuchmodule:main", "nosuchmodule"), ("train.py:nosuchfunction", "nosuchfunction")],
)
def test_wrong_entrypoint(project, entrypoint, named):
    setup_fault_project(project, entrypoint=entrypoint)
    res = run_cli("run", cwd=project)
    assert res.code == 2, res.describe()
    assert_one_line_error(res, named, "[tool.reprotrain]")
    assert_nothing_ran(project)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("bogus = 1", "bogus"),  # unknown key
        ('timeout = "soon"', "timeout"),  # wrong type
        ('metrics_files = "extra.json"', "metrics_files"),  # a string where a list is expected
        ("require_pushed = 1", "require_pushed"),  # a number where a boolean is expected
        ("timeout = nan", "timeout"),  # would never fire
        ("timeout = inf", "timeout"),
        ('metrics_files = ["../../etc/metrics.json"]', "outside the job's output directory"),
        ('metrics_files = ["/etc/metrics.json"]', "outside the job's output directory"),
        ('verify_files = ["../model.pt"]', "outside the job's output directory"),
    ],
)
def test_bad_settings(project, line, named):
    (project / "ftrain.py").write_text(FTRAIN_PY)
    write_pyproject(project, entrypoint="python ftrain.py")
    with (project / "pyproject.toml").open("a") as fh:
        fh.write(line + "\n")
    commit_all(project, "bad setting")
    res = run_cli("run", cwd=project)
    assert res.code == 2, res.describe()
    assert_one_line_error(res, named, "pyproject.toml")
    assert not (project / ".reprotrain").exists(), "nothing is written for bad settings"


PYPROJECT_DAMAGE = {
    "tool is a scalar": (b'tool = 5\n[project]\nname = "demo"\n', ("[tool]", "must be a table", "not 5")),
    "tool.reprotrain is a scalar": (
        b'[project]\nname = "demo"\n[tool]\nreprotrain = "python ftrain.py"\n',
        ("[tool.reprotrain]", "must be a table", "'python ftrain.py'"),
    ),
    "project is a scalar": (
        b'project = "demo"\n[tool.reprotrain]\nentrypoint = "python ftrain.py"\n',
        ("[project]", "must be a table", "'demo'"),
    ),
    "not UTF-8": (
        b'[tool.reprotrain]\nentrypoint = "python ftrain.py"\n# caf\xe9 \xff\n',
        ("is not valid UTF-8", "line 3"),
    ),
    "not TOML": (b'[tool.reprotrain\nentrypoint = "python ftrain.py"\n', ("is not valid TOML", "line 1")),
}


@pytest.mark.parametrize("damage", list(PYPROJECT_DAMAGE))
def test_damaged_pyproject_is_a_usage_error(project, tmp_path, damage):
    content, needles = PYPROJECT_DAMAGE[damage]
    (project / "ftrain.py").write_text(FTRAIN_PY)
    (project / "pyproject.toml").write_bytes(content)
    commit_all(project, "damaged pyproject.toml")
    marker = tmp_path / "started"
    for args in (("run",), ("runs",), ("check",)):
        res = run_cli(*args, cwd=project, env={"FT_MARKER": str(marker)})
        assert res.code == 2, res.describe()
        line = assert_one_line_error(res, str(project / "pyproject.toml"), *needles)
        assert "(fix: " in line, line
    assert not marker.exists(), "the training code started"
    assert not (project / ".reprotrain").exists(), "nothing is written for a damaged pyproject.toml"


# --------------------------------------------------------------------------- refused: exit 3


def test_directory_outside_git(project, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copytree(project / "conf", plain / "conf")
    (plain / "ftrain.py").write_text(FTRAIN_PY)
    write_pyproject(plain, entrypoint="python ftrain.py")
    marker = tmp_path / "started"
    res = run_cli("run", cwd=plain, env={"FT_MARKER": str(marker)})
    assert res.code == 3, res.describe()
    assert "not inside a git repository" in res.err and "git init" in res.err, res.describe()
    assert "Traceback" not in res.err
    assert not marker.exists()
    assert not (plain / ".reprotrain" / "mlflow.db").exists(), "refused before any store is opened"


# --------------------------------------------------------------------------- works


def test_detached_head(project):
    sha = setup_fault_project(project)
    git(project, "checkout", "-q", "--detach")
    res = run_cli("run", cwd=project)
    assert res.code == 0, res.describe()
    run = only_run(project)
    assert run.info.status == "FINISHED"
    assert run.data.tags["reprotrain.git.branch"] == ""
    assert run.data.tags["reprotrain.git.commit"] == sha
    assert run.data.tags["reprotrain.pinned"] == "true"
    assert record_of(embedded_uri(project), run.info.run_id)["git"]["branch"] == ""


def test_shallow_clone(project, tmp_path):
    setup_fault_project(project)
    store = tmp_path / "dvc-store"
    store.mkdir()
    dvc(project, "remote", "add", "-d", "store", str(store))
    commit_all(project, "dvc remote")
    dvc(project, "push", "-q")
    (project / "NOTES.md").write_text("one more commit, so that depth 1 cuts history\n")
    commit_all(project, "notes")

    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", "--depth", "1", f"file://{project}", str(clone))
    assert (clone / ".git" / "shallow").exists()
    assert git(clone, "rev-list", "--count", "HEAD").strip() == "1"
    dvc(clone, "pull", "-q")
    res = run_cli("run", cwd=clone)
    assert res.code == 0, res.describe()
    run = only_run(clone)
    assert run.info.status == "FINISHED"
    assert run.data.tags["reprotrain.git.commit"] == head_sha(clone) == head_sha(project)
    assert run.data.tags["reprotrain.pinned"] == "true"
    data = {d["path"]: d["hash"] for d in record_of(embedded_uri(clone), run.info.run_id)["data"]}
    assert data["data/train.csv"] == dvc_out(project, "data/train.csv.dvc")["md5"]


def test_path_with_spaces_and_non_ascii(template_project, tmp_path):
    root = copy_project(template_project, tmp_path / "my proj é" / "démo dir")
    setup_fault_project(root)
    res = run_cli("run", cwd=root)
    assert res.code == 0, res.describe()
    uri = embedded_uri(root)
    run = only_run(root)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"acc": 0.9, "loss": 0.25}
    assert {"model.txt", "reprotrain/console.log", "reprotrain/record.json"} <= artifact_paths(uri, run_id)

    shown = run_cli("show", "last", "--json", cwd=root)
    assert shown.code == 0, shown.describe()
    assert json.loads(shown.out)["run_id"] == run_id
    text = run_cli("show", run_id, cwd=root)
    assert text.code == 0 and run_id in text.out, text.describe()

    again = run_cli("rerun", "last", cwd=root, timeout=240)
    assert again.code == 0, again.describe()
    reruns = [r for r in all_runs(uri) if r.data.tags.get("reprotrain.rerun_of") == run_id]
    assert len(reruns) == 1 and reruns[0].info.status == "FINISHED"
    assert git(root, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- huge configs

N_KEYS = 10_000
LONG_VALUE = "".join(f"{i:06d}" for i in range(17_100))  # 102,600 characters, every clip visible


@pytest.fixture(scope="module")
def huge_run(template_project, tmp_path_factory):
    root = copy_project(template_project, tmp_path_factory.mktemp("huge") / "demo")
    (root / "ftrain.py").write_text(FTRAIN_PY)
    config = root / "conf" / "config.yaml"
    wide = "".join(f"  k{i:05d}: {i}\n" for i in range(N_KEYS))
    config.write_text(config.read_text() + "wide:\n" + wide + f'long_text: "{LONG_VALUE}"\n')
    write_pyproject(root, entrypoint="python ftrain.py")
    commit_all(root, "huge config")
    res = run_cli("run", cwd=root, timeout=600)
    return root, res


def test_config_with_ten_thousand_keys(huge_run):
    root, res = huge_run
    assert res.code == 0, res.describe()
    uri = embedded_uri(root)
    run = only_run(root)
    assert run.info.status == "FINISHED"
    wide = {k: v for k, v in run.data.params.items() if k.startswith("wide.")}
    assert len(wide) == N_KEYS, f"{len(wide)} of {N_KEYS} params logged"
    assert wide["wide.k09999"] == "9999"
    record = record_of(uri, run.info.run_id)
    assert len(record["config"]["resolved"]["wide"]) == N_KEYS
    assert record["config"]["resolved"]["wide"]["k00000"] == 0


def test_hundred_kilobyte_value(huge_run):
    root, res = huge_run
    assert res.code == 0, res.describe()
    uri = embedded_uri(root)
    run = only_run(root)
    assert run.data.params["long_text"] == LONG_VALUE[:6000], "the param is clipped to MLflow's 6000 characters"
    config = yaml.safe_load(artifact_text(uri, run.info.run_id, "reprotrain/config.yaml"))
    assert config["long_text"] == LONG_VALUE, "the full value is in reprotrain/config.yaml"
    assert record_of(uri, run.info.run_id)["config"]["resolved"]["long_text"] == LONG_VALUE


@pytest.mark.parametrize("value", ["nan", "inf", "-3"])
def test_bad_timeout_on_the_command_line(project, value):
    (project / "ftrain.py").write_text(FTRAIN_PY)
    write_pyproject(project, entrypoint="python ftrain.py")
    commit_all(project, "settings")
    res = run_cli("run", "--timeout", value, cwd=project)
    assert res.code == 2, res.describe()
    assert_one_line_error(res, "--timeout", value)
    assert not (project / ".reprotrain").exists()


def test_show_json_is_json_when_a_metric_is_nan(project):
    """`show --json` and `runs --json` printed a bare NaN, which JSON readers refuse."""
    import json

    (project / "nan.py").write_text(
        "import json, os\nfrom pathlib import Path\n"
        "Path(os.environ['REPROTRAIN_OUTPUT_DIR'], 'metrics.json').write_text('{\"loss\": NaN, \"big\": Infinity}')\n"
    )
    write_pyproject(project, entrypoint="python nan.py")
    commit_all(project, "nan metrics")
    assert run_cli("run", cwd=project).code == 0
    shown = run_cli("show", "last", "--json", cwd=project)
    assert shown.code == 0, shown.describe()
    metrics = json.loads(shown.out, parse_constant=lambda c: pytest.fail(f"bare {c} in --json output"))["metrics"]
    assert metrics["loss"] == "NaN" and metrics["big"] > 1e308  # MLflow keeps infinity as the largest float
    rows = run_cli("runs", "--json", cwd=project)
    listed = json.loads(rows.out, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert listed["runs"][0]["metrics"]["loss"] == "NaN"
