"""A project whose training code talks to MLflow itself, the way existing projects do.

``mlcode.py`` is one training script with both entrypoint kinds: ``python mlcode.py`` (a command:
it reads the resolved config from REPROTRAIN_CONFIG) and ``mlcode.py:train`` (a callable: it is
given the config). The config key ``pattern`` picks what it does with MLflow; each pattern imitates
code seen in real projects (none is copied from one). The score it logs is deterministic unless
``noise=true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import all_runs, client_for, configure, embedded_uri

KINDS = {"command": "python mlcode.py", "callable": "mlcode.py:train"}

MLCODE_PY = '''\
"""Training code that uses MLflow itself; `pattern` in the config says how."""
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow import set_experiment as bound_set_experiment  # bound when the module is imported
from mlflow import start_run as bound_start_run

COLLEAGUE = """
import os, mlflow
client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
found = client.get_experiment_by_name("colleague")
experiment_id = found.experiment_id if found else client.create_experiment("colleague")
client.set_terminated(client.create_run(experiment_id).info.run_id)
"""


def pool_worker(i):
    """A worker of a process pool: a run of its own with a client, never terminated (as workers
    that exit without MLflow's exit handler leave theirs)."""
    client = MlflowClient()
    run = client.create_run(os.environ["MLFLOW_EXPERIMENT_ID"])
    client.log_metric(run.info.run_id, "score", 0.5 + i)
    time.sleep(1.0)  # the workers' runs overlap
    return run.info.run_id


class FrameworkLogger:
    """A framework's logger (Lightning-style): its own client, tracking URI and experiment from its
    config; it attaches to an existing run only when it is given one."""

    def __init__(self, tracking_uri, experiment_name, run_id=None):
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._experiment_name = experiment_name
        self._run_id = run_id

    @property
    def run_id(self):
        if self._run_id is None:
            found = self._client.get_experiment_by_name(self._experiment_name)
            experiment_id = found.experiment_id if found else self._client.create_experiment(self._experiment_name)
            self._run_id = self._client.create_run(experiment_id, tags={"source": "framework"}).info.run_id
        return self._run_id

    def log_hyperparams(self, params):
        for key, value in params.items():
            self._client.log_param(self.run_id, key, value)

    def log_metrics(self, metrics, step):
        for key, value in metrics.items():
            self._client.log_metric(self.run_id, key, value, step=step)

    def finalize(self, status="FINISHED"):
        self._client.set_terminated(self.run_id, status)


def fit_ridge(alpha):
    import numpy as np
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    return Ridge(alpha=alpha).fit(x, x @ np.array([1.0, 2.0, 3.0]))


def run_pattern(cfg, pattern, score):
    if pattern == "plain":
        mlflow.log_metric("score", score)
    elif pattern == "own_params":  # the code logs hyperparameters the config also has, its own way
        mlflow.log_param("alpha", float(cfg["alpha"]))
        mlflow.log_params({"model.layers": "three", "seed": cfg["seed"], "model.lr": cfg["model"]["lr"]})
        mlflow.log_metric("score", score)
    elif pattern == "start_run":
        with mlflow.start_run():
            mlflow.log_metric("score", score)
    elif pattern == "start_run_named":
        with mlflow.start_run(run_name="my-training"):
            mlflow.log_metric("score", score)
    elif pattern == "nested":
        with mlflow.start_run():
            mlflow.log_metric("score", score)
            for fold in (0, 1):
                with mlflow.start_run(run_name=f"fold-{fold}", nested=True):
                    mlflow.log_metric("fold_score", score + fold)
    elif pattern == "autolog":
        mlflow.autolog()
        model = fit_ridge(0.5)
        mlflow.log_metric("score", float(model.coef_[0]))
    elif pattern == "tracking_uri":  # set_tracking_uri(cfg...) then plain logging
        mlflow.set_tracking_uri(cfg["tracking_uri"])
        mlflow.log_metric("score", score)
    elif pattern == "set_experiment":
        mlflow.set_experiment(cfg["mlflow_experiment"])
        with mlflow.start_run(run_name="in-my-experiment"):
            mlflow.log_metric("score", score)
    elif pattern == "client_run":
        client = MlflowClient()
        found = client.get_experiment_by_name("client-exp")
        experiment_id = found.experiment_id if found else client.create_experiment("client-exp")
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "score", score)
        client.set_terminated(run.info.run_id)
    elif pattern == "logger":
        logger = FrameworkLogger(
            cfg["logger"]["tracking_uri"], cfg["logger"]["experiment_name"], cfg["logger"]["run_id"]
        )
        logger.log_hyperparams({"alpha": cfg["alpha"]})
        logger.log_metrics({"score": score}, step=0)
        logger.finalize()
    elif pattern == "bound_names":  # `from mlflow import start_run` at the module's top
        bound_set_experiment(cfg["mlflow_experiment"])
        with bound_start_run():
            mlflow.log_metric("score", score)
    elif pattern == "colleague":  # another process, without the hook, writes to the same store
        mlflow.log_metric("score", score)
        subprocess.run([sys.executable, "-E", "-c", COLLEAGUE], check=True)
    elif pattern == "pool":
        import multiprocessing

        mlflow.log_metric("score", score)  # attaches: MLflow drops MLFLOW_RUN_ID, workers make their own
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pool.map(pool_worker, [0, 1])
    elif pattern == "fit_only":  # fits without autolog, as a fresh process would see MLflow
        last = mlflow.last_active_run()
        fit_ridge(0.5)
        mlflow.log_metric("score", score)
        mlflow.log_metric("saw_last_active_run", 0.0 if last is None else 1.0)
    elif pattern == "none":
        pass
    else:
        raise ValueError(f"unknown pattern {pattern!r}")


