"""Warm launches (reprotrain/adapters/warm.py): a `reprotrain run` forked from a process that has
reprotrain, Hydra and DVC imported, through the console script as a user runs it.

Each test has a runtime directory of its own (XDG_RUNTIME_DIR, short: socket paths are limited),
so the warm process it starts is its own; the code it runs writes its process ancestry (pid and
command line of every ancestor) into a file, which says whether a launch was forked by the warm
process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import (
    REPROTRAIN,
    all_runs,
    cli_env,
    commit_all,
    configure,
    embedded_uri,
    git_status,
    pid_alive,
    record_of,
    run_cli,
    start_cli,
    stop,
    wait_for,
    wait_for_file,
)
from test_pipeline import new_pipeline

ANCESTRY = """\
import json, os, sys


def ancestry():
    chain, pid = [], os.getpid()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as fh:
            parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            chain.append([pid, fh.read().replace(b"\\0", b" ").decode(errors="replace")])
        pid = parent
    return chain


def write(path):
    with open(path, "w") as fh:
        json.dump(ancestry(), fh)
"""

STAGE = """\
import json, os, sys, yaml
sys.path.insert(0, os.path.dirname(__file__))
from ancestry import write

if os.environ.get("WARM_ANCESTRY"):
    write(os.environ["WARM_ANCESTRY"])
params = yaml.safe_load(open("params.yaml"))
os.makedirs("out", exist_ok=True)
with open("out/metrics.json", "w") as fh:
    json.dump({"scaled": params["prepare"]["scale"] * 2}, fh)
"""

DVC_YAML = """\
stages:
  compute:
    cmd: python src/stage.py
    deps: [src/stage.py, data/raw.csv]
    params: [prepare.scale]
    metrics:
      - out/metrics.json:
          cache: false
"""

TRAIN = """\
import os, signal, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ancestry import write

write(os.environ["WARM_ANCESTRY"])
if os.path.exists(os.environ["WARM_ANCESTRY"] + ".sleep"):
    with open(os.environ["WARM_PIDFILE"], "w") as fh:
        fh.write(str(os.getpid()))
    for _ in range(600):  # until the test says "wake" (or a minute)
        if os.path.exists(os.environ["WARM_ANCESTRY"] + ".wake"):
            break
        time.sleep(0.1)
sys.exit(int(os.environ.get("WARM_EXIT", "0")))
"""

CALLABLE = """\
import os
from ancestry import write


def main(cfg):
    write(os.environ["WARM_ANCESTRY"])
"""


@pytest.fixture
def runtime():
    """A runtime directory of the test's own; its warm processes are stopped by PID at the end."""
    path = Path(tempfile.mkdtemp(prefix="rt-w-"))
    yield path
    for pidfile in path.glob("reprotrain-*/*.pid"):
        try:
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
    shutil.rmtree(path, ignore_errors=True)


