"""An argparse script, run unchanged through a command template:

entrypoint = "python examples/train_argparse.py --data ${data.path} --seed ${seed}
              --epochs ${train.epochs} --lr ${train.lr} --out $REPROTRAIN_OUTPUT_DIR"
"""

import argparse
import json
from pathlib import Path

from train_lib import fit

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--out", default=".")
args = parser.parse_args()

metrics, model = fit(args.data, args.seed, args.epochs, args.lr)
Path(args.out, "model.json").write_text(json.dumps(model, indent=2))
Path(args.out, "metrics.json").write_text(json.dumps(metrics, indent=2))
print(metrics)
