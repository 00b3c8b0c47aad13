"""The model code the example scripts share: a linear model fitted by mini-batch SGD."""

from __future__ import annotations

import csv
import random


def fit(path: str, seed: int, epochs: int, lr: float, batch_size: int = 16, l2: float = 0.0) -> tuple[dict, dict]:
    rng = random.Random(seed)
    with open(path, newline="") as fh:
        rows = [([float(v) for k, v in r.items() if k != "y"], float(r["y"])) for r in csv.DictReader(fh)]
    rng.shuffle(rows)
    n_val = len(rows) // 5
    val, train = rows[:n_val], rows[n_val:]
    weights, bias = [0.0] * len(train[0][0]), 0.0
    for _ in range(epochs):
        rng.shuffle(train)
        for start in range(0, len(train), batch_size):
            batch = train[start : start + batch_size]
            grad_w, grad_b = [0.0] * len(weights), 0.0
            for x, y in batch:
                err = sum(w * v for w, v in zip(weights, x)) + bias - y
                grad_w = [g + 2 * err * v / len(batch) for g, v in zip(grad_w, x)]
                grad_b += 2 * err / len(batch)
            weights = [w - lr * (g + 2 * l2 * w) for w, g in zip(weights, grad_w)]
            bias -= lr * grad_b

    def mse(part: list) -> float:
        return sum((sum(w * v for w, v in zip(weights, x)) + bias - y) ** 2 for x, y in part) / len(part)

    return {"val_mse": mse(val), "train_mse": mse(train)}, {"weights": weights, "bias": bias}