def warm_env(runtime: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The same for every launch of a test (another environment is another warm process); the
    training sleeps, its pid in WARM_PIDFILE, once ``tmp_path/ancestry.json.sleep`` exists."""
    return {
        "XDG_RUNTIME_DIR": str(runtime),
        "WARM_ANCESTRY": str(tmp_path / "ancestry.json"),
        "WARM_PIDFILE": str(tmp_path / "train.pid"),
        **extra,
    }


def warm_pids(runtime: Path) -> list[int]:
    found = []
    for pidfile in runtime.glob("reprotrain-*/warm-*.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if pid_alive(pid):
            found.append(pid)
    return found


def warm_ancestor(tmp_path: Path) -> int | None:
    """The warm process the code's process descends from, if any: the eldest ancestor with its
    command line (the forked launch has it too)."""
    found = None
    for pid, cmdline in json.loads((tmp_path / "ancestry.json").read_text()):
        if "reprotrain.adapters.warm" in cmdline:
            found = int(pid)
    return found


def runs_in_order(project: Path) -> list:
    return sorted(all_runs(embedded_uri(project)), key=lambda r: r.info.start_time)


def until_warm(runtime: Path, project: Path, env: dict[str, str]) -> int:
    """The warm process the context's second launch starts (here `run --cfg job`: any `run` counts;
    the first launch of a context starts none)."""
    shown = run_cli("run", "--cfg", "job", cwd=project, env=env)
    assert shown.code == 0, shown.describe()
    assert wait_for(lambda: bool(warm_pids(runtime)), 60), "no warm process was started"
    (pid,) = warm_pids(runtime)
    assert wait_for(lambda: any(runtime.glob("reprotrain-*/warm-*.sock")), 30)
    return pid


def pipeline_project(tmp_path: Path) -> Path:
    files = {"src/stage.py": STAGE, "src/ancestry.py": ANCESTRY, "dvc.yaml": DVC_YAML}
    return new_pipeline(tmp_path / "pipe", files, {"prepare": {"scale": 1}}, "dvc repro")


def script_project(project: Path, entrypoint: str = "python warm_train.py") -> Path:
    (project / "ancestry.py").write_text(ANCESTRY)
    (project / "warm_train.py").write_text(TRAIN)
    (project / "warm_callable.py").write_text(CALLABLE)
    configure(project, entrypoint=entrypoint)
    commit_all(project, "warm training code")
    return project


def test_a_pipeline_launch_is_forked_warm_and_records_what_a_cold_one_does(tmp_path, runtime):
    project = pipeline_project(tmp_path)
    env = warm_env(runtime, tmp_path)
    cold = run_cli("run", "prepare.scale=2", cwd=project, env=env)
    assert cold.code == 0, cold.describe()
    assert warm_ancestor(tmp_path) is None, "the first launch runs as usual"
    assert not warm_pids(runtime), "a context's first launch starts no warm process"
    warm_pid = until_warm(runtime, project, env)

    warm = run_cli("run", "prepare.scale=3", cwd=project, env=env)
    assert warm.code == 0, warm.describe()
    assert "FINISHED" in warm.err, "the launch's output reaches the client's stderr"
    assert warm_ancestor(tmp_path) == warm_pid, "the stage ran under a launch forked by the warm process"
    chain = json.loads((tmp_path / "ancestry.json").read_text())
    assert not any("dvc_runner" in cmd for _, cmd in chain), "the pipeline runner was forked, not started anew"
    assert git_status(project) == "", "the working copy is untouched"

    uri = embedded_uri(project)
    first, second = runs_in_order(project)
    assert second.data.metrics["scaled"] == 6.0, "the warm launch's config reached the pipeline"
    assert first.data.metrics["scaled"] == 4.0
    cold_record, warm_record = record_of(uri, first.info.run_id), record_of(uri, second.info.run_id)
    assert sorted(cold_record) == sorted(warm_record)
    for key in ("git", "environment", "entrypoint"):
        if key in cold_record:
            assert cold_record[key] == warm_record[key], key
    assert second.data.tags["mlflow.source.name"] == first.data.tags["mlflow.source.name"]


def test_exit_codes_and_the_context_that_names_a_warm_process(project, tmp_path, runtime):
    script_project(project)
    env = warm_env(runtime, tmp_path, WARM_EXIT="3")
    cold = run_cli("run", cwd=project, env=env)
    warm_pid = until_warm(runtime, project, env)
    warm = run_cli("run", cwd=project, env=env)
    assert warm_ancestor(tmp_path) == warm_pid
    assert (warm.code, cold.code) == (3, 3), warm.describe()
    assert "FAILED" in warm.err and "exit 3" in warm.err, warm.err[-2000:]

    other = run_cli("run", cwd=project, env={**env, "ANOTHER_VARIABLE": "1"})
    assert other.code == 3, other.describe()
    assert warm_ancestor(tmp_path) is None, "another environment is another context: never the old warm process"

    off = run_cli("run", cwd=project, env={**env, "REPROTRAIN_WARM": "0"})
    assert off.code == 3
    assert warm_ancestor(tmp_path) is None


def test_a_callable_entrypoint_is_never_run_warm(project, tmp_path, runtime):
    script_project(project, entrypoint="warm_callable:main")
    env = warm_env(runtime, tmp_path)
    for _ in range(3):
        res = run_cli("run", cwd=project, env=env)
        assert res.code == 0, res.describe()
        assert warm_ancestor(tmp_path) is None, "a callable runs in a fresh interpreter of its own"
    assert not list(runtime.glob("reprotrain-*/warm-*")), "and its launches start no warm process"


def signal_warm_launch(project: Path, tmp_path: Path, runtime: Path, sig: int, wait: float) -> tuple[int, int]:
    """A warm launch whose training sleeps; ``sig`` to its client once the training runs; waits
    until the training is gone. Returns (the client's exit code, the warm process's PID)."""
    script_project(project)
    env = warm_env(runtime, tmp_path)
    assert run_cli("run", cwd=project, env=env).code == 0
    warm_pid = until_warm(runtime, project, env)
    pidfile, log = tmp_path / "train.pid", tmp_path / "cli.log"
    (tmp_path / "ancestry.json.sleep").touch()
    proc = start_cli(project, "run", log=log, env=env)
    child = None
    try:
        child = int(wait_for_file(pidfile, proc, log))
        assert warm_ancestor(tmp_path) == warm_pid
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=90)
        assert wait_for(lambda: not pid_alive(child), wait), "the training outlived the stopped launch"
    finally:
        stop(proc)
        if child is not None and pid_alive(child):
            os.kill(child, signal.SIGKILL)
    return code, warm_pid


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_a_signal_to_the_client_stops_the_warm_launch(project, tmp_path, runtime, sig, code):
    assert signal_warm_launch(project, tmp_path, runtime, sig, 15)[0] == code
    output = (tmp_path / "cli.log").read_text()
    assert f"KILLED (stopped by {signal.Signals(sig).name}), exit {code}" in output, output[-3000:]
    assert runs_in_order(project)[-1].info.status == "KILLED"


def test_a_killed_client_stops_its_warm_launch(project, tmp_path, runtime):
    _, warm_pid = signal_warm_launch(project, tmp_path, runtime, signal.SIGKILL, 30)
    assert wait_for(lambda: runs_in_order(project)[-1].info.status == "KILLED", 30), runs_in_order(project)[-1]
    assert "stopped by SIGTERM" in runs_in_order(project)[-1].data.tags["reprotrain.status_reason"]
    assert pid_alive(warm_pid), "the warm process serves on"


def test_the_warm_process_goes_when_idle_or_when_its_socket_goes(project, tmp_path, runtime):
    script_project(project)
    env = warm_env(runtime, tmp_path, REPROTRAIN_WARM_IDLE="4")
    assert run_cli("run", cwd=project, env=env).code == 0
    assert run_cli("run", cwd=project, env=env).code == 0
    assert wait_for(lambda: any(runtime.glob("reprotrain-*/warm-*.log")), 30), "a warm process was started"
    # it may have gone idle already (it started with the launch): either way none is left soon
    assert wait_for(lambda: not warm_pids(runtime), 30), "an idle warm process exits"
    assert not list(runtime.glob("reprotrain-*/warm-*.sock")), "and removes its socket"

    env = warm_env(runtime, tmp_path)
    assert run_cli("run", cwd=project, env=env).code == 0
    warm_pid = until_warm(runtime, project, env)
    for sock in runtime.glob("reprotrain-*/warm-*.sock"):
        sock.unlink()
    assert wait_for(lambda: not pid_alive(warm_pid), 30), "a warm process whose socket is gone exits"


def test_a_params_file_is_untouched_by_a_warm_pipeline_launch(tmp_path, runtime):
    project = pipeline_project(tmp_path)
    env = warm_env(runtime, tmp_path)
    before = (project / "params.yaml").read_text()
    assert run_cli("run", cwd=project, env=env).code == 0
    until_warm(runtime, project, env)
    res = run_cli("run", "prepare.scale=5", cwd=project, env=env)
    assert res.code == 0, res.describe()
    assert (project / "params.yaml").read_text() == before
    assert yaml.safe_load(before) == {"prepare": {"scale": 1}}
    assert git_status(project) == ""


def test_a_stopped_warm_process_delays_one_launch_and_runs_nothing(project, tmp_path, runtime):
    script_project(project)
    env = warm_env(runtime, tmp_path)
    assert run_cli("run", cwd=project, env=env).code == 0
    warm_pid = until_warm(runtime, project, env)
    os.kill(warm_pid, signal.SIGSTOP)
    try:
        res = run_cli("run", cwd=project, env=env)
        assert res.code == 0, res.describe()
        assert warm_ancestor(tmp_path) is None, "run as usual"
        assert not list(runtime.glob("reprotrain-*/warm-*.sock")), "the stopped warm process's socket is removed"
        again = run_cli("run", cwd=project, env=env)
        assert again.code == 0, again.describe()
    finally:
        os.kill(warm_pid, signal.SIGCONT)
    assert wait_for(lambda: not pid_alive(warm_pid), 30), "resumed, it finds its socket gone and exits"
    assert len(runs_in_order(project)) == 3, "the request it got while stopped launched nothing"


def test_a_signal_the_client_ignores_the_warm_launch_ignores(project, tmp_path, runtime):
    script_project(project)
    env = warm_env(runtime, tmp_path)
    assert run_cli("run", cwd=project, env=env).code == 0
    warm_pid = until_warm(runtime, project, env)
    (tmp_path / "ancestry.json.sleep").touch()
    log = tmp_path / "cli.log"
    with log.open("w") as out:  # as `nohup reprotrain run` starts it
        proc = subprocess.Popen(
            [str(REPROTRAIN), "run"],
            cwd=project,
            env=cli_env(project, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
        )
    try:
        wait_for_file(tmp_path / "train.pid", proc, log)
        assert warm_ancestor(tmp_path) == warm_pid
        chain = [pid for pid, _ in json.loads((tmp_path / "ancestry.json").read_text())]
        forked = chain[chain.index(warm_pid) - 1]  # the launch itself, the warm process's child
        os.kill(proc.pid, signal.SIGHUP)
        os.kill(forked, signal.SIGHUP)  # as a launch under nohup, it ignores SIGHUP whoever sends it
        (tmp_path / "ancestry.json.wake").touch()
        assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
    finally:
        stop(proc)
    assert runs_in_order(project)[-1].info.status == "FINISHED"


def test_a_launch_outlives_its_warm_process(project, tmp_path, runtime):
    script_project(project)
    env = warm_env(runtime, tmp_path)
    assert run_cli("run", cwd=project, env=env).code == 0
    warm_pid = until_warm(runtime, project, env)
    (tmp_path / "ancestry.json.sleep").touch()
    log = tmp_path / "cli.log"
    proc = start_cli(project, "run", log=log, env=env)
    try:
        wait_for_file(tmp_path / "train.pid", proc, log)
        assert warm_ancestor(tmp_path) == warm_pid
        os.kill(warm_pid, signal.SIGKILL)
        (tmp_path / "ancestry.json.wake").touch()
        assert proc.wait(timeout=90) == 1, log.read_text()[-3000:]
    finally:
        stop(proc)
    assert "the warm process ended during this launch" in log.read_text()
    assert wait_for(lambda: runs_in_order(project)[-1].info.status == "FINISHED", 30)


PLUGIN = """\
import warnings