def train(cfg):
    score = 0.5 + 0.01 * float(cfg["alpha"])
    if cfg["noise"]:
        score += random.random()  # unseeded: a rerun cannot reproduce it
    run_pattern(cfg, cfg["pattern"], score)
    out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
    if cfg["write_metrics"]:
        (out / "metrics.json").write_text(json.dumps({"score": score}))
    (out / "seen.json").write_text(json.dumps({"run_id_env": os.environ.get("MLFLOW_RUN_ID")}))
    if cfg["fail"]:
        raise RuntimeError("MLCODE-TRAINING-FAILED")
    if os.environ.get("MLCODE_EXIT"):  # set by a test for one launch only (the config stays the same)
        sys.exit(int(os.environ["MLCODE_EXIT"]))
    return score


def main():
    import yaml

    train(yaml.safe_load(Path(os.environ["REPROTRAIN_CONFIG"]).read_text()))


if __name__ == "__main__":
    main()
'''

CONFIG_ADDITIONS = """\
pattern: plain
alpha: 1
noise: false
fail: false
write_metrics: false
tracking_uri: ""
mlflow_experiment: my-experiment
logger:
  tracking_uri: ${oc.env:MLFLOW_TRACKING_URI}
  experiment_name: lightning_logs
  run_id: null
"""


def setup_mlcode(root: Path, kind: str, **settings: Any) -> str:
    """Add mlcode.py and its config keys to the template project; commit; returns HEAD."""
    (root / "mlcode.py").write_text(MLCODE_PY)
    config = root / "conf" / "config.yaml"
    config.write_text(config.read_text() + CONFIG_ADDITIONS)
    settings.setdefault("entrypoint", KINDS[kind])
    return configure(root, **settings)


def runs_by_id(uri: str) -> dict[str, Any]:
    client = client_for(uri)
    return {r.info.run_id: client.get_run(r.info.run_id) for r in all_runs(uri)}


def own_and_others(root: Path, uri: str | None = None) -> tuple[Any, list[Any]]:
    """reprotrain's one run in the embedded store, and every other run there."""
    runs = runs_by_id(embedded_uri(root))
    own = [r for r in runs.values() if "reprotrain.config.digest" in r.data.tags]
    assert len(own) == 1, [r.info.run_id for r in own]
    return own[0], [r for r in runs.values() if r is not own[0]]
