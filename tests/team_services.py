"""Real services and project helpers for the sweep, launcher and team-setup tests.

Two parts:

* the lean sweep project: conftest's template project plus ``strain.py``, a training script that
  does not import mlflow (so a job costs little) and whose metrics are pure functions of the
  config, and two callable entrypoints that keep module-level state (to catch state leaking
  between jobs in a reused launcher worker);
* the team stack, started once per test session on 127.0.0.1 only: PostgreSQL 15 (initdb +
  pg_ctl, as the ``postgres`` user), an S3-compatible object store (``moto_server``) with a bucket,
  and ``mlflow server`` on PostgreSQL with its artifacts proxied into the bucket. Under
  pytest-xdist the workers share one stack (a lock file and a user count in the session's shared
  temporary directory): the first worker that needs it starts it, the last one done stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import MLFLOW_SERVER, VENV_BIN, all_runs, client_for, commit_all, pid_alive, write_pyproject

# --------------------------------------------------------------------------- the sweep project

STRAIN_PY = '''\
"""Deterministic stand-in training for sweeps (no mlflow import: jobs stay cheap)."""
import json
import os
import sys
from pathlib import Path

import yaml

cfg = yaml.safe_load(Path(os.environ["REPROTRAIN_CONFIG"]).read_text()) or {}
out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
lr = float(cfg["model"]["lr"])
seed = int(cfg["seed"])
loss = round((lr - 0.3) ** 2 + seed / 1000, 6)
if cfg.get("noise"):
    loss += (int.from_bytes(os.urandom(4), "big") + 1) / 2**32
(out / "metrics.json").write_text(json.dumps({"loss": loss, "seed": seed, "lr": lr}))
(out / "model.txt").write_text(f"lr={lr} seed={seed}\\n")
(out / "job.json").write_text(
    json.dumps({"pid": os.getpid(), "run_id": os.environ.get("MLFLOW_RUN_ID"), "seed": seed, "lr": lr})
)
if cfg.get("dump_env"):  # a careless script that prints and saves its whole environment
    print("debug environment:", json.dumps(dict(os.environ)), flush=True)
    (out / "env-dump.json").write_text(json.dumps(dict(os.environ)))
    (out / "resolved-config.yaml").write_text(Path(os.environ["REPROTRAIN_CONFIG"]).read_text())
sys.exit(int(cfg.get("exit_code") or 0))
'''

# A callable entrypoint whose module keeps state, and which changes process-wide state (an
# environment variable, the working directory). Every job must see a fresh module, an environment
# without the previous job's variable, and the working directory Hydra gave it.
LEAKY_BODY = """\
import json
import os
from pathlib import Path

SEEN = []  # module-level state: a fresh module per job keeps this at one entry


def _project_root():
    here = Path(__file__).resolve().parent
    return here.parent if here.name == "scripts" else here


def train(cfg):
    import mlflow

    SEEN.append(int(cfg.seed))
    offered = os.environ.get("MLFLOW_RUN_ID")  # MLflow drops it once the code attached to the run
    leaked = os.environ.get("REPROTRAIN_TEST_LEAK")
    started_in = os.getcwd()
    os.environ["REPROTRAIN_TEST_LEAK"] = str(cfg.seed)
    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    os.chdir(out)  # process-wide too
    mlflow.log_metric("module_len", len(SEEN))
    facts = {
        "seen": list(SEEN),
        "leaked": leaked,
        "started_in": started_in,
        # judged here: reprotrain masks the project root in uploaded files when PWD is set to it
        "started_in_root": Path(started_in).resolve() == _project_root(),
        "pid": os.getpid(),
        "run_id": offered,
        "active_run_id": mlflow.active_run().info.run_id,
    }
    (out / "leak.json").write_text(json.dumps(facts))
    (out / "metrics.json").write_text(
        json.dumps({"env_leaked": 0 if leaked is None else 1, "pid": os.getpid()})
    )
