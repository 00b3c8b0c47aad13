"""`reprotrain init` adopting existing projects (issue 15): it picks the training app, not the
evaluation script or a search variant; reads version_base from the decorator; names the
experiment after the project, not the directory a clone lives in; and prints a to-do list that
works when followed literally. Real projects in temporary directories, the installed console
script, real git, DVC and MLflow."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import cli_env, dedent, embedded_uri, git, git_status, run_cli

from reprotrain.settings import find_project

TRAIN_PY = '''\
"""Training: the mean of column b, scaled by lr."""
import csv
import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path


@hydra.main(version_base="1.2", config_path="../configs", config_name="train")
def train(cfg):
    with open(to_absolute_path(cfg.data.path), newline="") as fh:
        rows = list(csv.DictReader(fh))
    mean = sum(float(r["b"]) for r in rows) / len(rows)
    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "metrics.json").write_text(json.dumps({"rows": len(rows), "score": mean * cfg.lr}))


if __name__ == "__main__":
    train()
'''

EVAL_PY = """\
import hydra


@hydra.main(config_path="../configs", config_name="eval")
def evaluate(cfg):
    print("evaluating", cfg.checkpoint)
"""

OPTUNA_PY = """\
import hydra


@hydra.main(version_base=None, config_path="configs", config_name="train")
def main(cfg):
    print("one trial", cfg.lr)
"""

PROJECT = {
    "src/train.py": TRAIN_PY,
    "src/eval.py": EVAL_PY,
    "train_optuna.py": OPTUNA_PY,
    "configs/train.yaml": "defaults:\n  - _self_\ndata:\n  path: data/train.csv\nlr: 0.5\n",
    "configs/eval.yaml": "defaults:\n  - _self_\ncheckpoint: model.ckpt\n",
    "configs/hparams_search/optuna.yaml": "# @package _global_\nlr: 0.1\n",
    "data/train.csv": "a,b\n1,2\n3,4\n5,6\n",
    ".gitignore": "__pycache__/\n",
}


def hydra_app(function: str = "main", decorator_args: str = 'config_path="conf", config_name="config"') -> str:
    return f"import hydra\n\n\n@hydra.main({decorator_args})\ndef {function}(cfg):\n    print(cfg)\n"


def hydra_major_minor() -> str:
    from importlib.metadata import version

    return ".".join(version("hydra-core").split(".")[:2])


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def settings_of(root: Path) -> dict:
    from reprotrain.settings import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["reprotrain"]


def todo(out: str) -> list[str]:
    """The shell commands under `to do`, in order."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("to do"))
    steps = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        steps.append(line.strip())
    return steps


def assert_readable(out: str) -> None:
    """No line ends in a colon with nothing under it, and no step holds a placeholder."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith(":"):
            assert i + 1 < len(lines) and lines[i + 1].startswith("  "), f"dangling colon in line {i}:\n{out}"
    assert not [s for s in todo(out) if "<" in s or ">" in s], out


def step_index(steps: list[str], prefix: str) -> int:
    return next(i for i, s in enumerate(steps) if s.startswith(prefix))


def follow(root: Path, steps: list[str]) -> None:
    """Run each printed step, literally, with bash in the project directory."""
    for step in steps:
        proc = subprocess.run(
            ["bash", "-c", step], cwd=root, env=cli_env(root), capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        assert proc.returncode == 0, f"step {step!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The project as found: a training app, an evaluation app, an optuna variant, configs and
    data, neither git nor DVC yet, no pyproject.toml. Tests copy it."""
    return write(tmp_path_factory.mktemp("init") / "churn", PROJECT)


@pytest.fixture
def found(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "churn"))


# --------------------------------------------------------------------------- choosing the app


def test_init_picks_the_training_app_and_orders_the_steps(found: Path) -> None:
    write(found, {"pyproject.toml": '[project]\nname = "churn-model"\nversion = "0.1"\n'})
    res = run_cli("init", cwd=found)
    assert res.code == 0, res.describe()
    assert settings_of(found) == {
        "entrypoint": "src/train.py:train",
        "config_dir": "configs",
        "config_name": "train",
        "hydra_version_base": "1.2",
        "experiment_name": "churn-model",  # [project].name first
    }
    assert "src/eval.py:evaluate (an evaluation script)" in res.out, res.out
    assert "train_optuna.py:main (a hyperparameter-search variant)" in res.out, res.out
    assert_readable(res.out)

    steps = todo(res.out)
    assert steps[:3] == ["git init", "dvc init", "dvc add data"], res.out
    commit = step_index(steps, "git add -A && git commit")
    assert commit > step_index(steps, "dvc add data"), "the data is git-ignored before anything is added to git"
    assert [s for s in steps if "git add" in s] == [steps[commit]], "one commit, after dvc add"

    again = run_cli("init", cwd=found)
    assert again.code == 0 and "already configured" in again.out
    assert settings_of(found)["entrypoint"] == "src/train.py:train"


