#!/usr/bin/env bash
# The bundled example on a fresh machine: set up, restore the example data offline, and launch a
# pinned run with the embedded store (no server), then rerun it from its record and verify that
# it reproduced. Safe to run again; leaves `git status` clean.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
echo "==> installing reprotrain into .venv"
.venv/bin/pip install --quiet --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"

echo "==> restoring data/regression.csv from the bundled DVC remote (examples/dvc-store)"
dvc pull --quiet

echo "==> reprotrain run +experiment=baseline"
reprotrain run +experiment=baseline

echo "==> reprotrain show last"
reprotrain show last

echo "==> reprotrain rerun last --verify   (same commit, data and config, in a separate worktree)"
reprotrain rerun last --verify