from hydra.core.config_store import ConfigStore
from rt_plugin_values import VALUE

warnings.warn("rt-test-plugin says hello")
ConfigStore.instance().store(group="extra", name="from_plugin", node={{"value": VALUE + {offset}}})
"""


def test_a_hydra_plugin_or_what_it_imports_edited_after_the_warm_process_started_is_the_edited_one(
    project, tmp_path, runtime
):
    """Hydra's plugins (modules of the `hydra_plugins` packages on sys.path, here through
    PYTHONPATH) and what they import are imported once by the warm process: an edit to either is
    seen by the next launch; what discovery printed (a plugin's warning) each launch shows."""
    script_project(project)
    plugins = tmp_path / "plugins"
    module = plugins / "hydra_plugins" / "rt_test_plugin" / "extra_config.py"
    module.parent.mkdir(parents=True)
    (module.parent / "__init__.py").write_text("")
    module.write_text(PLUGIN.format(offset=0))
    values = plugins / "rt_plugin_values.py"  # the user's own module, outside hydra_plugins
    values.write_text("VALUE = 1\n")
    env = warm_env(runtime, tmp_path, PYTHONPATH=str(plugins))

    def value() -> int:
        res = run_cli("run", "+extra=from_plugin", cwd=project, env=env)
        assert res.code == 0, res.describe()
        assert "rt-test-plugin says hello" in res.err, res.err[-2000:]
        rid = runs_in_order(project)[-1].info.run_id
        return int(record_of(embedded_uri(project), rid)["config"]["resolved"]["extra"]["value"])

    assert value() == 1
    warm_pid = until_warm(runtime, project, env)
    assert value() == 1
    assert warm_ancestor(tmp_path) == warm_pid, "the plugin's config came from the warm process"
    values.write_text("VALUE = 2\n")
    assert value() == 2, "the edited module a plugin imports, not the one the warm process imported"
    assert warm_ancestor(tmp_path) != warm_pid
    assert wait_for(lambda: not pid_alive(warm_pid), 30), "the stale warm process is retired"
    module.write_text(PLUGIN.format(offset=10))
    assert value() == 12, "the edited plugin, not the one a warm process imported"
    assert warm_ancestor(tmp_path) is None


def test_a_warm_launchs_client_imports_only_what_talking_to_the_warm_process_needs(tmp_path):
    """The client of a warm launch is the console script's process: what it imports is time
    every launch waits (the CLI, the API, pathlib and typing were ≈65 ms of it)."""
    code = (
        "import sys; before = set(sys.modules); import reprotrain.console; from reprotrain.adapters import warm; "
        "warm._Paths(warm._identity(list(sys.path))); print(' '.join(sorted(set(sys.modules) - before)))"
    )
    env = cli_env(tmp_path, {"XDG_RUNTIME_DIR": str(tmp_path)})
    python = str(REPROTRAIN.parent / "python")
    done = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    assert "reprotrain.adapters.warm" in imported
    heavy = {"reprotrain.cli", "reprotrain.api", "reprotrain.errors", "argparse", "pathlib", "typing", "subprocess"}
    assert not imported & heavy, sorted(imported & heavy)


def test_a_warm_launchs_buffered_output_reaches_the_client_before_it_exits(project, tmp_path, runtime):
    """A forked launch ends without the interpreter's teardown (warm._exit_at_once): what it
    printed to a pipe, still in its buffer, is flushed first."""
    script_project(project)
    env = warm_env(runtime, tmp_path)
    cold = run_cli("run", "--cfg", "job", cwd=project, env=env)
    assert cold.code == 0 and cold.out.strip(), cold.describe()
    warm_pid = until_warm(runtime, project, env)
    shown = run_cli("run", "--cfg", "job", cwd=project, env=env)
    assert (shown.code, shown.out) == (0, cold.out), shown.describe()
    assert run_cli("run", cwd=project, env=env).code == 0
    assert warm_ancestor(tmp_path) == warm_pid, "this context's launches are the warm process's"