@pytest.mark.parametrize(
    ("files", "picked"),
    [
        pytest.param(  # names do not decide between the two; the pipeline runs one of them
            {"dvc.yaml": "stages:\n  fit:\n    cmd: python src/fit.py lr=0.1\n    deps: [src/fit.py, data]\n"},
            "src/fit.py:main",
            id="dvc.yaml",
        ),
        pytest.param(
            {"README.md": "# Churn\n\nTrain it:\n\n```bash\n$ python -m src.train seed=1\n```\n"},
            "src/train.py:main",
            id="README",
        ),
    ],
)
def test_the_app_the_project_runs_wins(tmp_path: Path, files: dict[str, str], picked: str) -> None:
    root = write(
        tmp_path / "proj",
        {
            "src/fit.py": hydra_app(decorator_args='config_path="../conf", config_name="config", version_base="1.3"'),
            "src/train.py": hydra_app(decorator_args='config_path="../conf", config_name="config", version_base="1.3"'),
            "src/evaluate_model.py": hydra_app("evaluate", 'config_path="../conf", config_name="config"'),
            "conf/config.yaml": "lr: 0.1\n",
            **files,
        },
    )
    res = run_cli("init", cwd=root)
    assert res.code == 0, res.describe()
    assert settings_of(root)["entrypoint"] == picked, res.out
    assert settings_of(root)["config_dir"] == "conf"
    assert_readable(res.out)


def test_ambiguous_apps_are_listed_and_none_is_picked(tmp_path: Path) -> None:
    root = write(
        tmp_path / "proj",
        {
            "models/train_cnn.py": hydra_app("main", 'config_path="../conf", config_name="config", version_base=None'),
            "models/train_rnn.py": hydra_app("main", 'config_path="../conf", config_name="config", version_base=None'),
            "eval.py": hydra_app("main", 'config_path="conf", config_name="config", version_base=None'),
            "conf/config.yaml": "lr: 0.1\n",
        },
    )
    res = run_cli("init", cwd=root)
    assert res.code == 0, res.describe()
    settings = settings_of(root)
    assert "entrypoint" not in settings
    # what both training candidates' decorators agree on is written all the same
    assert settings["config_dir"] == "conf" and settings["hydra_version_base"] == hydra_major_minor()
    assert settings["experiment_name"] == "proj"
    lines = res.out.splitlines()
    assert any(line.startswith("entrypoint not written: 3 candidate") for line in lines), res.out
    assert {"  models/train_cnn.py:main", "  models/train_rnn.py:main", "  eval.py:main (an evaluation script)"} <= set(
        lines
    )
    assert '  entrypoint = "models/train_cnn.py:main"' in lines, "the line to add"
    assert '# entrypoint = "models/train_cnn.py:main"' in (root / "pyproject.toml").read_text()
    assert_readable(res.out)


@pytest.mark.parametrize(
    ("decorator_args", "version_base"),
    [
        ('config_path="conf", config_name="config", version_base=None', "current"),  # Hydra's current defaults
        ('config_path="conf", config_name="config"', "1.1"),  # absent: Hydra 1.1 compatibility
        ('"conf", "config", "1.2"', "1.2"),  # positional
    ],
)
def test_hydra_version_base_is_read_from_the_decorator(tmp_path: Path, decorator_args: str, version_base: str) -> None:
    root = write(tmp_path / "proj", {"train.py": hydra_app("main", decorator_args), "conf/config.yaml": "a: 1\n"})
    res = run_cli("init", cwd=root)
    assert res.code == 0, res.describe()
    expected = hydra_major_minor() if version_base == "current" else version_base
    assert settings_of(root)["hydra_version_base"] == expected


@pytest.mark.parametrize("obvious", [True, False], ids=["one-training-script", "no-obvious-script"])
def test_an_argparse_project_gets_the_entrypoint_line_and_no_dangling_colon(tmp_path: Path, obvious: bool) -> None:
    script = dedent(
        """
        import argparse

        def main():
            parser = argparse.ArgumentParser()
            parser.add_argument("--lr", type=float, default=0.1)
            print(parser.parse_args())

        if __name__ == "__main__":
            main()
        """
    )
    names = ["train.py", "evaluate.py"] if obvious else ["run_a.py", "run_b.py"]
    root = write(tmp_path / "proj", {**dict.fromkeys(names, script), "utils.py": "X = 1\n"})
    res = run_cli("init", cwd=root)
    assert res.code == 0, res.describe()
    assert_readable(res.out)
    assert "<" not in res.out
    if obvious:
        assert settings_of(root)["entrypoint"] == "python train.py"
        assert '  entrypoint = "python train.py"' in res.out.splitlines()
        assert 'entrypoint = "python train.py --lr ${train.lr}"' in res.out, "how to pass its flags"
    else:
        assert "entrypoint" not in settings_of(root)
        assert "entrypoint not written: 2 candidate scripts" in res.out
        assert '  entrypoint = "python run_a.py"' in res.out.splitlines()
    assert "config_dir not written: no Hydra config directory found" in res.out
    assert "no data directory found" in res.out and "dvc add" not in " ".join(todo(res.out))


# --------------------------------------------------------------------------- data and the steps


