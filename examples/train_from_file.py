"""A script that reads its settings from a YAML file: reprotrain hands it the resolved config
through REPROTRAIN_CONFIG (entrypoint = "python examples/train_from_file.py")."""

import json
import os
from pathlib import Path

import yaml
from train_lib import fit

config = yaml.safe_load(Path(os.environ.get("REPROTRAIN_CONFIG", "config.yaml")).read_text())
out = Path(os.environ.get("REPROTRAIN_OUTPUT_DIR", "."))
metrics, model = fit(config["data"]["path"], config["seed"], config["train"]["epochs"], config["train"]["lr"])
(out / "model.json").write_text(json.dumps(model, indent=2))
(out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(metrics)
