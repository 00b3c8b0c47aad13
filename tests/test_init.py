"""The project's name, and so its MLflow experiment, does not depend on the directory a clone
lives in (issue 15, item 6): after [project].name comes the repository's name in the URL of remote
origin, and only then the directory's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import git

from reprotrain.settings import find_project


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


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