def test_the_data_dir_the_config_reads_is_the_one_to_dvc_add(tmp_path: Path) -> None:
    root = write(
        tmp_path / "proj",
        {
            "train.py": hydra_app("main", 'config_path="conf", config_name="config", version_base="1.3"'),
            "conf/config.yaml": "data:\n  train: ${paths.root}/inputs/raw/train.csv\n  mode: train\n",
            "inputs/raw/train.csv": "a\n1\n",
            "inputs/prepare.py": "print('prepare')\n",  # code: inputs/ as a whole is not data
        },
    )
    res = run_cli("init", cwd=root)
    assert res.code == 0, res.describe()
    assert "dvc add inputs/raw" in todo(res.out), res.out
    assert "no data directory found" not in res.out


def test_data_committed_to_git_leaves_git_before_dvc_add(found: Path) -> None:
    git(found, "init", "-q")
    git(found, "add", "-A")
    git(found, "commit", "-q", "-m", "code and data, all in git")
    (found / "notes.txt").write_text("not for the commit\n")

    res = run_cli("init", cwd=found)
    assert res.code == 0, res.describe()
    steps = todo(res.out)
    assert steps[:3] == ["dvc init", "git rm -r -q --cached data", "dvc add data"], res.out
    assert "uncommitted changes before init (notes.txt)" in res.out, "git add -A would commit it too"
    (found / "notes.txt").unlink()
    follow(found, steps)  # ends with `reprotrain check`: pinned
    assert git_status(found) == ""
    assert git(found, "ls-files", "data") == "", "the data left git"
    assert (found / "data.dvc").is_file()


def test_experiment_name_falls_back_to_the_remote_then_the_directory(tmp_path: Path) -> None:
    root = write(tmp_path / "checkout-7", {"train.py": hydra_app(), "conf/config.yaml": "a: 1\n"})
    git(root, "init", "-q")
    git(root, "remote", "add", "origin", "https://ci:s3cret@git.example.com/team/churn.git")
    res = run_cli("init", cwd=root)
    assert res.code == 0, res.describe()
    assert settings_of(root)["experiment_name"] == "churn"
    assert "s3cret" not in res.out and "s3cret" not in (root / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    "url",
    ["git@github.com:team/churn.git", "https://ci:s3cret@github.com/team/churn.git", "ssh://git@host:22/team/churn/"],
)
def test_project_name_is_the_remote_repository_not_the_clone_directory(tmp_path: Path, url: str) -> None:
    root = write(tmp_path / "clone-somewhere", {"pyproject.toml": '[tool.reprotrain]\nconfig_dir = "conf"\n'})
    git(root, "init", "-q")
    assert find_project(root).name == "clone-somewhere", "no remote: the directory"
    git(root, "remote", "add", "origin", url)
    assert find_project(root).name == "churn"
    git(root, "commit", "-q", "--allow-empty", "-m", "first")
    git(root, "worktree", "add", "-q", str(tmp_path / "wt"))  # `.git` is a file there
    assert find_project(tmp_path / "wt").name == "churn"
    write(root, {"pyproject.toml": '[project]\nname = "declared"\n[tool.reprotrain]\n'})
    assert find_project(root).name == "declared", "[project].name first"


def test_a_local_remote_path_names_the_project(tmp_path: Path) -> None:
    origin = tmp_path / "repos" / "churn"
    git(tmp_path, "init", "-q", str(origin))
    git(origin, "commit", "-q", "--allow-empty", "-m", "first")
    git(tmp_path, "clone", "-q", str(origin), str(tmp_path / "elsewhere"))
    assert find_project(tmp_path / "elsewhere").name == "churn"


# --------------------------------------------------------------------------- end to end


def test_following_the_printed_steps_literally_gives_a_pinned_reproducible_run(found: Path, tmp_path: Path) -> None:
    res = run_cli("init", cwd=found)
    assert res.code == 0, res.describe()
    assert_readable(res.out)
    steps = todo(res.out)
    assert steps[0] == "git init", res.out
    follow(found, steps)
    assert git_status(found) == "", "the steps leave the tree clean"
    assert git(found, "ls-files", "data") == "", "no data in git"

    ran = run_cli("run", cwd=found)
    assert ran.code == 0, ran.describe()
    again = run_cli("rerun", "last", "--verify", cwd=found)
    assert again.code == 0, again.describe()
    assert again.out.strip().splitlines()[-1] == "REPRODUCED", again.describe()
    rows = json.loads(run_cli("runs", "--json", cwd=found).out)["runs"]
    assert rows and all(r["metrics"] == {"rows": 3.0, "score": 2.0} for r in rows), rows

    # a clone in a directory of another name, on the same store, finds the same runs
    clone = tmp_path / "someone-elses-checkout"
    git(tmp_path, "clone", "-q", str(found), str(clone))
    shared = {"MLFLOW_TRACKING_URI": embedded_uri(found)}
    listed = run_cli("runs", "--json", cwd=clone, env=shared)
    assert listed.code == 0, listed.describe()
    assert {r["run_id"] for r in json.loads(listed.out)["runs"]} == {r["run_id"] for r in rows}
