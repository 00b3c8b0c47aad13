"""Helpers for the pin gate's end-to-end tests (test_gate, test_check, test_unpinned, test_require_pushed).

Everything works on real repositories: the project copy from conftest's ``project`` fixture, real
git submodules, real DVC pipelines, caches and local remotes, and the ``reprotrain`` CLI run as a
subprocess.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from helpers import (
    DVC,
    Result,
    all_runs,
    commit_all,
    dvc,
    dvc_out,
    embedded_uri,
    git,
    run_cli,
)

PREP_PY = """\
from pathlib import Path

Path("data").mkdir(exist_ok=True)
Path("data/prepared.csv").write_text("x,y\\n1,1\\n2,4\\n")
"""

# --------------------------------------------------------------------------- observing a repository


def is_git_worktree(root: Path) -> bool:
    proc = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def full_status(root: Path) -> str:
    """`git status` including ignored files, so that even an ignored new directory shows up."""
    out = git(root, "status", "--porcelain", "--untracked-files=all", "--ignored", "--ignore-submodules=none")
    # DVC's own scratch directory (.dvc/tmp, ignored by DVC's .gitignore) is DVC's, not reprotrain's
    return "\n".join(line for line in out.splitlines() if not line.startswith("!! .dvc/tmp/"))


def tree(root: Path) -> set[str]:
    """Every path under ``root`` except git's internals and DVC's scratch directory (.dvc/tmp)."""
    found = set()
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if ".git" in parts or parts[:2] == (".dvc", "tmp"):
            continue
        found.add("/".join(parts))
    return found


def run_ids(root: Path) -> set[str]:
    return {r.info.run_id for r in all_runs(embedded_uri(root))}


# --------------------------------------------------------------------------- problems in a report


def problem_blocks(text: str) -> list[str]:
    """Split a refusal / check report into one block per problem (a line starting with "- ",
    plus the indented lines that follow it, such as its fix)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            blocks.append([stripped[2:]])
        elif blocks and line.startswith((" ", "\t")) and stripped:
            blocks[-1].append(stripped)
        elif blocks and not line.startswith((" ", "\t")):
            blocks.append([])  # a top-level line ends the current block
    return ["\n".join(b) for b in blocks if b]


def assert_problems(text: str, expected: list[tuple[str, str]]) -> list[str]:
    """Each (path, fix) must be ONE problem: its first line names the path, its block the fix."""
    blocks = problem_blocks(text)
    for path, fix in expected:
        hits = [b for b in blocks if path in b.splitlines()[0] and fix in b]
        assert hits, f"no problem naming {path!r} with fix {fix!r} in the report:\n{text}"
    return blocks


def json_problem(report: dict[str, Any], path: str, fix: str, kind: str | None = None) -> dict[str, str]:
    hits = [
        p for p in report["problems"] if p["path"] == path and fix in p["fix"] and (kind is None or p["kind"] == kind)
    ]
    assert hits, f"no problem with path {path!r} and fix {fix!r} in {json.dumps(report['problems'], indent=1)}"
    return hits[0]


# --------------------------------------------------------------------------- running the gate


def refuse(root: Path, *args: str, expected: list[tuple[str, str]], cwd: Path | None = None) -> Result:
    """`reprotrain run ARGS` must refuse with exit 3, listing every expected problem on stderr,
    before anything is written: no new run, no new file or directory, `git status` unchanged."""
    in_git = is_git_worktree(root)
    status_before = full_status(root) if in_git else None
    tree_before = tree(root)
    runs_before = run_ids(root)
    res = run_cli("run", *args, cwd=cwd or root)
    assert res.code == 3, res.describe()
    assert_problems(res.err, expected)
    assert "refus" in res.err.lower(), res.describe()
    assert run_ids(root) == runs_before, "a refused run must not create an MLflow run"
    new_paths = tree(root) - tree_before
    assert not new_paths, f"a refused run wrote {sorted(new_paths)}"
    if in_git:
        assert full_status(root) == status_before, "reprotrain changed git status"
    return res


def check(root: Path, *flags: str, cwd: Path | None = None) -> Result:
    return run_cli("check", *flags, cwd=cwd or root)


def check_json(root: Path, *flags: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    res = run_cli("check", "--json", *flags, cwd=cwd or root)
    assert res.code in (0, 3), res.describe()
    try:
        report = json.loads(res.out)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"check --json printed no JSON ({exc}):\n{res.describe()}") from None
    assert report["pinned"] is (res.code == 0), res.describe()
    return res.code, report


# --------------------------------------------------------------------------- building repositories


def make_repo(path: Path, files: dict[str, str], message: str = "initial") -> Path:
    """A plain git repository with these files committed."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    commit_all(path, message)
    return path


def add_submodule(root: Path, source: Path, name: str = "sub") -> None:
    """A real git submodule of ``source`` (a local repository) at ``root/name``, committed."""
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), name)
    commit_all(root, "add submodule")


def add_pipeline(root: Path) -> None:
    """A dvc.yaml stage `prep` (prep.py -> data/prepared.csv), reproduced and committed."""
    (root / "prep.py").write_text(PREP_PY)
    dvc(root, "stage", "add", "-q", "-n", "prep", "-d", "prep.py", "-o", "data/prepared.csv", "python prep.py")
    dvc(root, "repro", "-q")
    commit_all(root, "add prep stage")
    assert (root / "dvc.lock").exists()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def object_path(store: Path, oid: str) -> Path:
    """Where a DVC 3 cache or local remote keeps an object (``files/md5/xx/rest``)."""
    return store / "files" / "md5" / oid[:2] / oid[2:]


def cache_dir(root: Path) -> Path:
    return root / ".dvc" / "cache"


def dvc_hash(root: Path, dvc_file: str) -> str:
    return dvc_out(root, dvc_file)["md5"]


def setup_remotes(root: Path, base: Path) -> tuple[Path, Path]:
    """A bare git remote `origin` and a default local DVC remote `store`, everything pushed.

    Returns (git remote dir, DVC remote dir)."""
    bare = base / "origin.git"
    git(base, "init", "-q", "--bare", "-b", "main", str(bare))
    store = base / "dvc-store"
    store.mkdir()
    dvc(root, "remote", "add", "-d", "store", str(store))
    commit_all(root, "add DVC remote")
    dvc(root, "push", "-q")
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "-u", "origin", "main")
    return bare, store


def dvc_cloud_status(root: Path) -> str:
    proc = subprocess.run([str(DVC), "status", "-c"], cwd=root, capture_output=True, text=True)
    return proc.stdout + proc.stderr
