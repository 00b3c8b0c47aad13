"""Fit a linear model to data/regression.csv with mini-batch SGD.

An ordinary Hydra app, written the way users write them: `python examples/train.py` runs it on
its own, and reprotrain runs it unchanged through `entrypoint = "examples/train.py:main"` or as
the command `python examples/train.py`. It logs its learning curve to MLflow itself, and leaves
`metrics.json` and `model.json` in Hydra's output directory.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from pathlib import Path

import hydra
import mlflow
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# Hydra 1.3 needs version_base to use its own defaults (without it: 1.1's, and a warning); Hydra 1.4
# has them built in and warns on every call that passes the argument at all.
HYDRA_1_4 = tuple(int(n) for n in hydra.__version__.split(".")[:2]) >= (1, 4)
VERSION_BASE = {} if HYDRA_1_4 else {"version_base": "1.3"}


def load_rows(path: str) -> list[tuple[list[float], float]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = []
        for row in reader:
            target = float(row.pop("y"))
            rows.append(([float(v) for v in row.values()], target))
    return rows


def mse(rows: list[tuple[list[float], float]], weights: list[float], bias: float) -> float:
    total = 0.0
    for x, y in rows:
        err = sum(w * v for w, v in zip(weights, x)) + bias - y
        total += err * err
    return total / len(rows)


@hydra.main(config_path="../conf", config_name="config", **VERSION_BASE)
def main(cfg: DictConfig) -> float:
    rng = random.Random(cfg.seed)
    rows = load_rows(cfg.data.path)
    rng.shuffle(rows)
    n_val = int(len(rows) * cfg.data.val_fraction)
    val, train = rows[:n_val], rows[n_val:]
    weights = [0.0] * len(train[0][0])
    bias = 0.0
    for epoch in range(cfg.train.epochs):
        rng.shuffle(train)
        for start in range(0, len(train), cfg.train.batch_size):
            batch = train[start : start + cfg.train.batch_size]
            grad_w = [0.0] * len(weights)
            grad_b = 0.0
            for x, y in batch:
                err = sum(w * v for w, v in zip(weights, x)) + bias - y
                for i, v in enumerate(x):
                    grad_w[i] += 2 * err * v / len(batch)
                grad_b += 2 * err / len(batch)
            weights = [w - cfg.train.lr * (g + 2 * cfg.model.l2 * w) for w, g in zip(weights, grad_w)]
            bias -= cfg.train.lr * grad_b
        val_mse = mse(val, weights, bias)
        mlflow.log_metric("val_mse_curve", val_mse, step=epoch)
        log.info("epoch %d: val_mse=%.5f", epoch, val_mse)

    out = Path(HydraConfig.get().runtime.output_dir)
    metrics = {"val_mse": mse(val, weights, bias), "train_mse": mse(train, weights, bias)}
    (out / "model.json").write_text(json.dumps({"weights": weights, "bias": bias}, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"val_mse={metrics['val_mse']:.6f} train_mse={metrics['train_mse']:.6f}")
    return metrics["val_mse"]


if __name__ == "__main__":
    main()
