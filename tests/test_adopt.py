"""Existing projects' config idioms and layouts, as people write them, through the console script.

Each test imitates a pattern seen on a real public project (a Lightning + Hydra template, Hydra
1.0-era apps, a script whose module sets `PROJECT_ROOT` when imported, training that rewrites a
tracked file, a venv that is not activated): the idiom works, or one line says what to change
before anything is written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import (
    REPROTRAIN,
    all_runs,
    artifact_json,
    artifact_paths,
    commit_all,
    copy_project,
    dvc,
    embedded_uri,
    git,
    git_status,
    record_of,
    run_cli,
    write_pyproject,
)

TRAIN_PY = '''\
"""A user's training script: reads the config reprotrain resolved, writes into its output dir."""
import json
import os
from pathlib import Path

import yaml

cfg = yaml.safe_load(Path(os.environ["REPROTRAIN_CONFIG"]).read_text())
out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
lr = cfg["model"]["lr"]
(out / f"lr-{lr}.txt").write_text(str(lr))
(out / "metrics.json").write_text(json.dumps({"score": lr * 2}))
if cfg.get("rewrite"):  # a logger that rewrites a tracked file of the repository
    Path("notes.csv").write_text("step,loss\\n1,0.5\\n")
'''

APP_PY = '''\
"""A module that sets PROJECT_ROOT when imported (as rootutils.setup_root does), then trains."""
import json
import os
from pathlib import Path

os.environ["PROJECT_ROOT"] = str(Path(__file__).resolve().parents[1])


def main(cfg):
    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    assert cfg.paths.root == os.environ["PROJECT_ROOT"], (cfg.paths.root, os.environ["PROJECT_ROOT"])
    (out / "metrics.json").write_text(json.dumps({"score": float(cfg.model.lr)}))
