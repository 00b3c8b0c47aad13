#!/usr/bin/env python3
"""What reprotrain's runs look like in the MLflow UI, checked in a real headless browser.

Builds the tests' tiny git + DVC project in a temporary directory, records a run, a sweep and a
verified rerun of the run through the `reprotrain` console script, starts `mlflow server` on
127.0.0.1 for that store, opens it in Chromium (driven by playwright) and asserts what a user
must see: run names, the description (commit, data versions, the rerun command), the rerun's
link to its original (followed), the dataset panel (DVC source, remote, schema, profile), the
experiment in model-training mode, the sweep parent's params, datasets and best job.
Screenshots go to .ui-check/ (git-ignored). Every process it starts is stopped by its PID.

    .venv/bin/python scripts/ui_check.py [--out DIR] [--chromium PATH] [--mlflow PATH]

Needs: the test venv (`. scripts/_venv.sh test`), playwright (`.venv-uv/bin/uv pip install
--python .venv/bin/python playwright`; no browser download: it drives the system's Chromium,
`apt-get install -y chromium`), and the full mlflow (`REPROTRAIN_TEST_MLFLOW_SERVER`, else
.venv-server/bin/mlflow as scripts/test.sh makes it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WAIT_MS = 45000  # for a page to show what is looked for (the UI's first load compiles a lot)
VENV_BIN = Path(sys.executable).parent
MLFLOW_SERVER_VARIABLE = "REPROTRAIN_TEST_MLFLOW_SERVER"  # the full mlflow, as for the tests
UI_TRAIN = """\
import json, os, pathlib, yaml
cfg = yaml.safe_load(pathlib.Path(os.environ["REPROTRAIN_CONFIG"]).read_text())
out = pathlib.Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
(out / "metrics.json").write_text(json.dumps({"loss": abs(cfg["model"]["lr"] - 0.2), "acc": 0.9}))
"""


def isolate(home: Path) -> None:
    """No developer settings reach the runs: a HOME, git identity and caches of our own."""
    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "DVC_", "GIT_", "HYDRA_", "REPROTRAIN_")) and key != MLFLOW_SERVER_VARIABLE:
            del os.environ[key]
    home.mkdir(parents=True)
    gitconfig = home / ".gitconfig-ui-check"
    gitconfig.write_text("[user]\n\tname = UI Check\n\temail = ui@example.com\n[init]\n\tdefaultBranch = main\n")
    os.environ.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        DVC_NO_ANALYTICS="1",
        REPROTRAIN_STORE_HELPER="0",  # no background helper left behind
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )


def reprotrain(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "reprotrain"), *args], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise SystemExit(f"reprotrain {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def build_project(base: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import helpers  # the tests' template project: git + DVC, data/train.csv and data/images

    root = helpers.build_template(base / "demo")
    dvc_store = base / "dvc-store"
    helpers.dvc(root, "remote", "add", "-d", "store", str(dvc_store))
    (root / "ui_train.py").write_text(UI_TRAIN)
    helpers.configure(root, entrypoint="python ui_train.py", objective="loss", experiment_name="ui-check")
    helpers.dvc(root, "push", "-q")
    return root


def record_runs(root: Path) -> dict[str, str]:
    reprotrain(root, "run", "+experiment=fast", "model.lr=0.3")
    run_id = (root / ".reprotrain" / "last_run").read_text().split()[0]
    out = reprotrain(root, "run", "-m", "model.lr=0.1,0.25")
    sweep_id = out.split("reprotrain: sweep ", 1)[1].split(":", 1)[0]
    reprotrain(root, "rerun", run_id, "--verify")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / '.reprotrain' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("ui-check").experiment_id])
    rerun_id = next(r.info.run_id for r in found if r.data.tags.get("reprotrain.rerun_of") == run_id)
    return {
        "run": run_id,
        "sweep": sweep_id,
        "rerun": rerun_id,
        "experiment": found[0].info.experiment_id,
        "run_name": client.get_run(run_id).info.run_name,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(mlflow: Path, root: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    store = f"sqlite:///{root / '.reprotrain' / 'mlflow.db'}"
    cmd = [str(mlflow), "server", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    # no job runner (its consumer processes take seconds to stop): the UI does not need it
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    stop(proc)
    raise SystemExit(f"mlflow server did not answer within 90 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The server and its workers (its own session, led by its PID)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # a worker left behind
    except ProcessLookupError:
        pass


class Check:
    def __init__(self, page: Any, out: Path) -> None:
        self.page = page
        self.out = out
        self.failures: list[str] = []

    def see(self, what: str, *texts: str) -> None:
        body = self.page.inner_text("body")
        for text in texts:
            if text not in body:
                self.failures.append(f"{what}: {text!r} not shown")
            else:
                print(f"ok  {what}: {text!r}")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.out / f"{name}.png"), full_page=True)


def browse(url: str, ids: dict[str, str], chromium: str, out: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    from reprotrain.core.ui import experiment_route, run_route

    exp = ids["experiment"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        check = Check(page, out)
        try:
            # the experiment as `reprotrain ui` names it: in model-training mode
            page.goto(f"{url}/{experiment_route(exp)}")
            page.wait_for_selector("text=sweep: model.lr=0.1,0.25", timeout=WAIT_MS)
            page.locator("text=sweep: model.lr=0.1,0.25").first.hover()
            time.sleep(2)
            check.shot("1-experiment")
            check.see("experiment page", ids["run_name"], f"rerun of {ids['run_name']}", "sweep: model.lr=0.1,0.25")
            check.see("experiment page in model-training mode (its sidebar)", "Model registry")
            if "Observability" in page.inner_text("body"):
                check.failures.append("experiment page: opened in GenAI mode (its sidebar lists Observability)")

            page.goto(f"{url}/{run_route(exp, ids['run'])}")
            page.wait_for_selector("text=rerun it", timeout=WAIT_MS)
            _expand_description(page)
            check.shot("2-run")
            check.see(
                "run page",
                ids["run_name"],
                f"reprotrain rerun {ids['run']} --verify",
                "data digest",
                "config digest",
                "data/train.csv",
                "on branch main",
                "pinned",
                "data/train.csv.dvc",
            )
            check.see("run page: digest tags readable when cut", "reprotrain.data", "reprotrain.config")

            page.goto(f"{url}/{run_route(exp, ids['rerun'])}")
            page.wait_for_selector("text=rerun it", timeout=WAIT_MS)
            _expand_description(page)
            check.shot("3-rerun")
            check.see("rerun page", f"rerun of {ids['run_name']}", "verdict reproduced", "on branch main")
            link = page.locator(f"a[href*='runs/{ids['run']}']")
            if link.count() == 0:
                check.failures.append("rerun page: no link to the original run")
            else:
                # the UI opens a description's links in a new tab
                with page.context.expect_page(timeout=WAIT_MS) as opened:
                    link.first.click()
                original = opened.value
                original.wait_for_selector("text=rerun it", timeout=WAIT_MS)
                if ids["run"] not in original.url or ids["run_name"] not in original.inner_text("body"):
                    check.failures.append(f"rerun page: its link opened {original.url}, not the original run")
                else:
                    print(f"ok  rerun page: its link to the original opens {original.url}")
                original.screenshot(path=str(out / "3b-original-from-link.png"))
                original.close()

            page.goto(f"{url}/{run_route(exp, ids['run'])}")
            page.wait_for_selector("text=data/images (", timeout=WAIT_MS)
            page.locator("text=data/images (").first.click()
            page.wait_for_selector("text=datasets used", timeout=WAIT_MS)
            page.locator("text=data/train.csv (").last.click()
            time.sleep(2)
            check.shot("4-dataset")
            check.see("dataset panel", "nfiles: 1", "dvc file: data/train.csv.dvc", "dvc remote:", "dvc-store")
            check.see("dataset schema (from the CSV header)", "long")
            if ": null" in page.inner_text("body"):
                check.failures.append("dataset panel: a value shows null")
            page.keyboard.press("Escape")

            page.goto(f"{url}/{run_route(exp, ids['sweep'])}")
            page.wait_for_selector("text=best job", timeout=WAIT_MS)
            _expand_description(page)
            check.shot("5-sweep")
            check.see(
                "sweep parent",
                "sweep: model.lr=0.1,0.25",
                "best job",
                "loss = 0.05",
                "model.lr",
                "0.1, 0.25",
                "data/images (",
                "reprotrain.sweep.best",
            )
            return check.failures
        except Exception:
            page.screenshot(path=str(out / "failed.png"), full_page=True)
            print(f"--- the page at {page.url} (failed.png) ---\n{page.inner_text('body')[:3000]}")
            raise
        finally:
            browser.close()


def _expand_description(page: Any) -> None:
    """The description shows its first lines until "Show more" is clicked."""
    more = page.locator("text=Show more")
    if more.count():
        more.first.click()
    time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=REPO / ".ui-check", help="where the screenshots go")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    default_mlflow = os.environ.get("REPROTRAIN_TEST_MLFLOW_SERVER") or str(REPO / ".venv-server" / "bin" / "mlflow")
    parser.add_argument("--mlflow", type=Path, default=Path(default_mlflow))
    args = parser.parse_args()
    if not args.mlflow.exists():
        raise SystemExit(f"no full mlflow at {args.mlflow}: set REPROTRAIN_TEST_MLFLOW_SERVER or pass --mlflow")
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):  # this run's screenshots only
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="ui-check-") as tmp:
        base = Path(tmp)
        isolate(base / "home")
        root = build_project(base)
        ids = record_runs(root)
        print(json.dumps(ids))
        server, url = start_server(args.mlflow, root, base / "server.log")
        try:
            failures = browse(url, ids, args.chromium, args.out)
        finally:
            stop(server)
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"screenshots in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
