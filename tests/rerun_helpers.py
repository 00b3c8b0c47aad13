"""Helpers for the end-to-end tests of `reprotrain rerun` (test_rerun, test_rerun_clone, test_verify).

The project is conftest's template project plus a small training script, ``rtrain.py``, whose
metrics and output file are pure functions of the code version, the DVC data and the config (so a
rerun of the same code, data and config gives the same numbers, and any other gives different
ones), unless the config asks for noise. It does not import mlflow, to keep each run short.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from helpers import (
    Result,
    all_runs,
    client_for,
    commit_all,
    dvc,
    git,
    interrupt_when_started,
    local_path,
    run_cli,
    write_pyproject,
)

CODE_VERSION_LINE = "CODE_VERSION = 1\n"

RTRAIN_PY = (
    '"""Deterministic stand-in training: every number depends on code, data and config only."""\n'
    "import hashlib\n"
    "import json\n"
    "import os\n"
    "import time\n"
    "from pathlib import Path\n"
    "\n"
    "import yaml\n"
    "\n"
    + CODE_VERSION_LINE
    + """

def main():
    cfg = yaml.safe_load(Path(os.environ["REPROTRAIN_CONFIG"]).read_text()) or {}
    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    if os.environ.get("RT_PIDFILE"):  # test hooks outside the config: do not change the recorded run
        Path(os.environ["RT_PIDFILE"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("RT_SLEEP") or 0))

    csv = Path("data/train.csv").read_bytes()
    rows = [line.split(",") for line in csv.decode().splitlines()[1:] if line.strip()]
    total = sum(float(x) for row in rows for x in row)
    images = sorted(p for p in Path("data/images").iterdir() if p.is_file())
    image_bytes = sum(p.stat().st_size for p in images)
    digest = hashlib.sha256(csv + b"".join(p.read_bytes() for p in images)).hexdigest()
    lr = float(cfg["model"]["lr"])
    layers = int(cfg["model"]["layers"])
    noise = str(cfg.get("noise", "none"))

    score = lr * total + layers + CODE_VERSION
    if noise == "metric":
        score += int.from_bytes(os.urandom(6), "big")
    elif noise == "tiny":  # a relative difference below 1e-7, never zero
        score *= 1 + (int.from_bytes(os.urandom(4), "big") + 1) / 2**32 * 1e-7
    metrics = {
        "rows": len(rows),
        "total": total,
        "image_bytes": image_bytes,
        "lr": lr,
        "layers": layers,
        "code_version": CODE_VERSION,
        "score": score,
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    model = f"code={CODE_VERSION} lr={lr} layers={layers} data={digest}\\n"
    if noise == "file":
        model += os.urandom(8).hex() + "\\n"
    (out / "model.txt").write_text(model)
    (out / "preds").mkdir(exist_ok=True)
    (out / "preds" / "val.csv").write_text("".join(f"{i},{lr * i}\\n" for i in range(3)))
    # an output that differs on every run but is not named in verify_files
    (out / "stamp.txt").write_text(f"{time.time()} {os.urandom(8).hex()}\\n")


if __name__ == "__main__":
    main()
"""
)

VERIFY_FILES = ["model.txt", "preds/*.csv"]


def setup_rerun_project(root: Path, **settings: Any) -> str:
    """Add rtrain.py and a `noise` config key, point the settings at it, commit; returns HEAD."""
    (root / "rtrain.py").write_text(RTRAIN_PY)
    config = root / "conf" / "config.yaml"
    config.write_text(config.read_text() + "noise: none\n")
    settings.setdefault("entrypoint", "python rtrain.py")
    settings.setdefault("verify_files", VERIFY_FILES)
    write_pyproject(root, **settings)
    return commit_all(root, "rerun test project")


def rerun(root: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 180) -> Result:
    return run_cli("rerun", *args, cwd=root, env=env, timeout=timeout)


def launch(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`reprotrain run ARGS` must succeed and create exactly one new run; returns its ID."""
    uri = store_of(root, env)
    before = run_ids(uri)
    res = run_cli("run", *args, cwd=root, env=env)
    assert res.code == 0, res.describe()
    new = run_ids(uri) - before
    assert len(new) == 1, f"expected one new run, got {new}\n{res.describe()}"
    return new.pop()


def store_of(root: Path, env: dict[str, str] | None = None) -> str:
    if env and env.get("MLFLOW_TRACKING_URI"):
        return env["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(root) / '.reprotrain' / 'mlflow.db'}"


def run_ids(uri: str) -> set[str]:
    return {r.info.run_id for r in all_runs(uri)}


def get_run(uri: str, run_id: str):
    return client_for(uri).get_run(run_id)


def runs_tagged(uri: str, key: str, value: str) -> list:
    return [r for r in all_runs(uri) if r.data.tags.get(key) == value]


def the_rerun_of(uri: str, original: str, res: Result | None = None):
    """The single run tagged ``reprotrain.rerun_of=original``."""
    found = runs_tagged(uri, "reprotrain.rerun_of", original)
    assert len(found) == 1, f"expected one rerun of {original}, found {[r.info.run_id for r in found]}\n" + (
        res.describe() if res else ""
    )
    return get_run(uri, found[0].info.run_id)


def running_runs(uri: str) -> list[str]:
    return [r.info.run_id for r in all_runs(uri) if r.info.status in ("RUNNING", "SCHEDULED")]


def stored_artifact(uri: str, run_id: str, path: str) -> Path:
    """The file of one artifact in a local artifact store (to read or edit it in place)."""
    base = local_path(get_run(uri, run_id).info.artifact_uri)
    file = base / path
    assert file.is_file(), f"{file} missing"
    return file


def current_packages() -> dict[str, str]:
    """Installed distributions as reprotrain records them (lower-cased name -> version)."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = dist.version
    return found


def set_recorded_environment(uri: str, run_id: str, **changes: str | None) -> dict[str, str]:
    """Edit the run's stored record.json so that its packages are exactly the ones installed now
    (other sessions may install packages into the shared venv between a run and its rerun), then
    apply ``changes`` (name -> recorded version, None to drop). Returns the current versions."""
    import json

    stored = stored_artifact(uri, run_id, "reprotrain/record.json")
    record = json.loads(stored.read_text())
    now = current_packages()
    packages = dict(now)
    for name, version in changes.items():
        if version is None:
            packages.pop(name, None)
        else:
            packages[name] = version
    record["environment"]["packages"] = packages
    stored.write_text(json.dumps(record, indent=2))
    return now


def error_lines(err: str) -> list[str]:
    """stderr without the environment-drift block (legitimately printed when another session
    installed packages into the shared venv since the original run)."""
    lines, skipping = [], False
    for line in err.strip().splitlines():
        if line.startswith("reprotrain: the environment differs"):
            skipping = True
            continue
        if skipping and line.startswith("  "):
            continue
        skipping = False
        lines.append(line)
    return lines


IDENTITY_TAGS = (
    "reprotrain.git.commit",
    "reprotrain.data.digest",
    "reprotrain.config.digest",
    "mlflow.source.git.commit",
)


def assert_same_identity(original, new) -> None:
    for key in IDENTITY_TAGS:
        assert new.data.tags.get(key) == original.data.tags.get(key), (
            f"{key}: rerun {new.data.tags.get(key)!r} != original {original.data.tags.get(key)!r}"
        )
        assert original.data.tags.get(key), f"the original run has no {key} tag"


# --------------------------------------------------------------------------- worktrees


def worktrees(root: Path) -> list[str]:
    """Paths of every worktree git has registered for the repository at ``root``."""
    out = git(root, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def worktree_dirs(root: Path) -> list[str]:
    base = root / ".reprotrain" / "worktrees"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def assert_no_worktree_left(root: Path) -> None:
    registered = worktrees(root)
    assert [Path(p).resolve() for p in registered] == [root.resolve()], f"worktrees left: {registered}"
    assert worktree_dirs(root) == [], f"directories left under .reprotrain/worktrees: {worktree_dirs(root)}"


def repo_state(root: Path) -> dict[str, str]:
    """What a rerun must leave alone in the user's repository."""
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "symbolic-ref", "-q", "HEAD"),
        "refs": git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "diff": git(root, "diff", "HEAD", "--binary"),
    }


# --------------------------------------------------------------------------- DVC


def dvc_remote(root: Path, store: Path) -> None:
    """Configure ``store`` (a local directory) as the default DVC remote, commit it, push the data."""
    store.mkdir(parents=True, exist_ok=True)
    dvc(root, "remote", "add", "-d", "-f", "store", str(store))
    commit_all(root, "dvc remote")
    dvc(root, "push", "-q")


def object_path(base: Path, md5: str) -> Path:
    """Where a DVC 3 cache or local remote keeps the object with this hash."""
    return base / "files" / "md5" / md5[:2] / md5[2:]


# --------------------------------------------------------------------------- signals


def interrupt_rerun(root: Path, run_id: str, tmp: Path, sig: int = signal.SIGINT) -> tuple[int, int, str]:
    """Start `reprotrain rerun RUN_ID`, wait until its training sleeps, send ``sig`` to reprotrain.

    Returns (exit code, the training's pid, the console output).
    """
    pidfile = tmp / "rerun-train.pid"
    return interrupt_when_started(
        root,
        "rerun",
        run_id,
        pidfile=pidfile,
        log=tmp / "rerun.log",
        sig=sig,
        env={"RT_SLEEP": "60", "RT_PIDFILE": str(pidfile)},
    )