"""

LEAKY_FILE = "scripts/leaky.py"
LEAKY_MODULE = "leaky_mod"


def setup_sweep_project(root: Path, **settings: Any) -> str:
    """Add strain.py, the leaky entrypoints and the config keys they read; commit; returns HEAD."""
    (root / "strain.py").write_text(STRAIN_PY)
    (root / LEAKY_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / LEAKY_FILE).write_text('"""Callable entrypoint (path form) with module state."""\n' + LEAKY_BODY)
    (root / f"{LEAKY_MODULE}.py").write_text(
        '"""Callable entrypoint (module form) with module state."""\n' + LEAKY_BODY
    )
    config = root / "conf" / "config.yaml"
    config.write_text(config.read_text() + "noise: false\ndump_env: false\n")
    settings.setdefault("entrypoint", "python strain.py")
    write_pyproject(root, **settings)
    return commit_all(root, "sweep test project")


def expected_loss(lr: float, seed: int) -> float:
    """What strain.py logs as `loss` (noise off)."""
    return round((lr - 0.3) ** 2 + seed / 1000, 6)


# --------------------------------------------------------------------------- runs of a sweep


def split_sweep(uri: str) -> tuple[Any, list[Any]]:
    """(the one sweep parent run, its child runs ordered by job number) among every run of ``uri``."""
    runs = all_runs(uri)
    parents = [r for r in runs if r.data.tags.get("reprotrain.sweep") == "true"]
    assert len(parents) == 1, f"expected one sweep parent, found {[r.info.run_id for r in parents]} in {uri}"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    others = [r.info.run_id for r in runs if r is not parent and r not in children]
    assert not others, f"runs that are neither the sweep nor its jobs: {others}"
    children.sort(key=lambda r: int(r.data.tags.get("reprotrain.job.num", "-1")))
    return parent, children


def runs_in(uri: str, experiment_name: str) -> list[Any]:
    from mlflow.entities import ViewType

    client = client_for(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"no experiment {experiment_name!r} in {uri}"
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cmd(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 180) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _start(cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> int:
    """Start a server in its own session (its process group ID is its PID); returns the PID."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def _stop_group(pid: int, grace: float = 20.0) -> None:
    """Stop the process group this module started (by its ID): SIGTERM, then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    try:  # whatever is left of the group (a leader that ignored SIGTERM, its uvicorn workers)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def _wait_http(url: str, timeout: float, pid: int, log: Path, expect: bytes | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"the server behind {url} exited:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read()
                if resp.status == 200 and (expect is None or expect in body):
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last}):\n{_tail(log)}")


# --------------------------------------------------------------------------- the team stack

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUCKET = "reprotrain-team"
REGION = "us-east-1"
# Distinctive values: the tests search every tag, param, artifact and bucket object for them.
AWS_KEY_ID = "AKIARPTRTEAMKEY7Q2Z"
AWS_SECRET = "rtTeamS3cret-6f1d9b2e-NOT-A-REAL-KEY"
PG_USER = "rt_admin"
PG_PASSWORD = "rtPgPassw0rd-3c8e71-NOT-REAL"
TRACKING_PASSWORD = "rtTrackingPassw0rd-9a4e-NOT-REAL"


@dataclass(frozen=True)
class TeamStack:
    pg_port: int
    s3_port: int
    mlflow_port: int
    pg_dir: str
    log_dir: str
    pids: dict[str, int]

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def backend_store_uri(self) -> str:
        return f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.pg_port}/mlflow"

    @property
    def secrets(self) -> dict[str, str]:
        """Values that must never be stored anywhere: the tests search run data and the bucket."""
        return {
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "PostgreSQL password": PG_PASSWORD,
            "MLFLOW_TRACKING_PASSWORD": TRACKING_PASSWORD,
        }

    def aws_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_DEFAULT_REGION": REGION}

    def client_env(self, experiment: str) -> dict[str, str]:
        """What a team member exports: the server's URL, and S3 credentials for DVC only (MLflow
        artifacts go through the server, which holds its own). The tracking password stands in for
        MLflow's auth variables (this server does not check it)."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": experiment,
            "MLFLOW_TRACKING_USERNAME": "rt-team-member",
            "MLFLOW_TRACKING_PASSWORD": TRACKING_PASSWORD,
            **self.aws_env(),
        }

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
            region_name=REGION,
        )

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Key -> size of every object under ``prefix`` in the bucket."""
        found: dict[str, int] = {}
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj["Size"]
        return found

    def object_bytes(self, key: str) -> bytes:
        return self.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _pg(args: list[str], cwd: Path, timeout: int = 120) -> str:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    return run_cmd(["runuser", "-u", "postgres", "--", *args], cwd=cwd, env=env, timeout=timeout)


def _start_postgres(pg_dir: Path, port: int) -> None:
    shutil.chown(pg_dir, "postgres", "postgres")
    pwfile = pg_dir / "pwfile"
    pwfile.write_text(PG_PASSWORD + "\n")
    shutil.chown(pwfile, "postgres", "postgres")
    pwfile.chmod(0o600)
    data = pg_dir / "data"
    _pg(
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}", "-A", "scram-sha-256",
         "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
        cwd=pg_dir,
    )  # fmt: skip
    pwfile.unlink()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
    _pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(pg_dir / "postgres.log"), "-w", "-t", "120",
         "-o", options, "start"], cwd=pg_dir)  # fmt: skip
    import psycopg

    conninfo = f"host=127.0.0.1 port={port} user={PG_USER} password={PG_PASSWORD} dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE DATABASE mlflow")


def _stop_postgres(pg_dir: Path) -> None:
    data = pg_dir / "data"
    if (data / "postmaster.pid").exists():
        try:
            _pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"], cwd=pg_dir)
        except AssertionError:
            pass
    shutil.rmtree(pg_dir, ignore_errors=True)


def _start_stack(log_dir: Path) -> TeamStack:
    log_dir.mkdir(parents=True, exist_ok=True)
    pg_dir = Path(tempfile.mkdtemp(prefix="reprotrain-pg-"))  # outside pytest's 0700 tree: postgres reads it
    pids: dict[str, int] = {}
    stack = TeamStack(free_port(), free_port(), free_port(), str(pg_dir), str(log_dir), pids)
    try:
        _start_postgres(pg_dir, stack.pg_port)

        base_env = dict(os.environ)
        pids["moto"] = _start(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(stack.s3_port)],
            log_dir / "moto.log",
            base_env | stack.aws_env(),
            log_dir,
        )
        _wait_http(stack.s3_endpoint + "/", 60, pids["moto"], log_dir / "moto.log")
        stack.s3().create_bucket(Bucket=BUCKET)

        server_env = (
            base_env
            | stack.aws_env()
            | {
                "MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runners: fewer processes
            }
        )
        pids["mlflow"] = _start(
            [str(MLFLOW_SERVER), "server",
             "--backend-store-uri", stack.backend_store_uri,
             "--artifacts-destination", f"s3://{BUCKET}/mlflow",
             "--host", "127.0.0.1", "--port", str(stack.mlflow_port), "--workers", "1"],
            log_dir / "mlflow.log",
            server_env,
            log_dir,
        )  # fmt: skip
        _wait_http(stack.tracking_uri + "/health", 240, pids["mlflow"], log_dir / "mlflow.log", b"OK")
    except BaseException:
        _stop_stack(stack)
        raise
    return stack


def _stop_stack(stack: TeamStack) -> None:
    for name in ("mlflow", "moto"):
        if name in stack.pids:
            _stop_group(stack.pids[name])
    _stop_postgres(Path(stack.pg_dir))


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def team(tmp_path_factory) -> Any:
    """The team stack, shared by every test (and every xdist worker) of the session."""
    from filelock import FileLock

    shared = _shared_dir(tmp_path_factory)
    state_file = shared / "team-stack.json"
    with FileLock(str(shared / "team-stack.lock")):
        state = json.loads(state_file.read_text()) if state_file.exists() else {"users": 0}
        if state["users"] > 0:
            stack = TeamStack(**state["stack"])
        else:
            stack = _start_stack(shared / f"team-stack-logs-{uuid.uuid4().hex[:8]}")
        state = {"users": state["users"] + 1, "stack": asdict(stack)}
        state_file.write_text(json.dumps(state))
    try:
        yield stack
    finally:
        with FileLock(str(shared / "team-stack.lock")):
            state = json.loads(state_file.read_text())
            state["users"] -= 1
            if state["users"] <= 0:
                _stop_stack(TeamStack(**state["stack"]))
                state = {"users": 0}
            state_file.write_text(json.dumps(state))
