"""Helpers for reprotrain's end-to-end tests.

Everything here works on real things: a real git + DVC project built in a temporary directory,
the installed ``reprotrain`` console script run as a subprocess, and the real MLflow store it wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
from pathlib import Path
from typing import Any, NamedTuple

import pytest

VENV_BIN = Path(sys.executable).parent
# `mlflow server` needs the full mlflow package; scripts/test.sh keeps it in a venv of its own, so
# the test venv (and every reprotrain the tests start) has only mlflow-skinny, as users do
MLFLOW_SERVER = Path(os.environ.get("REPROTRAIN_TEST_MLFLOW_SERVER") or VENV_BIN / "mlflow")
REPROTRAIN = VENV_BIN / "reprotrain"
DVC = VENV_BIN / "dvc"
RUN_TIMEOUT = 120

STDOUT_MARKER = "TRAIN-STDOUT-MARKER-7f3a"
STDERR_MARKER = "TRAIN-STDERR-MARKER-9c1e"
CALLABLE_MARKER = "CALLABLE-STDOUT-MARKER-4b2d"
CHILD_LOGS = {"TRAIN_CHILD_LOGS": "1"}  # train.py then logs a metric and a param through MLflow itself

TRACKED_DATA_FILE = "data/train.csv"
TRACKED_DATA_DIR = "data/images"
IMAGE_FILES = {"img0.bin": b"\x00\x01\x02" * 10, "img1.bin": b"\x03\x04" * 20, "img2.bin": b"x" * 7}


# --------------------------------------------------------------------------- running commands


class Result(NamedTuple):
    code: int
    out: str
    err: str

    def describe(self) -> str:
        return f"exit={self.code}\n--- stdout ---\n{self.out[-4000:]}\n--- stderr ---\n{self.err[-4000:]}"


def cli_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The isolated environment as a user's shell passes it (a shell sets PWD to the directory)."""
    env = dict(os.environ)
    env["PWD"] = str(cwd)
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = RUN_TIMEOUT) -> Result:
    """Run the installed ``reprotrain`` console script; the environment is the isolated one."""
    if not REPROTRAIN.exists():
        pytest.fail(f"{REPROTRAIN} missing: run `{VENV_BIN / 'pip'} install -e /work/main`")
    proc = subprocess.run(
        [str(REPROTRAIN), *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_ok(root: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """``reprotrain run ARGS`` must succeed and leave exactly one run in the embedded store."""
    res = run_cli("run", *args, cwd=cwd or root, env=env)
    assert res.code == 0, res.describe()
    return res, single_run(embedded_uri(root))


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def git(root: Path, *args: str) -> str:
    return sh(root, "git", *args)


def dvc(root: Path, *args: str) -> str:
    return sh(root, str(DVC), *args)


def head_sha(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def git_status(root: Path) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all")


def commit_all(root: Path, message: str = "change") -> str:
    git(root, "add", "-A")
    if git_status(root):
        git(root, "commit", "-q", "-m", message)
    assert git_status(root) == "", git_status(root)
    return head_sha(root)


# --------------------------------------------------------------------------- the template project

CONFIG_YAML = """\
model:
  lr: 0.1
  layers: 2
seed: 0
data:
  path: data/train.csv
stamp: "${now:%Y%m%d-%H%M%S-%f}"
env_value: "${oc.env:REPROTRAIN_DEMO_ENV,unset}"
exit_code: 0
sleep: 0
pidfile: ""
end_run: false
"""

OTHER_YAML = """\
defaults:
  - _self_
  - experiment: null
model:
  lr: 0.2
  layers: 3
which: other
seed: 1
"""

FAST_YAML = """\
# @package _global_
model:
  lr: 0.5
"""

TRAIN_PY = f'''\
"""Stand-in for a user's unchanged training script (command entrypoint)."""
import json
import os
import sys
import time
from pathlib import Path

import yaml

ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
            "REPROTRAIN_CONFIG", "REPROTRAIN_OUTPUT_DIR")


def main():
    cfg_path = os.environ["REPROTRAIN_CONFIG"]
    text = Path(cfg_path).read_text()
    cfg = yaml.safe_load(text) or {{}}
    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    print("{STDOUT_MARKER}", flush=True)
    print("{STDERR_MARKER}", file=sys.stderr, flush=True)
    seen = {{
        "kind": "command",
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "env": {{k: os.environ.get(k) for k in ENV_KEYS}},
        "config_file_text": text,
        "stamp": cfg.get("stamp"),
        "file_stamp": cfg.get("stamp"),
        "env_value_is_real": cfg.get("env_value") == os.environ.get("REPROTRAIN_DEMO_ENV", "unset"),
    }}
    (out / "seen.json").write_text(json.dumps(seen))
    (out / "metrics.json").write_text(json.dumps({{"acc": 0.9, "loss": 0.25}}))
    (out / "extra_metrics.json").write_text(json.dumps({{"f1": 0.8}}))
    (out / "model").mkdir(exist_ok=True)
    (out / "model" / "weights.txt").write_text("w=1\\n")

    # training that logs to MLflow itself: with TRAIN_CHILD_LOGS=1 (and all of test_mlflow_code.py);
    # importing MLflow and opening the store costs a run about 3 s of CPU, which most tests need not pay
    if cfg.get("end_run"):
        import mlflow

        with mlflow.start_run():
            mlflow.log_metric("child_metric", 1.5)
    elif os.environ.get("TRAIN_CHILD_LOGS"):
        import mlflow

        mlflow.log_metric("child_metric", 1.5)
        mlflow.log_param("child_param", "from-child")

    if cfg.get("pidfile"):
        Path(cfg["pidfile"]).write_text(str(os.getpid()))
    time.sleep(float(cfg.get("sleep") or 0))
    sys.exit(int(cfg.get("exit_code") or 0))


if __name__ == "__main__":
    main()
'''

SEEN_CODE = f'''\
import json
import os
from pathlib import Path

ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
            "REPROTRAIN_CONFIG", "REPROTRAIN_OUTPUT_DIR")


def _seen(cfg, kind):
    """Record what a callable entrypoint was given, as the output file seen.json."""
    import mlflow
    import yaml
    from omegaconf import DictConfig

    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    cfg_file = os.environ.get("REPROTRAIN_CONFIG")
    env = {{k: os.environ.get(k) for k in ENV_KEYS}}  # MLflow drops MLFLOW_RUN_ID once it attached
    # as in a fresh process: MLFLOW_RUN_ID offers reprotrain's run, the first MLflow call takes it
    mlflow.log_metric("callable_metric", 2.5)
    active = mlflow.active_run()
    seen = {{
        "kind": kind,
        "cfg_type": type(cfg).__name__,
        "is_dictconfig": isinstance(cfg, DictConfig),
        "active_run_id": active.info.run_id if active else None,
        "env": env,
        "config_file_text": Path(cfg_file).read_text() if cfg_file else None,
        "stamp": cfg.get("stamp"),
        "file_stamp": yaml.safe_load(Path(cfg_file).read_text()).get("stamp") if cfg_file else None,
        "env_value_is_real": cfg.get("env_value") == os.environ.get("REPROTRAIN_DEMO_ENV", "unset"),
        "lr": cfg.model.lr,
        "cwd": os.getcwd(),
    }}
    (out / "seen.json").write_text(json.dumps(seen))
    (out / "metrics.json").write_text(json.dumps({{"acc": 0.75}}))
    print("{CALLABLE_MARKER}", flush=True)
    return seen
'''

DEMO_TRAIN_PY = (
    '"""Callable entrypoints (module:function form)."""\n'
    + SEEN_CODE
    + """

def main(cfg):
    _seen(cfg, "module")


def boom(cfg):
    _seen(cfg, "boom")
    raise RuntimeError("boom from training code")


def end_then_boom(cfg):
    import mlflow

    _seen(cfg, "end_then_boom")
    mlflow.end_run()
    raise RuntimeError("ended the run, then failed")


def exit_with(cfg):
    import sys

    _seen(cfg, "exit_with")
    sys.exit(int(cfg.exit_code))


def sleepy(cfg):
    import time

    _seen(cfg, "sleepy")
    Path(cfg.pidfile).write_text(str(os.getpid()))
    time.sleep(float(cfg.sleep))
"""
)

FILE_TRAIN_PY = (
    '"""Callable entrypoint (path/file.py:function form)."""\n'
    + SEEN_CODE
    + """

def train(cfg):
    _seen(cfg, "file")
"""
)

HYDRA_APP_PY = (
    '"""An existing @hydra.main training script, unchanged."""\n'
    + "import hydra\n"
    + SEEN_CODE
    + """

@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    _seen(cfg, "hydra_main")


if __name__ == "__main__":
    main()
"""
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_pyproject(root: Path, name: str | None = "demo", **settings: Any) -> None:
    """Rewrite the project's pyproject.toml with these ``[tool.reprotrain]`` settings."""
    lines = []
    if name is not None:
        lines += ["[project]", f"name = {toml_value(name)}", 'version = "0.1.0"', ""]
    lines.append("[tool.reprotrain]")
    lines += [f"{key} = {toml_value(value)}" for key, value in settings.items() if value is not None]
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")


def configure(root: Path, **settings: Any) -> str:
    """Set the reprotrain settings (entrypoint defaults to train.py) and commit; returns HEAD."""
    settings.setdefault("entrypoint", "python train.py")
    write_pyproject(root, **settings)
    return commit_all(root, "configure reprotrain")


def build_template(root: Path) -> Path:
    """A clean git + DVC project with Hydra configs and training code, everything committed."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    files = {
        "conf/config.yaml": CONFIG_YAML,
        "conf/other.yaml": OTHER_YAML,
        "conf/experiment/fast.yaml": FAST_YAML,
        "train.py": TRAIN_PY,
        "demo_train.py": DEMO_TRAIN_PY,
        "scripts/file_train.py": FILE_TRAIN_PY,
        "hydra_app.py": HYDRA_APP_PY,
        ".gitignore": "__pycache__/\n*.pyc\n",
        "data/train.csv": "a,b\n1,2\n3,4\n5,6\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    images = root / TRACKED_DATA_DIR
    images.mkdir(parents=True)
    for name, content in IMAGE_FILES.items():
        (images / name).write_bytes(content)
    write_pyproject(root, entrypoint="python train.py")
    dvc(root, "add", "-q", TRACKED_DATA_FILE, TRACKED_DATA_DIR)
    commit_all(root, "initial project")
    return root


def copy_project(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    assert git_status(dest) == ""
    return dest


def dvc_out(root: Path, dvc_file: str) -> dict[str, Any]:
    """The single ``outs`` entry of a ``.dvc`` file."""
    import yaml

    (out,) = yaml.safe_load((root / dvc_file).read_text())["outs"]
    return out


# --------------------------------------------------------------------------- the MLflow store


def embedded_uri(root: Path) -> str:
    return f"sqlite:///{Path(root) / '.reprotrain' / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def all_runs(uri: str) -> list:
    """Every run of every experiment (deleted ones too); [] when the store file does not exist."""
    db = sqlite_file(uri)
    if db is not None and not db.exists():
        return []
    from mlflow.entities import ViewType

    client = client_for(uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not ids:
        return []
    return client.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000)


def single_run(uri: str):
    runs = all_runs(uri)
    assert len(runs) == 1, f"expected exactly one run in {uri}, found {[r.info.run_id for r in runs]}"
    return client_for(uri).get_run(runs[0].info.run_id)


def artifact_paths(uri: str, run_id: str) -> set[str]:
    client = client_for(uri)
    found: set[str] = set()
    stack: list[str | None] = [None]
    while stack:
        for info in client.list_artifacts(run_id, stack.pop()):
            if info.is_dir:
                stack.append(info.path)
            else:
                found.add(info.path)
    return found


def artifact_text(uri: str, run_id: str, path: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        local = client_for(uri).download_artifacts(run_id, path, tmp)
        return Path(local).read_text()


def artifact_json(uri: str, run_id: str, path: str) -> Any:
    return json.loads(artifact_text(uri, run_id, path))


def record_of(uri: str, run_id: str) -> dict[str, Any]:
    return artifact_json(uri, run_id, "reprotrain/record.json")


def local_path(artifact_uri: str) -> Path:
    """The filesystem path of a local (``file:`` or plain path) artifact URI."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        return Path(urllib.parse.unquote(parsed.path)).resolve()
    raise AssertionError(f"artifact URI is not local: {artifact_uri}")


# --------------------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# --------------------------------------------------------------------------- background processes


def default_signals() -> None:
    # pytest-xdist workers may ignore SIGINT, and children inherit that; a user's shell does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_cli(root: Path, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``reprotrain ARGS`` in the background (its own session), stdout and stderr into ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [str(REPROTRAIN), *args],
            cwd=root,
            env=cli_env(root, env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_signals,
        )


def wait_for_file(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 150) -> str:
    """Wait until the code wrote ``path`` (or reprotrain ended); return its content."""
    wait_for(lambda: bool(path.exists() and path.read_text().strip()) or proc.poll() is not None, timeout)
    assert path.exists() and path.read_text().strip(), f"the training never started:\n{log.read_text()[-4000:]}"
    assert proc.poll() is None, f"reprotrain ended early:\n{log.read_text()[-4000:]}"
    return path.read_text().strip()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def interrupt_when_started(
    root: Path, *args: str, pidfile: Path, log: Path, sig: int, env: dict[str, str] | None = None
) -> tuple[int, int, str]:
    """Start ``reprotrain ARGS``, wait until the training wrote its pid to ``pidfile``, send
    ``sig`` to reprotrain. Returns (exit code, the training's pid, the console output)."""
    proc = start_cli(root, *args, log=log, env=env)
    try:
        pid = int(wait_for_file(pidfile, proc, log))
        os.kill(proc.pid, sig)
        return proc.wait(timeout=60), pid, log.read_text()
    finally:
        stop(proc)


def store_helpers(runtime: Path) -> dict[int, str]:
    """The store helpers running with their files under ``runtime`` (XDG_RUNTIME_DIR): pid -> store URI."""
    found = {}
    for pidfile in runtime.glob("reprotrain-*/store-*.pid"):
        try:
            pid_text, uri = pidfile.read_text().split("\n")[:2]
        except (OSError, ValueError):
            continue
        if pid_alive(int(pid_text)):
            found[int(pid_text)] = uri
    return found


def stop_store_helpers(runtime: Path) -> None:
    """The store helpers and warm processes (reprotrain/adapters/warm.py) under ``runtime``, by PID."""
    pids = list(store_helpers(runtime))
    for pidfile in runtime.glob("reprotrain-*/warm-*.pid"):
        try:
            pids.append(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