'''

CONFIG = {
    "defaults": ["_self_", {"experiment": None}],
    "model": {"lr": 0.1},
    "rewrite": False,
}


def _write_config(root: Path, **extra: object) -> None:
    (root / "conf" / "config.yaml").write_text(yaml.safe_dump({**CONFIG, **extra}, sort_keys=False))


def _build(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    dvc(root, "init", "-q")
    (root / "conf" / "experiment").mkdir(parents=True)
    _write_config(root)
    (root / "conf" / "experiment" / "x.yaml").write_text("# @package _global_\nmodel:\n  lr: 0.5\n")
    (root / "train.py").write_text(TRAIN_PY)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(APP_PY)
    (root / "notes.csv").write_text("step,loss\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    (root / "data").mkdir()
    (root / "data" / "d.csv").write_text("a,b\n1,2\n")
    dvc(root, "add", "-q", "data/d.csv")
    write_pyproject(root, name="adopt", entrypoint="python train.py")
    commit_all(root, "an existing project")
    return root


@pytest.fixture(scope="module")
def adopt_template(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("adopt") / "adopt")


@pytest.fixture
def adopt(adopt_template: Path, tmp_path: Path) -> Path:
    return copy_project(adopt_template, tmp_path / "adopt")


def _run(root: Path, *args: str, env: dict[str, str] | None = None):
    res = run_cli("run", *args, cwd=root, env=env)
    assert res.code == 0, res.describe()
    assert git_status(root) == "", f"the run dirtied the tree:\n{git_status(root)}"
    runs = sorted(all_runs(embedded_uri(root)), key=lambda r: r.info.start_time)
    return res, runs[-1]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("reprotrain: error")]


def test_output_dirs_inside_the_repository(adopt: Path) -> None:
    """`hydra.run.dir: outputs/${now:...}` (Hydra's docs) and a literal `outputs/latest`: each run
    works, leaves the tree clean (so the next one is not refused), and uploads only its own files."""
    _write_config(adopt, hydra={"run": {"dir": "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"}})
    commit_all(adopt, "dated output dirs")
    res, first = _run(adopt)
    assert "UnsupportedInterpolationType" not in res.err and "Traceback" not in res.err, res.describe()
    assert list((adopt / "outputs").glob("*/*/lr-0.1.txt")), "Hydra's own output dir, as configured"
    assert first.info.status == "FINISHED" and first.data.metrics["score"] == 0.2  # the tree is clean: the
    # next run is not refused (the literal dir below runs twice in a row)

    _write_config(adopt, hydra={"run": {"dir": "outputs/latest"}})
    commit_all(adopt, "one literal output dir")
    _run(adopt, "model.lr=0.3")
    res, reused = _run(adopt, "model.lr=0.4")
    uri = embedded_uri(adopt)
    files = artifact_paths(uri, reused.info.run_id)
    assert "lr-0.4.txt" in files and "lr-0.3.txt" not in files, sorted(files)
    assert ".gitignore" not in files, "reprotrain's .gitignore is not an output"
    outputs = artifact_json(uri, reused.info.run_id, "reprotrain/outputs.json")
    assert "lr-0.3.txt" not in outputs and "lr-0.4.txt" in outputs, outputs
    assert "earlier run left there (lr-0.3.txt" in res.err, res.err
    assert reused.data.metrics["score"] == 0.8

    _write_config(adopt, hydra={"sweep": {"dir": "multirun/${now:%Y-%m-%d_%H-%M-%S-%f}", "subdir": "${hydra.job.num}"}})
    commit_all(adopt, "sweeps inside the repository")
    swept = run_cli("run", "-m", "model.lr=0.5,0.6", cwd=adopt)
    assert swept.code == 0, swept.describe()
    assert git_status(adopt) == "", f"the sweep dirtied the tree:\n{git_status(adopt)}"
    assert len(list((adopt / "multirun").glob("*/[01]/lr-0.*.txt"))) == 2


def test_project_root_as_output_dir(adopt: Path) -> None:
    """`hydra.run.dir: .` (Hydra 1.0-era apps): nothing of the project is uploaded, Hydra's files do
    not land in the tree, the code runs in the root, and the run reruns."""
    _write_config(adopt, hydra={"run": {"dir": "."}, "output_subdir": ".hydra"})
    commit_all(adopt, "run in the project root")
    res, run = _run(adopt)
    assert "hydra.run.dir is the project root" in res.err, res.err
    files = artifact_paths(embedded_uri(adopt), run.info.run_id)
    assert "lr-0.1.txt" in files and "metrics.json" in files, sorted(files)
    leaked = [f for f in files if f.split("/")[0] in {".git", ".dvc", ".reprotrain", "train.py", "conf", "data"}]
    assert not leaked, leaked
    assert run.info.status == "FINISHED" and run.data.tags["reprotrain.exit_code"] == "0"
    again = run_cli("rerun", run.info.run_id, "--verify", cwd=adopt)
    assert again.code == 0 and "REPRODUCED" in again.out, again.describe()
    assert git_status(adopt) == ""


def test_group_already_in_the_defaults_list(adopt: Path) -> None:
    """`experiment: null` in the defaults list: `+experiment=x` gets one line saying to type
    `experiment=x`, before anything is written; `experiment=x` composes."""
    res = run_cli("run", "+experiment=x", cwd=adopt)
    assert res.code == 2, res.describe()
    lines = _error_lines(res.err)
    assert len(lines) == 1 and "experiment=x" in lines[0] and "experiment: null" in lines[0], res.err
    assert "Traceback" not in res.err and "Multiple values" not in res.err
    assert not (adopt / ".reprotrain").exists(), "nothing written"
    shown = run_cli("run", "experiment=x", "--cfg", "job", cwd=adopt)
    assert shown.code == 0 and "lr: 0.5" in shown.out, shown.describe()
    # another slot of the group (`experiment@extra: null`) leaves `+experiment=x` to Hydra
    _write_config(adopt, defaults=["_self_", {"experiment@extra": None}])
    commit_all(adopt, "a packaged slot")
    added = run_cli("run", "+experiment=x", "--cfg", "job", cwd=adopt)
    assert added.code == 0 and "lr: 0.5" in added.out, added.describe()


def test_hydra_1_0_package_group_configs(adopt: Path) -> None:
    """`# @package _group_` configs without a version_base setting compose as Hydra 1.0 meant."""
    (adopt / "conf" / "model").mkdir()
    (adopt / "conf" / "model" / "small.yaml").write_text("# @package _group_\nlr: 0.3\nwidth: 8\n")
    (adopt / "conf" / "config.yaml").write_text("defaults:\n  - model: small\nrewrite: false\n")
    commit_all(adopt, "Hydra 1.0 style group")
    shown = run_cli("run", "--cfg", "job", cwd=adopt)
    assert shown.code == 0, shown.describe()
    composed = yaml.safe_load(shown.out)
    assert composed["model"] == {"lr": 0.3, "width": 8} and "_group_" not in composed, shown.out
    _, run = _run(adopt)
    assert run.data.params["model.width"] == "8" and "_group_.lr" not in run.data.params


def test_module_sets_project_root_and_runtime_cwd(adopt: Path) -> None:
    """A module that sets PROJECT_ROOT when imported, a config reading it and `${hydra:runtime.cwd}`,
    an override naming a path under the project: it runs, records the paths as they were (not
    masked), and reruns in another worktree (those values are never compared)."""
    config = {
        **CONFIG,
        "paths": {"root": "${oc.env:PROJECT_ROOT}", "work": "${hydra:runtime.cwd}", "db": "${paths.root}/x.db"},
        # Hydra resolves its own keys before any job: the module is imported before Hydra composes
        "hydra": {"run": {"dir": "${oc.env:PROJECT_ROOT}/outs/${now:%H-%M-%S-%f}"}},
    }
    (adopt / "conf" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    write_pyproject(adopt, name="adopt", entrypoint="src/app.py:main")
    commit_all(adopt, "root-relative paths")
    db = f"+logger.uri=sqlite:///{adopt}/.reprotrain/mlflow.db"
    _, run = _run(adopt, db)
    record = record_of(embedded_uri(adopt), run.info.run_id)
    resolved = record["config"]["resolved"]
    assert resolved["paths"]["root"] == str(adopt) and resolved["paths"]["db"] == f"{adopt}/x.db", resolved
    assert db in record["config"]["overrides"], record["config"]["overrides"]
    assert {"paths.root", "paths.work", "paths.db"} <= set(record["config"]["volatile"])
    assert "logger.uri" not in record["config"]["volatile"], "a literal value is compared as it is"
    assert list((adopt / "outs").glob("*/metrics.json")), "the output dir the config names"
    again = run_cli("rerun", run.info.run_id, "--verify", cwd=adopt)
    assert again.code == 0 and "REPRODUCED" in again.out, again.describe()


def test_masked_value_inside_an_override_is_never_replayed(adopt: Path) -> None:
    secret = "Pw-in-url-8812"
    _, run = _run(adopt, f"+remote=https://user:{secret}@example.invalid/x")
    overrides = record_of(embedded_uri(adopt), run.info.run_id)["config"]["overrides"]
    assert overrides == ["+remote=https://user:****@example.invalid/x"], overrides
    before = len(all_runs(embedded_uri(adopt)))
    again = run_cli("rerun", run.info.run_id, cwd=adopt)
    assert again.code == 1, again.describe()
    lines = _error_lines(again.err)
    assert len(lines) == 1 and "+remote" in lines[0] and "never stored" in lines[0], again.err
    assert len(all_runs(embedded_uri(adopt))) == before


def test_training_that_rewrites_a_tracked_file_is_named(adopt: Path) -> None:
    res = run_cli("run", "rewrite=true", cwd=adopt)
    assert res.code == 0, res.describe()
    warning = [line for line in res.err.splitlines() if "repository changed while the code ran" in line]
    assert len(warning) == 1 and "notes.csv" in warning[0], res.err
    assert "M notes.csv" in git_status(adopt)


def test_unactivated_venv_runs_the_command_in_its_own_python(adopt: Path) -> None:
    """`/venv/bin/reprotrain run` without activating the venv: `python train.py` is the venv's
    Python (the system has no `python`, or one without the packages), and the record says so."""
    env = {"PATH": os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if Path(p).is_dir())}
    assert shutil.which("reprotrain", path=env["PATH"]) is None
    res = run_cli("run", cwd=adopt, env=env)
    assert res.code == 0, res.describe()
    assert REPROTRAIN.exists()
    run = all_runs(embedded_uri(adopt))[0]
    assert run.data.metrics["score"] == 0.2
    environment = record_of(embedded_uri(adopt), run.info.run_id)["environment"]
    assert Path(environment["executable"]).parent == REPROTRAIN.parent, environment


def test_gitignore_that_hides_dvc_files_from_dvc(adopt: Path) -> None:
    """`.gitignore` with `/data/*` and `!/data/*.dvc` (git keeps the .dvc files, DVC skips data/):
    `check` names the .dvc file and the line to change; with it changed, the data is pinned."""
    (adopt / ".gitignore").write_text("__pycache__/\n/data/*\n!/data/*.dvc\n")
    commit_all(adopt, "ignore the data dir")
    res = run_cli("check", cwd=adopt)
    assert res.code == 3, res.describe()
    assert "data/d.csv.dvc" in res.err and "`/data/*` as `/data/?*`" in res.err, res.err
    assert "no DVC-tracked data" not in res.err, "the real reason is named instead"
    (adopt / ".gitignore").write_text("__pycache__/\n/data/?*\n!/data/*.dvc\n")
    commit_all(adopt, "the fix check printed")
    fixed = run_cli("check", cwd=adopt)
    assert fixed.code == 0, fixed.describe()


def test_frozen_import_whose_source_is_gone(adopt: Path, tmp_path: Path) -> None:
    """A `dvc import` whose source repository cannot be reached: DVC's own reason is in the line."""
    source = tmp_path / "source"
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    dvc(source, "init", "-q")
    dvc(source, "remote", "add", "-d", "r", str(tmp_path / "source-remote"))
    (source / "table.csv").write_text("x,y\n1,2\n")
    dvc(source, "add", "-q", "table.csv")
    commit_all(source, "source data")
    dvc(source, "push", "-q")
    dvc(adopt, "import", "-q", str(source), "table.csv", "-o", "data/table.csv")
    commit_all(adopt, "import a table")
    source.rename(tmp_path / "source-moved")
    res = run_cli("check", cwd=adopt)
    assert res.code == 1, res.describe()
    lines = _error_lines(res.err)
    assert len(lines) == 1 and "Failed to clone repo" in lines[0] and str(source) in lines[0], res.err
    assert "dvc import" in lines[0] and "Traceback" not in res.err


def test_record_describes_the_python_the_command_ran(adopt: Path, tmp_path: Path) -> None:
    """A command that runs another environment's Python (a second venv, `conda run`): the record's
    environment is that one's, not reprotrain's."""
    import subprocess
    import sys

    other = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    (adopt / "plain.py").write_text(
        "import json, os, sys\nfrom pathlib import Path\n"
        "Path(os.environ['REPROTRAIN_OUTPUT_DIR'], 'metrics.json').write_text(json.dumps({'score': 1.0}))\n"
    )
    write_pyproject(adopt, name="adopt", entrypoint="python plain.py")
    commit_all(adopt, "another environment's python")
    # that venv activated, reprotrain installed elsewhere (pipx, `uv tool`): the activated one runs
    activated = {"VIRTUAL_ENV": str(other), "PATH": f"{other}/bin{os.pathsep}{os.environ['PATH']}"}
    _, run = _run(adopt, env=activated)
    environment = record_of(embedded_uri(adopt), run.info.run_id)["environment"]
    assert environment["executable"] == f"{other}/bin/python", environment["executable"]
    assert "mlflow-skinny" not in environment["packages"], "reprotrain's packages are not the code's"
    assert run.data.metrics["score"] == 1.0
    again = run_cli("rerun", run.info.run_id, "--verify", "--strict-env", cwd=adopt, env=activated)
    assert again.code == 0 and "REPRODUCED" in again.out, again.describe()
    assert "environment differs" not in again.err, "compared with the environment the code ran in"


def test_command_whose_script_sets_the_variable_the_config_reads(adopt: Path) -> None:
    """The same config with a command entrypoint: the script would set PROJECT_ROOT only once it
    runs, after reprotrain resolved the config; one line says what to change, nothing is written."""
    config = {
        **CONFIG,
        "paths": {"root": "${oc.env:PROJECT_ROOT}"},
        "hydra": {"run": {"dir": "outputs/${now:%H-%M-%S-%f}"}},
    }
    (adopt / "conf" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    commit_all(adopt, "root from the environment")
    res = run_cli("run", cwd=adopt)
    assert res.code == 2, res.describe()
    assert git_status(adopt) == "", "Hydra's output dir of a refused job does not dirty the tree"
    lines = _error_lines(res.err)
    assert len(lines) == 1 and "PROJECT_ROOT" in lines[0] and "module:function" in lines[0], res.err
    assert all_runs(embedded_uri(adopt)) == [], "no run for a config that does not resolve"
